package dev.ptlab.sim;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.table.Stage2PageTable;

/**
 * Everything that shapes a simulated VM and its stage-2 table. Immutable; {@code with...}
 * methods return changed copies.
 *
 * <p>Hardware features: the model's CPU has each of these unless told otherwise, and the
 * defaults are what Linux 7.1-rc4 does on a CPU that has them all (ARMv8.4-A or later):
 * <ul>
 *   <li>{@link #fwb()} FEAT_S2FWB (kernel: {@code ARM64_HAS_STAGE2_FWB}), on: no D-cache
 *       maintenance when mapping or unmapping;</li>
 *   <li>{@link #rangeTlbi()} FEAT_TLBIRANGE ({@code system_supports_tlb_range()}), on: range
 *       invalidations where the kernel would otherwise invalidate the whole VMID;</li>
 *   <li>{@link #hardwareAf()} FEAT_HAFDBS access-flag updates (VTCR_EL2.HA, set by
 *       {@code kvm_get_vtcr} whenever {@code CONFIG_ARM64_HW_AFDBM}), on: the MMUs set the access
 *       flag of an old entry themselves instead of taking an access-flag fault;</li>
 *   <li>{@link #xnx()} FEAT_XNX ({@code ARM64_HAS_XNX}), on: privileged and unprivileged
 *       execute rights may differ (off: the table refuses {@code px != ux}).</li>
 * </ul>
 * Off, each shows what the kernel pays without it (cache maintenance, VMID-wide TLBIs,
 * access-flag faults after aging).
 */
public final class VmConfig {
    private Granule granule = Granule.G4K;
    private int ipaBits = 40;
    private int vmid = 1;
    private int tableFlags = Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI;
    private boolean checking;
    private CoalescePolicy coalescePolicy = CoalescePolicy.INSTALL_FIRST;
    private FaultLocking faultLocking = FaultLocking.SHARED;
    private long eagerSplitChunk;
    private boolean hardwareAf = true;
    private long tableMemory = 1L << 30;
    private boolean latency = true;
    private HostMemoryModel hostMemory = HostMemoryModel.PROCESS;

    public static VmConfig defaults() {
        return new VmConfig();
    }

    private VmConfig copy() {
        VmConfig c = new VmConfig();
        c.granule = granule;
        c.ipaBits = ipaBits;
        c.vmid = vmid;
        c.tableFlags = tableFlags;
        c.checking = checking;
        c.coalescePolicy = coalescePolicy;
        c.faultLocking = faultLocking;
        c.eagerSplitChunk = eagerSplitChunk;
        c.hardwareAf = hardwareAf;
        c.tableMemory = tableMemory;
        c.latency = latency;
        c.hostMemory = hostMemory;
        return c;
    }

    public Granule granule() { return granule; }
    public int ipaBits() { return ipaBits; }
    public int vmid() { return vmid; }
    public int tableFlags() { return tableFlags; }
    public boolean checking() { return checking; }
    public CoalescePolicy coalescePolicy() { return coalescePolicy; }
    public FaultLocking faultLocking() { return faultLocking; }
    /** Eager split chunk in bytes (0: blocks are split by write faults instead). */
    public long eagerSplitChunk() { return eagerSplitChunk; }
    /** Whether the MMUs set access flags themselves (VTCR_EL2.HA); see the class comment. */
    public boolean hardwareAf() { return hardwareAf; }
    /** Whether the CPU has FEAT_S2FWB (table flag {@link Stage2PageTable#FWB}). */
    public boolean fwb() { return (tableFlags & Stage2PageTable.FWB) != 0; }
    /** Whether the CPU has range TLBI (table flag {@link Stage2PageTable#RANGE_TLBI}). */
    public boolean rangeTlbi() { return (tableFlags & Stage2PageTable.RANGE_TLBI) != 0; }
    /** Whether the CPU has FEAT_XNX (table flag {@link Stage2PageTable#NO_XNX} absent). */
    public boolean xnx() { return (tableFlags & Stage2PageTable.NO_XNX) == 0; }
    /** Bytes of simulated physical memory the table frames come from. */
    public long tableMemory() { return tableMemory; }
    /** Whether fault-handling latency is recorded (two clock reads per fault). */
    public boolean latency() { return latency; }
    /**
     * Where the workloads' guest memory comes from: a host process's anonymous memory (the
     * default) or a fixed host-physical range. {@link Vm} itself takes memslots of either kind.
     */
    public HostMemoryModel hostMemory() { return hostMemory; }

