package dev.ptlab.cli;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.function.DoubleSupplier;

/**
 * Progress of a long run on stderr. On a terminal: a one-line bar for runs longer than a second,
 * erased when the run ends. Elsewhere (pipes, files, CI logs), where a bar would be noise: one
 * plain line every {@link #LOG_SECONDS} seconds, so a run of minutes is not silent.
 */
final class Progress implements AutoCloseable {
    private static final int WIDTH = 30;
    /** Seconds between the plain lines when stderr is not a terminal (first line after as long). */
    static final int LOG_SECONDS = 30;
    private final Thread thread;
    private volatile boolean done;

    private Progress(PrintWriter err, String what, DoubleSupplier fraction, boolean terminal, double logSeconds) {
        long t0 = System.nanoTime();
        thread = new Thread(() -> {
            boolean shown = false;
            String line = "";
            double nextLog = logSeconds;
            while (!done) {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    break; // close(): still erase the bar
                }
                double s = (System.nanoTime() - t0) / 1e9;
                if (s < 1 || done) continue;
                double f = Math.max(0, Math.min(1, fraction.getAsDouble()));
                if (!terminal) {
                    if (s >= nextLog) {
                        err.println(String.format(Locale.ROOT, "ptlab: %s, %.0f%% after %.0f s", what, f * 100, s));
                        err.flush();
                        // The next line one interval on from the last due time, never a burst of
                        // catch-up lines after a late wake-up (or the silent first second).
                        while (nextLog <= s) nextLog += logSeconds;
                    }
                    continue;
                }
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

    /** Starts reporting: a bar on a terminal, a plain line every {@link #LOG_SECONDS} s elsewhere. */
    static Progress start(PrintWriter err, String what, DoubleSupplier fraction) {
        return start(err, what, fraction, System.console() != null, LOG_SECONDS);
    }

    static Progress start(PrintWriter err, String what, DoubleSupplier fraction, boolean terminal, double logSeconds) {
        Progress p = new Progress(err, what, fraction, terminal, logSeconds);
        p.thread.start();
        return p;
    }

    @Override
    public void close() {
        done = true;
        if (thread.isAlive()) {
            thread.interrupt();
            try {
                thread.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
