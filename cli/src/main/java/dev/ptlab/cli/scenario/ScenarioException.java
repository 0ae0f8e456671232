package dev.ptlab.cli.scenario;

/**
 * A scenario that cannot go on: a syntax error, a table operation that failed, a file that cannot
 * be read. The message is complete and ready to print: {@code file:line: what is wrong; expected
 * what}. Exit code 2.
 */
public final class ScenarioException extends Exception {
    private static final long serialVersionUID = 1L;

    public ScenarioException(String message) {
        super(message);
    }

    public ScenarioException(String message, Throwable cause) {
        super(message, cause);
    }

    /** {@code file:line: problem; expected expectation}. */
    static ScenarioException at(String file, int line, String problem, String expected) {
        return new ScenarioException(file + ":" + line + ": " + problem + (expected == null ? "" : "; expected " + expected));
    }
}
