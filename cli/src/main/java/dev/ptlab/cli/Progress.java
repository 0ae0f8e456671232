package dev.ptlab.cli;

import java.io.PrintWriter;

/**
 * A one-line progress indicator on stderr for runs longer than a second, shown only when
 * stderr is a terminal (never in pipes, files or tests).
 */
final class Progress implements AutoCloseable {
    private final Thread thread;
    private volatile boolean done;

    private Progress(PrintWriter err, String what) {
        long t0 = System.nanoTime();
        thread = new Thread(() -> {
            String spin = "|/-\\";
            int i = 0;
            boolean shown = false;
            while (!done) {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
                double s = (System.nanoTime() - t0) / 1e9;
                if (s < 1 || done) continue;
                err.print("\r" + what + " " + spin.charAt(i++ & 3) + String.format(java.util.Locale.ROOT, " %.1f s", s));
                err.flush();
                shown = true;
            }
            if (shown) {
                err.print("\r" + " ".repeat(what.length() + 16) + "\r");
                err.flush();
            }
        }, "ptlab-progress");
        thread.setDaemon(true);
    }

    /** Starts the indicator if stderr is a terminal; otherwise returns one that does nothing. */
    static Progress start(PrintWriter err, String what) {
        Progress p = new Progress(err, what);
        if (System.console() != null) p.thread.start();
        return p;
    }

    @Override
    public void close() {
        done = true;
        if (thread.isAlive()) {
            try {
                thread.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
