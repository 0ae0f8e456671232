package dev.ptlab.cli;

import dev.ptlab.cli.scenario.Machine;
import dev.ptlab.cli.scenario.ScenarioException;
import dev.ptlab.cli.scenario.ScenarioParser;
import dev.ptlab.cli.scenario.Step;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.io.PrintWriter;
import java.util.List;
import java.util.function.Consumer;

/** Where a scenario comes from: a file, standard input ({@code -}), or the built-in default. */
final class ScenarioSource {
    /** Name of the built-in scenario in messages, and its resource next to this class. */
    static final String DEFAULT_NAME = "default.scenario";

    private ScenarioSource() {}

    /**
     * Loads and runs the scenario at {@code path} (null: the built-in default), printing each
     * result to {@code verbose} (null: silent), then hands the machine to {@code after}. Returns
     * the command's exit code; scenario errors go to {@code err} as {@code file:line: ...}.
     */
    static int runThen(String path, PrintWriter verbose, PrintWriter out, PrintWriter err, Consumer<Machine> after) {
        try {
            List<Step> script = load(path, System.in);
            Machine m = new Machine(name(path), verbose, err);
            m.run(script);
            after.accept(m);
            out.flush();
            return m.failed() > 0 ? Main.EXIT_FAILED_EXPECTATIONS : Main.EXIT_OK;
        } catch (ScenarioException | Refusal e) {
            out.flush();
            err.println(e.getMessage());
            err.flush();
            return Main.EXIT_ERROR;
        }
    }

    /**
     * Thrown by the step after the scenario when an option cannot be applied to the table the
     * scenario built (e.g. a --base the image cannot start at): one line on stderr, exit code 2.
     */
    static final class Refusal extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Refusal(String message) {
            super(message, null, false, false);
        }
    }

    /** Reads and parses the scenario at {@code path}; null means the built-in default. */
    static List<Step> load(String path, InputStream stdin) throws ScenarioException {
        return ScenarioParser.parse(name(path), read(path, stdin));
    }

    static String name(String path) {
        return path == null ? DEFAULT_NAME : path.equals("-") ? "<stdin>" : path;
    }

    static String read(String path, InputStream stdin) throws ScenarioException {
        try {
            if (path == null) return defaultScenario();
            if (path.equals("-")) return new String(stdin.readAllBytes(), StandardCharsets.UTF_8);
            return Files.readString(Path.of(path), StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new ScenarioException(path + ": no such file; expected a readable scenario file", e);
        } catch (IOException | java.io.UncheckedIOException e) {
            throw new ScenarioException(path + ": cannot read (" + e + "); expected a readable UTF-8 scenario file", e);
        }
    }

    /** The text of the built-in scenario. */
    static String defaultScenario() throws IOException {
        try (InputStream in = ScenarioSource.class.getResourceAsStream(DEFAULT_NAME)) {
            if (in == null) throw new IOException("resource " + DEFAULT_NAME + " is missing from the jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
