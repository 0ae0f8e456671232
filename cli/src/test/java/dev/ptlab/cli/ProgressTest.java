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
        try (Progress p = Progress.start(new PrintWriter(err, true), "simulating", () -> 0.25, false, 0.5)) {
            Thread.sleep(1900);
        }
        String[] lines = err.toString().split("\n");
        assertThat(lines).hasSizeBetween(1, 3); // scheduling on a busy machine may shift one line
        assertThat(lines[0]).matches("ptlab: simulating, 25% after 1 s");
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
