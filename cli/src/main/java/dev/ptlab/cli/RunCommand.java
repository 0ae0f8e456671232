package dev.ptlab.cli;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code ptlab run [FILE]}: executes a scenario, printing each command's result. */
@Command(name = "run",
        header = "Run a scenario file (or the built-in one), printing every result.",
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "Executes a scenario file and prints each command's result, then a summary line "
                + "(expectations passed/failed, table frames in use, TLBIs, BBMs, cache maintenance).",
            "Without FILE, runs the built-in default scenario. FILE - reads standard input."},
        footer = {"", "Exit codes: 0 all expectations passed, 1 some failed (the run goes on), 2 scenario error."})
final class RunCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    HelpOption help;

    @Parameters(index = "0", arity = "0..1", paramLabel = "FILE", description = "scenario file (default: the built-in scenario)")
    String file;

    @Option(names = {"-q", "--quiet"}, description = "print only failed expectations and the summary line")
    boolean quiet;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        return ScenarioSource.runThen(file, quiet ? null : out, out, spec.commandLine().getErr(),
                m -> out.println(m.summary()));
    }
}
