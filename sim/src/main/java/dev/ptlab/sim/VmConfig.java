package dev.ptlab.sim;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.table.Stage2PageTable;

/**
 * Everything that shapes a simulated VM and its stage-2 table. Immutable; {@code with...}
 * methods return changed copies.
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
    private boolean hardwareAf;
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
    public boolean hardwareAf() { return hardwareAf; }
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
                + (checking ? ", checking" : "");
    }
}
