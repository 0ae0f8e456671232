package dev.ptlab.cli;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.sim.Backing;
import dev.ptlab.sim.DeviceAtomics;
import dev.ptlab.sim.FaultLocking;
import dev.ptlab.sim.HostMemoryModel;
import dev.ptlab.sim.Vm;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.WorkloadOptions;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;

/**
 * The simulation's options, shared by {@code ptlab run} and {@code ptlab compare}: the VM's
 * configuration, the memslot's layout, the workload ({@link Workload#ALL}) and the options of
 * the workloads that use them.
 */
final class SimulationOptions {
    @Option(names = {"-b", "--memory"}, paramLabel = "SIZE", defaultValue = "1G",
            description = "guest memory; the selftest rounds it up to its backing's granularity (default: ${DEFAULT-VALUE})")
    String memory;

    @Option(names = {"-v", "--vcpus"}, paramLabel = "N", defaultValue = "1", description = "vCPU threads (default: ${DEFAULT-VALUE})")
    int vcpus;

    @Option(names = {"-s", "--backing"}, paramLabel = "KIND", defaultValue = "anonymous",
            description = "host backing as the KVM selftests name it: anonymous, anonymous_thp, anonymous_hugetlb (the host's default "
                    + "huge page: 2M with 4K pages), anonymous_hugetlb_<size> (64kb, 2mb, 32mb, 1gb with 4K pages; 2mb, 32mb, 1gb "
                    + "with 16K; 2mb, 512mb, 16gb with 64K), shmem, shared_hugetlb; or page, thp, hugetlb (default: ${DEFAULT-VALUE})")
    String backing;

    @Option(names = {"-m", "--mode"}, paramLabel = "ID", split = ",",
            description = "selftest: guest mode ID as the selftest numbers them (0 P52V48_4K ... 6 P40V48_4K ... 12 P36V48_4K ...), "
                    + "or its name; repeatable (default: every mode the host supports, in turn)")
    List<String> modes;

    @Option(names = {"-p", "--phys-offset"}, paramLabel = "GPA",
            description = "selftest: the test region's guest-physical address, aligned down to the backing's granularity "
                    + "(default: the top of the IPA space minus the size)")
    String physOffset;

    @Option(names = "--host-ipa-limit", paramLabel = "BITS",
            description = "selftest: the largest IPA size the simulated host's KVM offers (KVM_CAP_ARM_VM_IPA_SIZE), 32..52 (default: "
                    + SelftestWorkload.DEFAULT_HOST_IPA_LIMIT + ")")
    Integer hostIpaLimit;

    @Option(names = "--host-granules", paramLabel = "LIST",
            description = "selftest: the guest page sizes the simulated host's CPU supports, e.g. 4k,16k,64k (default: "
                    + SelftestWorkload.DEFAULT_HOST_GRANULES + ")")
    String hostGranules;

    @Option(names = "--schedule", paramLabel = "HOW",
            description = "selftest: concurrent (one thread per vCPU, all at once) or serial (vCPU 0's whole walk, then vCPU 1's, ...: "
                    + "exact counts) (default: concurrent)")
    String schedule;

    @Option(names = "--partition", description = "selftest: each vCPU walks only its own share of the large pages, "
            + "instead of the whole region (ptlab's variant; the selftest has every vCPU walk everything)")
    boolean partition;

    @Option(names = "--granule", paramLabel = "G", defaultValue = "4k", description = "4k, 16k or 64k (default: ${DEFAULT-VALUE})")
    String granule;

    @Option(names = "--ipa-bits", paramLabel = "N",
            description = "guest IPA size, 32..52 (default: 40; the selftest takes it from its guest mode instead)")
    Integer ipaBits;

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

