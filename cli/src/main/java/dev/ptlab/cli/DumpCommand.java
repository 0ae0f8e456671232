package dev.ptlab.cli;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code ptlab dump FILE}: builds the scenario's table silently, then prints its compact tree. */
@Command(name = "dump",
        header = "Build a scenario's table, then print its compact tree.",
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "Runs the scenario FILE silently, then prints the table tree compactly: runs of leaves with consecutive "
                + "output addresses and equal attributes are one line, tables that hold one such run are folded "
                + "into it, other tables are shown with their level and frame PA, and empty entries are omitted."},
        footer = {"", "Exit codes: 0 success, 1 an expect line of FILE failed, 2 usage or scenario error."})
final class DumpCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    HelpOption help;

    @Parameters(index = "0", paramLabel = "FILE", description = "scenario file (- for standard input)")
    String file;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        return ScenarioSource.runThen(file, null, out, spec.commandLine().getErr(), m -> m.dump(out));
    }
}
