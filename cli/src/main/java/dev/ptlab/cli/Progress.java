package dev.ptlab.cli;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.function.DoubleSupplier;

/**
 * A one-line progress bar on stderr for runs longer than a second, shown only when the JVM has
 * a terminal (never in pipes, files or tests), and erased when the run ends.
 */
final class Progress implements AutoCloseable {
    private static final int WIDTH = 30;
    private final Thread thread;
    private volatile boolean done;

    private Progress(PrintWriter err, String what, DoubleSupplier fraction) {
        long t0 = System.nanoTime();
        thread = new Thread(() -> {
            boolean shown = false;
            String line = "";
            while (!done) {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
                double s = (System.nanoTime() - t0) / 1e9;
                if (s < 1 || done) continue;
                double f = Math.max(0, Math.min(1, fraction.getAsDouble()));
                int filled = (int) Math.round(f * WIDTH);
                line = String.format(Locale.ROOT, "%s [%s%s] %3.0f%% %.1f s", what, "#".repeat(filled), " ".repeat(WIDTH - filled),
                        f * 100, s);
                err.print("\r" + line);
                err.flush();
                shown = true;
            }
            if (shown) {
                err.print("\r" + " ".repeat(line.length()) + "\r");
                err.flush();
            }
        }, "ptlab-progress");
        thread.setDaemon(true);
    }

    /** Starts the bar if the JVM has a terminal; otherwise returns one that does nothing. */
    static Progress start(PrintWriter err, String what, DoubleSupplier fraction) {
        Progress p = new Progress(err, what, fraction);
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
