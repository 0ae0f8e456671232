package dev.ptlab.cli;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.sim.Backing;
import dev.ptlab.sim.FaultLocking;
import dev.ptlab.sim.PageTableTest;
import dev.ptlab.sim.VmConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
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
            "Without FILE: creates a VM (one memslot at the top of guest-physical space, N vCPU threads, each with "
                + "its own MMU and TLB) and runs the selftest's phases: create (touch every large page), log-enable "
                + "(dirty logging: write-protect, optional eager split), update (even vCPUs write, odd vCPUs read), "
                + "log-harvest, log-disable, adjust (read every page: blocks come back). Prints one row of metrics per "
                + "phase; --json writes every metric.",
            "With FILE: executes the scenario and prints each command's result, then a summary line. FILE - reads "
                + "standard input; --builtin-scenario runs the built-in example scenario."},
        footer = {"", "Exit codes: 0 success, 1 a scenario expectation failed (or the simulation's own checks: dirty log, "
                + "leaked frames), 2 bad options, impossible configuration or scenario error."})
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

    @Option(names = "--memory", paramLabel = "SIZE", defaultValue = "1G", description = "guest memory (default: ${DEFAULT-VALUE})")
    String memory;

    @Option(names = "--vcpus", paramLabel = "N", defaultValue = "2", description = "vCPU threads (default: ${DEFAULT-VALUE})")
    int vcpus;

    @Option(names = "--backing", paramLabel = "KIND", defaultValue = "page",
            description = "host backing: page, thp (level-2 blocks) or hugetlb (level-1 blocks with 4K) (default: ${DEFAULT-VALUE})")
    String backing;

    @Option(names = "--granule", paramLabel = "G", defaultValue = "4k", description = "4k, 16k or 64k (default: ${DEFAULT-VALUE})")
    String granule;

    @Option(names = "--ipa-bits", paramLabel = "N", defaultValue = "40", description = "guest IPA size, 32..52 (default: ${DEFAULT-VALUE})")
    int ipaBits;

    @Option(names = "--eager-split", paramLabel = "SIZE", defaultValue = "0",
            description = "eager split chunk when dirty logging starts: 0 (split on write faults) or a block size (default: ${DEFAULT-VALUE})")
    String eagerSplit;

    @Option(names = "--coalesce", paramLabel = "ORDER", defaultValue = "install-first",
            description = "table-to-block order: install-first or legacy (unmap first) (default: ${DEFAULT-VALUE})")
    String coalesce;

    @Option(names = "--fault-lock", paramLabel = "MODE", defaultValue = "shared",
            description = "faults under the MMU read lock as shared walks (shared) or all under the write lock (write) (default: ${DEFAULT-VALUE})")
    String faultLock;

    @Option(names = "--checking", description = "checking mode: use-after-free, BBM, read-section and TLB conflict checks (slower)")
    boolean checking;

    @Option(names = "--hardware-af", description = "the MMUs set the access flag themselves (VTCR_EL2.HA)")
    boolean hardwareAf;

    @Option(names = "--json", paramLabel = "FILE", description = "also write every metric to FILE as JSON")
    Path json;

    static final List<String> SIMULATION_OPTIONS = List.of("--memory", "--vcpus", "--backing", "--granule", "--ipa-bits",
            "--eager-split", "--coalesce", "--fault-lock", "--checking", "--hardware-af", "--json");

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (file != null || builtinScenario) {
            for (String name : SIMULATION_OPTIONS) {
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
        PageTableTest.Options options;
        try {
            config = config(this);
            options = PageTableTest.Options.defaults().memory(Numbers.parseSize("--memory", memory)).backing(Backing.parse(backing))
                    .vcpus(vcpus);
            PageTableTest.slotBase(config, options);
        } catch (IllegalArgumentException e) {
            err.println("ptlab run: " + e.getMessage());
            return Main.EXIT_ERROR;
        }
        long t0 = System.nanoTime();
        PageTableTest.Result r;
        try (Progress p = Progress.start(err, "simulating")) {
            r = PageTableTest.run(config, options);
        } catch (IllegalArgumentException e) {
            err.println("ptlab run: " + e.getMessage());
            return Main.EXIT_ERROR;
        }
        long wall = System.nanoTime() - t0;
        SimulationRun.print(out, config, options, r, wall);
        if (json != null) {
            try {
                SimulationRun.writeJson(json, config, options, r, wall);
                out.println("metrics written to " + json);
            } catch (IOException e) {
                err.println("ptlab run: --json " + json + ": cannot write (" + e.getMessage() + ")");
                return Main.EXIT_ERROR;
            }
        }
        return r.dirtyLogExact() && r.framesInUseAtEnd == 0 ? Main.EXIT_OK : Main.EXIT_FAILED_EXPECTATIONS;
    }

    /** The VM configuration the simulation options describe. */
    static VmConfig config(RunCommand c) {
        Granule g = Granule.parse(c.granule);
        if (c.ipaBits < 32 || c.ipaBits > 52) throw new IllegalArgumentException("--ipa-bits: " + c.ipaBits + " is outside 32..52");
        long chunk = Numbers.parseSize("--eager-split", c.eagerSplit);
        CoalescePolicy policy;
        switch (c.coalesce.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "install-first": policy = CoalescePolicy.INSTALL_FIRST; break;
            case "legacy": case "unmap-first": policy = CoalescePolicy.UNMAP_FIRST; break;
            default: throw new IllegalArgumentException("--coalesce: " + c.coalesce + " is not one of install-first, legacy");
        }
        VmConfig cfg = VmConfig.defaults().withGranule(g).withIpaBits(c.ipaBits).withEagerSplitChunk(chunk).withCoalescePolicy(policy)
                .withFaultLocking(FaultLocking.parse(c.faultLock)).withChecking(c.checking).withHardwareAf(c.hardwareAf);
        // Validates the eager split chunk against the granule's block sizes.
        new dev.ptlab.sim.Vm(cfg).destroy();
        return cfg;
    }
}
