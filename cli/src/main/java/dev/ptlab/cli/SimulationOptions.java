package dev.ptlab.cli;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.sim.Backing;
import dev.ptlab.sim.DeviceAtomics;
import dev.ptlab.sim.FaultLocking;
import dev.ptlab.sim.HostMemoryModel;
import dev.ptlab.sim.PageTableTest;
import dev.ptlab.sim.RandomAccess;
import dev.ptlab.sim.Vm;
import dev.ptlab.sim.VmConfig;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Option;

/** The simulation's options, shared by {@code ptlab run} and {@code ptlab compare}. */
final class SimulationOptions {
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

    @Option(names = "--host-memory", paramLabel = "MODEL", defaultValue = "process",
            description = "guest memory from a host process's anonymous memory, kept coherent by MMU notifiers (process), "
                    + "or a fixed host-physical range (fixed) (default: ${DEFAULT-VALUE})")
    String hostMemory;

    @Option(names = "--checking", description = "checking mode: use-after-free, BBM, read-section and TLB conflict checks (slower)")
    boolean checking;

    @Option(names = "--hardware-af", description = "the MMUs set the access flag themselves (VTCR_EL2.HA)")
    boolean hardwareAf;

    @Option(names = "--json", paramLabel = "FILE", description = "also write every metric to FILE as JSON")
    Path json;

    @Option(names = "--overlap", description = "every vCPU touches all of memory in the same order (the selftest's contention), "
            + "instead of its own share")
    boolean overlap;

    @Option(names = "--workload", paramLabel = "NAME", defaultValue = "selftest",
            description = "selftest (kvm_page_table_test's phases), random (random accesses, mostly to a hot set) or "
                    + "device-atomics (random accesses while devices make atomic adds to the same host memory) (default: ${DEFAULT-VALUE})")
    String workload;

    @Option(names = "--devices", paramLabel = "N", defaultValue = "1",
            description = "device-atomics: devices beside the vCPUs, each making --accesses atomic adds, 0.."
                    + DeviceAtomics.MAX_DEVICES + " (default: ${DEFAULT-VALUE})")
    int devices;

    @Option(names = "--accesses", paramLabel = "N", defaultValue = "1000000",
            description = "random, device-atomics: accesses per vCPU (and atomic adds per device) (default: ${DEFAULT-VALUE})")
    long accesses;

    @Option(names = "--hot", paramLabel = "FRACTION", defaultValue = "0.05",
            description = "random, device-atomics: share of pages in the hot set that 90% of accesses go to (default: ${DEFAULT-VALUE})")
    double hot;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "1", description = "random, device-atomics: seed (default: ${DEFAULT-VALUE})")
    long seed;

    /** Every option name, to refuse them where they do not apply. */
    static final List<String> NAMES = List.of("--memory", "--vcpus", "--backing", "--granule", "--ipa-bits", "--eager-split",
            "--coalesce", "--fault-lock", "--host-memory", "--checking", "--hardware-af", "--json", "--overlap", "--workload", "--devices", "--accesses",
            "--hot", "--seed");

    /** The workloads {@code --workload} names. */
    enum Workload {
        SELFTEST("selftest", "kvm_page_table_test"),
        RANDOM("random", "random accesses"),
        DEVICE_ATOMICS("device-atomics", "device atomics");

        final String label;
        final String title;

        Workload(String label, String title) {
            this.label = label;
            this.title = title;
        }
    }

    /** Runs the chosen workload, publishing its progress to {@code progress}. */
    PageTableTest.Result run(VmConfig config, dev.ptlab.sim.Progress progress) {
        PageTableTest.Options o = options();
        Workload w = workload();
        if (w == Workload.SELFTEST) return PageTableTest.run(config, o, progress);
        RandomAccess.Options ro = RandomAccess.Options.defaults().memory(o.memory()).backing(o.backing()).vcpus(o.vcpus())
                .accesses(accesses).hotFraction(hot).seed(seed);
        if (w == Workload.RANDOM) return RandomAccess.run(config, ro, progress);
        return DeviceAtomics.run(config, ro, devices, progress);
    }

    /** The workload; also checks the options only it uses. */
    Workload workload() {
        Workload w;
        switch (workload.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "selftest": case "kvm_page_table_test": w = Workload.SELFTEST; break;
            case "random": w = Workload.RANDOM; break;
            case "device-atomics": case "device_atomics": w = Workload.DEVICE_ATOMICS; break;
            default: throw new IllegalArgumentException("--workload: " + workload + " is not one of selftest, random, device-atomics");
        }
        if (w == Workload.DEVICE_ATOMICS && (devices < 0 || devices > DeviceAtomics.MAX_DEVICES)) {
            throw new IllegalArgumentException("--devices: " + devices + " is outside 0.." + DeviceAtomics.MAX_DEVICES);
        }
        return w;
    }

    /**
     * Whether a run passed its own checks: every table frame and host page returned, and the
     * selftest's dirty log exact, or device-atomics' memory sum equal to the adds made.
     */
    boolean passed(PageTableTest.Result r) {
        switch (workload()) {
            case SELFTEST: return r.dirtyLogExact() && r.memoryReturned();
            case DEVICE_ATOMICS: return r.deviceAtomics.coherent() && r.memoryReturned();
            default: return r.memoryReturned();
        }
    }

    /** A copy to vary one option of. */
    SimulationOptions copy() {
        SimulationOptions c = new SimulationOptions();
        c.memory = memory;
        c.vcpus = vcpus;
        c.backing = backing;
        c.granule = granule;
        c.ipaBits = ipaBits;
        c.eagerSplit = eagerSplit;
        c.coalesce = coalesce;
        c.faultLock = faultLock;
        c.hostMemory = hostMemory;
        c.checking = checking;
        c.hardwareAf = hardwareAf;
        c.json = json;
        c.overlap = overlap;
        c.workload = workload;
        c.devices = devices;
        c.accesses = accesses;
        c.hot = hot;
        c.seed = seed;
        return c;
    }

    /** The workload the options describe. */
    PageTableTest.Options options() {
        return PageTableTest.Options.defaults().memory(Numbers.parseSize("--memory", memory)).backing(Backing.parse(backing))
                .vcpus(vcpus).overlap(overlap);
    }

    /** The VM configuration the simulation options describe. */
    VmConfig config() {
        SimulationOptions c = this;
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
                .withFaultLocking(FaultLocking.parse(c.faultLock)).withChecking(c.checking).withHardwareAf(c.hardwareAf)
                .withHostMemory(HostMemoryModel.parse(c.hostMemory));
        // Validates the eager split chunk against the granule's block sizes.
        new Vm(cfg).destroy();
        return cfg;
    }
}
