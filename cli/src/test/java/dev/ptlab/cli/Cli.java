package dev.ptlab.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Drives {@code ptlab} in-process and captures what it prints. */
final class Cli {
    private Cli() {}

    record Result(int exit, String out, String err) {
        @Override
        public String toString() {
            return "exit " + exit + "\n--- out ---\n" + out + "--- err ---\n" + err;
        }
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(exit, out.toString(), err.toString());
    }

    /** Writes {@code lines} as a scenario file in {@code dir} and returns its path as a string. */
    /**
     * Runs a scenario of {@code lines} that must fail with exactly one stderr line
     * {@code file:line: ...} and exit code 2; returns that line without the file name.
     */
    static String scenarioError(Path dir, String... lines) throws IOException {
        String f = scenario(dir, "s.txt", lines);
        Result r = run("run", f);
        org.assertj.core.api.Assertions.assertThat(r.exit()).as(r.toString()).isEqualTo(2);
        org.assertj.core.api.Assertions.assertThat(r.err()).startsWith(f + ":").endsWith("\n");
        org.assertj.core.api.Assertions.assertThat(r.err().split("\n")).hasSize(1);
        return r.err().substring(f.length()).trim();
    }

    static String scenario(Path dir, String name, String... lines) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, String.join("\n", lines) + "\n", StandardCharsets.UTF_8);
        return p.toString();
    }
}
