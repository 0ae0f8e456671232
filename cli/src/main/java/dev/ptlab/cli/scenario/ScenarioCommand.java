package dev.ptlab.cli.scenario;

import dev.ptlab.core.Errno;

/**
 * One scenario command, as a unit: its keyword, its rule in the documented grammar, what it needs
 * before it (a table, a stage-2 table, a VM), its parser and executor ({@link #parse} returns what
 * the line does), and what its error messages say is expected. Every command is registered once
 * in {@link ScenarioCommands}; the parser, the machine, the "unknown command" message and the
 * documentation test all read that registry.
 */
public abstract class ScenarioCommand {
    /** What must come before a command; the parser checks it with one message per kind. */
    public enum Needs {
        /** Nothing: the table lines themselves. */
        NOTHING,
        /** A table line (stage2, hyp or vm). */
        TABLE,
        /** A stage-2 table (stage2 or vm). */
        STAGE2,
        /** A vm line. */
        VM
    }

    private final String keyword;
    private final Needs needs;
    private final String grammar;

    /**
     * @param keyword the keyword that starts the line (lower case)
     * @param grammar the right-hand side of the command's rule in docs/scenario-language.md's
     *     grammar block, as written there with blanks folded and alternatives on one line joined
     *     by {@code " | "} (e.g. {@code "unmap" ADDR SIZE}); ScenarioCommandsTest checks it is
     */
    ScenarioCommand(String keyword, Needs needs, String grammar) {
        this.keyword = keyword;
        this.needs = needs;
        this.grammar = grammar;
    }

    public final String keyword() {
        return keyword;
    }

    public final String grammar() {
        return grammar;
    }

    public final Needs needs() {
        return needs;
    }

    /**
     * Checks the line's arguments (after the parser checked {@link #needs}) and returns what
     * running it does.
     *
     * @throws ScenarioException {@code file:line: what is wrong; expected what}
     */
    abstract Step.Action parse(Line line) throws ScenarioException;

    /**
     * The "expected ..." of a message when the library refuses this command with {@code errno};
     * commands whose arguments the library checks in a way of their own override it.
     */
    String expected(Errno errno, Machine m) {
        return m.expectedByDefault(errno);
    }

    /**
     * The "expected ..." when the library refuses an argument with an IllegalArgumentException
     * (the sim library names the argument and the rule), or null when no such refusal is expected
     * from this command (it is then reported as a failure of the operation itself).
     */
    String argumentHint() {
        return null;
    }

    @Override
    public String toString() {
        return keyword;
    }
}
