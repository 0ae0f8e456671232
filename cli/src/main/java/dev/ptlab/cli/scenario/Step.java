package dev.ptlab.cli.scenario;

/**
 * One parsed scenario line: its line number (for messages), the command it is, and what running
 * it does. The parser has checked every argument it can before anything runs.
 */
public record Step(int line, ScenarioCommand command, Action action) {
    /** What a parsed line does to the machine. */
    @FunctionalInterface
    public interface Action {
        void run(Machine m);
    }

    /** The command's keyword, as messages name it. */
    String verb() {
        return command.keyword();
    }
}