    public VmConfig withGranule(Granule g) {
        if (g == null) throw new IllegalArgumentException("granule: null");
        VmConfig c = copy();
        c.granule = g;
        return c;
    }

    public VmConfig withIpaBits(int bits) {
        VmConfig c = copy();
        c.ipaBits = bits;
        return c;
    }

    public VmConfig withVmid(int vmid) {
        VmConfig c = copy();
        c.vmid = vmid;
        return c;
    }

    public VmConfig withTableFlags(int flags) {
        VmConfig c = copy();
        c.tableFlags = flags;
        return c;
    }

    public VmConfig withFwb(boolean on) {
        return withTableFlag(Stage2PageTable.FWB, on);
    }

    public VmConfig withRangeTlbi(boolean on) {
        return withTableFlag(Stage2PageTable.RANGE_TLBI, on);
    }

    /** FEAT_XNX on (the default) or off; off sets the table flag {@link Stage2PageTable#NO_XNX}. */
    public VmConfig withXnx(boolean on) {
        return withTableFlag(Stage2PageTable.NO_XNX, !on);
    }

    private VmConfig withTableFlag(int flag, boolean set) {
        return withTableFlags(set ? tableFlags | flag : tableFlags & ~flag);
    }

    public VmConfig withChecking(boolean on) {
        VmConfig c = copy();
        c.checking = on;
        return c;
    }

    public VmConfig withCoalescePolicy(CoalescePolicy p) {
        if (p == null) throw new IllegalArgumentException("coalesce policy: null");
        VmConfig c = copy();
        c.coalescePolicy = p;
        return c;
    }

    public VmConfig withFaultLocking(FaultLocking f) {
        if (f == null) throw new IllegalArgumentException("fault locking: null");
        VmConfig c = copy();
        c.faultLocking = f;
        return c;
    }

    public VmConfig withEagerSplitChunk(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("eager split chunk: " + bytes + " is negative");
        VmConfig c = copy();
        c.eagerSplitChunk = bytes;
        return c;
    }

    /**
     * Whether the VM accepts {@link #eagerSplitChunk()}: 0, or the size of a block its stage-2
     * table can hold (a {@link Vm} refuses any other, with a message listing them). Lets a caller
     * tell that refusal from others without reading the message.
     */
    public boolean eagerSplitChunkValid() {
        return eagerSplitChunk == 0 || Vm.isBlockSize(Geometry.stage2(granule, ipaBits), eagerSplitChunk);
    }

    public VmConfig withHardwareAf(boolean on) {
        VmConfig c = copy();
        c.hardwareAf = on;
        return c;
    }

    public VmConfig withTableMemory(long bytes) {
        VmConfig c = copy();
        c.tableMemory = bytes;
        return c;
    }

    public VmConfig withLatency(boolean on) {
        VmConfig c = copy();
        c.latency = on;
        return c;
    }

    public VmConfig withHostMemory(HostMemoryModel m) {
        if (m == null) throw new IllegalArgumentException("host memory: null");
        VmConfig c = copy();
        c.hostMemory = m;
        return c;
    }

    @Override
    public String toString() {
        return granule.label() + " granule, " + ipaBits + "-bit IPA, faults " + faultLocking + ", coalesce "
                + coalescePolicy.name().toLowerCase(java.util.Locale.ROOT).replace('_', '-') + ", eager split "
                + (eagerSplitChunk == 0 ? "off" : "0x" + Long.toHexString(eagerSplitChunk)) + ", host memory " + hostMemory
                + ", " + features() + (checking ? ", checking" : "");
    }

    /** The hardware features as their option names give them: {@code fwb on, range-tlbi on, hardware-af on, xnx on}. */
    public String features() {
        return "fwb " + onOff(fwb()) + ", range-tlbi " + onOff(rangeTlbi()) + ", hardware-af " + onOff(hardwareAf) + ", xnx "
                + onOff(xnx());
    }

    private static String onOff(boolean on) {
        return on ? "on" : "off";
    }
}
