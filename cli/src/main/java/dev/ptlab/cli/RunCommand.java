package dev.ptlab.cli;

import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.WorkloadOptions;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code ptlab run}: without FILE, ptlab's main job — the kernel's kvm_page_table_test on a
 * simulated VM; with FILE, a scenario.
 */
@Command(name = "run",
        header = "Simulate kvm_page_table_test on a VM (default), or run a scenario file.",
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "Without FILE: replays the kernel selftest kvm_page_table_test (Linux 7.1-rc4; its options -p -m -b -v -s work "
                + "as there) in every guest mode the simulated host supports, or those -m names: a VM with one memslot placed as "
                + "the selftest places it (the top of the IPA space minus the size, aligned down), backed by a host process's "
                + "memory unless --host-memory fixed, N vCPU threads each with its own MMU and TLB, all walking the whole region, "
                + "and the selftest's phases: create (the first bytes of every large page; even vCPUs write, odd vCPUs read), "
                + "log-enable (dirty logging: write-protect, optional eager split), update (anonymous: every page written; other "
                + "backings: each large page's first page written, then its second half read), log-disable, adjust (every page "
                + "read: blocks come back). Prints per mode what the selftest prints before it runs, then one row of metrics per "
                + "phase; --json writes every metric.",
            "With FILE: executes the scenario and prints each command's result, then a summary line. FILE - reads "
                + "standard input; --builtin-scenario runs the built-in example scenario."},
        footer = {"", "Exit codes: 0 success, 1 a scenario expectation failed (or the simulation's own checks: dirty log, "
                + "leaked table frames or host pages), 2 bad options, impossible configuration or scenario error."})
final class RunCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    HelpOption help;

    @Parameters(index = "0", arity = "0..1", paramLabel = "FILE", description = "scenario file (default: run the simulation)")
    String file;

    @Option(names = {"-q", "--quiet"}, description = "scenario: print only failed expectations and the summary line")
    boolean quiet;

    @Option(names = "--builtin-scenario", description = "run the built-in example scenario instead of the simulation")
    boolean builtinScenario;

    @Mixin
    SimulationOptions sim;


    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (file != null || builtinScenario) {
            for (String name : SimulationOptions.names()) {
                OptionSpec o = spec.findOption(name);
                if (spec.commandLine().getParseResult().hasMatchedOption(o)) {
                    err.println("ptlab run: " + name + " applies to the simulation, not to scenario files");
                    return Main.EXIT_ERROR;
                }
            }
            if (file != null && builtinScenario) {
                err.println("ptlab run: FILE and --builtin-scenario are exclusive");
                return Main.EXIT_ERROR;
            }
            return ScenarioSource.runThen(file, quiet ? null : out, out, err, m -> out.println(m.summary()));
        }
        VmConfig config;
        WorkloadOptions.Layout layout;
        Workload<?> workload;
        try {
            config = sim.config();
            layout = sim.layout();
            workload = sim.workload();
            workload.checkLayout(config, layout, sim);
            workload.checkOwnOptions(spec.commandLine().getParseResult()::hasMatchedOption);
            if (sim.json != null) Failures.checkWritableFile("run", "--json", sim.json);
        } catch (IllegalArgumentException e) {
            err.println(Failures.optionLine("run", e.getMessage()));
            return Main.EXIT_ERROR;
        }
        long t0 = System.nanoTime();
        Workload.Run<?> r;
        dev.ptlab.sim.Progress progress = new dev.ptlab.sim.Progress();
        try (Progress p = Progress.start(err, "simulating", progress::fraction)) {
            r = workload.start(config, layout, sim, progress);
        } catch (IllegalArgumentException e) {
            err.println(Failures.optionLine("run", e.getMessage()));
            return Main.EXIT_ERROR;
        }
        long wall = System.nanoTime() - t0;
        SimulationRun.print(out, config, layout, sim, r, wall);
        if (sim.json != null) {
            try {
                SimulationRun.writeJson(sim.json, config, layout, r, wall);
                out.println("metrics written to " + sim.json);
            } catch (IOException e) {
                err.println("ptlab run: --json " + sim.json + ": cannot write (" + Failures.plain(e) + ")");
                return Main.EXIT_ERROR;
            }
        }
        return r.result.passed() ? Main.EXIT_OK : Main.EXIT_FAILED_EXPECTATIONS;
    }
}
