package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

class ProgressTest {
    /**
     * Not on a terminal (a pipe, a CI log): plain lines at intervals instead of silence (before,
     * nothing at all was printed without a console). With lines every 0.5 s, gated to start after
     * the first second, 1.9 s gives the lines at 1.0 s and 1.5 s: two.
     */
    @Test
    void withoutATerminalALongRunPrintsPlainLines() throws Exception {
        StringWriter err = new StringWriter();
        long t0 = System.nanoTime();
        try (Progress p = Progress.start(new PrintWriter(err, true), "simulating", () -> 0.25, false, 0.5)) {
            Thread.sleep(1900);
        }
        double elapsed = (System.nanoTime() - t0) / 1e9;
        String[] lines = err.toString().split("\n");
        // One line per 0.5 s after the first second: how many depends on how long the sleep
        // really took on a busy machine, so the bound follows the measured time.
        assertThat(lines.length).isBetween(1, (int) Math.floor((elapsed - 1.0) / 0.5) + 1);
        for (String line : lines) assertThat(line).matches("ptlab: simulating, 25% after \\d+ s");
        assertThat(lines[0]).isEqualTo("ptlab: simulating, 25% after 1 s");
        assertThat(err.toString()).doesNotContain("\r");
    }

    @Test
    void aShortRunPrintsNothing() throws Exception {
        StringWriter err = new StringWriter();
        try (Progress p = Progress.start(new PrintWriter(err, true), "simulating", () -> 0.25, false, Progress.LOG_SECONDS)) {
            Thread.sleep(300);
        }
        assertThat(err.toString()).isEmpty();
    }
}