    @Option(names = "--json", paramLabel = "FILE", description = "also write every metric to FILE as JSON")
    Path json;

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
            description = "random, device-atomics: share of pages in the hot set that 90%% of accesses go to (default: ${DEFAULT-VALUE})")
    double hot;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "1", description = "random, device-atomics: seed (default: ${DEFAULT-VALUE})")
    long seed;

    // ------------------------------------------------------------------------------------------
    // Hardware features (VmConfig's class comment): each on|off, a bare option meaning on.

    @Option(names = "--fwb", arity = "0..1", fallbackValue = "on", defaultValue = "on", paramLabel = "on|off",
            description = "FEAT_S2FWB: off makes every cacheable map and unmap clean the D-cache (default: ${DEFAULT-VALUE})")
    String fwb;

    @Option(names = "--range-tlbi", arity = "0..1", fallbackValue = "on", defaultValue = "on", paramLabel = "on|off",
            description = "range TLBI (FEAT_TLBIRANGE): off invalidates the whole VMID where a range would do (default: ${DEFAULT-VALUE})")
    String rangeTlbi;

    @Option(names = "--hardware-af", arity = "0..1", fallbackValue = "on", defaultValue = "on", paramLabel = "on|off",
            description = "the MMUs set the access flag themselves (VTCR_EL2.HA, as the kernel sets it); off: access-flag faults "
                    + "(default: ${DEFAULT-VALUE})")
    String hardwareAf;

    @Option(names = "--xnx", arity = "0..1", fallbackValue = "on", defaultValue = "on", paramLabel = "on|off",
            description = "FEAT_XNX: off refuses execute rights that differ between EL1 and EL0 (default: ${DEFAULT-VALUE})")
    String xnx;

    /** {@code cfg} with the hardware-feature options applied. */
    VmConfig withFeatures(VmConfig cfg) {
        return cfg.withFwb(onOff("--fwb", fwb)).withRangeTlbi(onOff("--range-tlbi", rangeTlbi))
                .withHardwareAf(onOff("--hardware-af", hardwareAf)).withXnx(onOff("--xnx", xnx));
    }

    /** {@code on} or {@code off} (any case) as a boolean; IllegalArgumentException naming {@code option} otherwise. */
    static boolean onOff(String option, String value) {
        switch (value.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "on": return true;
            case "off": return false;
            default: throw new IllegalArgumentException(option + ": " + value + " is not on or off");
        }
    }

    // ------------------------------------------------------------------------------------------

    /** Every option's name, in declaration order (read from picocli's model of this class), to refuse them where they do not apply. */
    static List<String> names() {
        List<String> names = new ArrayList<>();
        for (OptionSpec o : CommandSpec.forAnnotatedObject(new SimulationOptions()).options()) names.add(o.longestName());
        return names;
    }

    /** A copy to vary one option of: every option's value, copied through picocli's model of this class. */
    SimulationOptions copy() {
        SimulationOptions c = new SimulationOptions();
        CommandSpec to = CommandSpec.forAnnotatedObject(c);
        for (OptionSpec o : CommandSpec.forAnnotatedObject(this).options()) to.findOption(o.longestName()).setValue(o.getValue());
        return c;
    }

    /** The workload {@code --workload} names; also checks the options only it uses. */
    Workload<?> workload() {
        Workload<?> w = Workload.named(workload);
        w.check(this);
        return w;
    }

    /** The memslot's layout the options describe: memory, backing and vCPUs. */
    WorkloadOptions.Layout layout() {
        return new WorkloadOptions.Layout().memory(Numbers.parseSize("--memory", memory)).backing(Backing.parse(backing)).vcpus(vcpus);
    }

    /**
     * Runs the chosen workload on {@code config} for {@code ptlab compare}, publishing its progress
     * to {@code progress}: the selftest in its first guest mode only, so every run's phases line
     * up by name.
     */
    Workload.Run<?> run(VmConfig config, dev.ptlab.sim.Progress progress) {
        firstModeOnly = true;
        return workload().start(config, layout(), this, progress);
    }

    /** Set by {@link #run}: the selftest runs its first guest mode only. */
    boolean firstModeOnly;

    /** The VM configuration the simulation options describe. */
    VmConfig config() {
        SimulationOptions c = this;
        Granule g = Granule.parse(c.granule);
        int ipaBits = c.ipaBits == null ? 40 : c.ipaBits;
        if (ipaBits < 32 || ipaBits > 52) throw new IllegalArgumentException("--ipa-bits: " + ipaBits + " is outside 32..52");
        // The selftest's VM takes its IPA size from the guest mode (the first, if several run in turn).
        if (workload().selftest()) ipaBits = SelftestWorkload.modes(c).get(0).paBits();
        long chunk = Numbers.parseSize("--eager-split", c.eagerSplit);
        CoalescePolicy policy;
        switch (c.coalesce.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "install-first": policy = CoalescePolicy.INSTALL_FIRST; break;
            case "legacy": case "unmap-first": policy = CoalescePolicy.UNMAP_FIRST; break;
            default: throw new IllegalArgumentException("--coalesce: " + c.coalesce + " is not one of install-first, legacy");
        }
        VmConfig cfg = VmConfig.defaults().withGranule(g).withIpaBits(ipaBits).withEagerSplitChunk(chunk).withCoalescePolicy(policy)
                .withFaultLocking(FaultLocking.parse(c.faultLock)).withChecking(c.checking)
                .withHostMemory(HostMemoryModel.parse(c.hostMemory));
        cfg = withFeatures(cfg);
        // Validates the eager split chunk against the granule's block sizes.
        new Vm(cfg).destroy();
        return cfg;
    }
}
