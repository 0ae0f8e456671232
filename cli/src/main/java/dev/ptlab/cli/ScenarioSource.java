package dev.ptlab.cli;

import dev.ptlab.cli.scenario.Machine;
import dev.ptlab.cli.scenario.ScenarioException;
import dev.ptlab.cli.scenario.ScenarioParser;
import dev.ptlab.cli.scenario.Step;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
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
        byte[] bytes;
        try {
            if (path == null) return defaultScenario();
            if (path.isEmpty()) throw new ScenarioException("FILE: is empty; expected a scenario file name, or - for standard input");
            if (path.equals("-")) {
                bytes = stdin.readAllBytes();
            } else {
                if (Files.isDirectory(Path.of(path))) throw new ScenarioException(path + ": is a directory; expected a scenario file");
                bytes = Files.readAllBytes(Path.of(path));
            }
        } catch (java.nio.file.InvalidPathException e) {
            throw new ScenarioException(path + ": not a valid file name; expected a readable scenario file");
        } catch (IOException | java.io.UncheckedIOException e) {
            IOException io = e instanceof IOException ? (IOException) e : ((java.io.UncheckedIOException) e).getCause();
            throw new ScenarioException(path + ": cannot read (" + Failures.plain(io) + "); expected a readable scenario file");
        }
        return decode(name(path), bytes);
    }

    /**
     * A file's or standard input's bytes as text, the same way for both: strict UTF-8 (a byte
     * that is not UTF-8 is an error on its line, not a replacement character) without a leading
     * byte-order mark, which editors on some systems write.
     */
    static String decode(String name, byte[] bytes) throws ScenarioException {
        int start = bytes.length >= 3 && (bytes[0] & 0xff) == 0xef && (bytes[1] & 0xff) == 0xbb && (bytes[2] & 0xff) == 0xbf ? 3 : 0;
        java.nio.charset.CharsetDecoder d = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT);
        java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(bytes, start, bytes.length - start);
        java.nio.CharBuffer out = java.nio.CharBuffer.allocate(bytes.length);
        java.nio.charset.CoderResult r = d.decode(in, out, true);
        if (r.isError()) {
            int bad = in.position();
            int line = 1;
            for (int i = start; i < bad; i++) if (bytes[i] == '\n') line++;
            throw new ScenarioException(name + ":" + line + ": byte 0x" + Integer.toHexString(bytes[bad] & 0xff)
                    + " is not UTF-8 text; expected a UTF-8 text file");
        }
        d.flush(out);
        out.flip();
        return out.toString();
    }

    /** The text of the built-in scenario. */
    static String defaultScenario() throws IOException {
        try (InputStream in = ScenarioSource.class.getResourceAsStream(DEFAULT_NAME)) {
            if (in == null) throw new IOException("resource " + DEFAULT_NAME + " is missing from the jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
