package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.mm.GupResult;

/**
 * One virtual CPU: its own MMU and TLB walking the VM's stage-2 table as hardware does, and its
 * own memory cache for the tables a fault may need. Used by one thread at a time.
 *
 * <p>{@link #access} is what the guest does: translate, and on a stage-2 fault enter the VM's
 * abort handler and retry until the access succeeds or exits to the VMM.
 */
public final class Vcpu {
    /** {@link #access} result: the access left the guest (no memslot, or a write to a read-only slot). */
    public static final long EXIT_MMIO = -1;
    /** {@link #access} result: the IPA is beyond the VM's size; the guest gets an address-size fault. */
    public static final long EXIT_ADDRESS_SIZE = -2;
    /**
     * {@link #access} result: the host could not provide the page of an address-space memslot
     * (GUP failed with EFAULT: the range was unmapped, or a write to a read-only VMA); KVM returns
     * -EFAULT from KVM_RUN.
     */
    public static final long EXIT_EFAULT = -3;
    /** Faults one access may take before the simulator calls it a livelock. */
    static final int MAX_FAULTS_PER_ACCESS = 10_000;

    private final Vm vm;
    private final int id;
    private final Tlb tlb;
    private final Mmu mmu;
    private final MemCache cache;
    final VcpuStats stats = new VcpuStats();
    /** The fault path's GUP result holder, reused by every fault (no allocation per fault). */
    final GupResult gup = new GupResult();
    /** Accesses since creation (never reset; read racily by progress displays). */
    private long lifetimeAccesses;

    Vcpu(Vm vm, int id) {
        this.vm = vm;
        this.id = id;
        Granule g = vm.config().granule();
        this.tlb = new Tlb("vcpu" + id, g);
        this.mmu = new Mmu(vm.table().geometry(), vm.tableMemory(), tlb, vm.table().rootPa(), vm.config().vmid(),
                vm.table().fwb(), vm.config().hardwareAf());
        this.cache = new MemCache(vm.tableMemory());
    }

    public int id() { return id; }
    public Tlb tlb() { return tlb; }
    public Mmu mmu() { return mmu; }
    public MemCache cache() { return cache; }
    public VcpuStats stats() { return stats; }
    /** Accesses since the vCPU was created; other threads may read it for progress (a racy but untorn read). */
    public long lifetimeAccesses() { return lifetimeAccesses; }
    public Vm vm() { return vm; }

    /**
     * One guest access to {@code gpa}: returns the host PA, or {@link #EXIT_MMIO} /
     * {@link #EXIT_ADDRESS_SIZE} / {@link #EXIT_EFAULT}.
     *
     * @throws IllegalStateException if the access keeps faulting (a livelock: a bug)
     */
    public long access(long gpa, Access access) {
        stats.accesses++;
        lifetimeAccesses++;
        for (int n = 0; ; n++) {
            long r = mmu.translate(gpa, access);
            if (!Translation.isFault(r)) return r;
            if (n == MAX_FAULTS_PER_ACCESS) {
                throw new IllegalStateException("vcpu" + id + ": " + access + " of 0x" + Long.toHexString(gpa) + " faulted "
                        + n + " times (last " + Translation.faultType(r) + " at level " + Translation.faultLevel(r) + ", entry 0x"
                        + Long.toHexString(mmu.lastPte()) + ")");
            }
            FaultType type = Translation.faultType(r);
            int level = Translation.faultLevel(r);
            stats.faults[type.ordinal()][level + 1]++;
            long t0 = vm.config().latency() ? System.nanoTime() : 0;
            long retriesBefore = stats.seqRetries;
            int outcome = vm.handleAbort(this, gpa, access, type, level, mmu.lastPte());
            // A fault that lost to an invalidation goes back to the run loop, where KVM checks
            // need_resched before entering the guest again. Without that the vCPU re-faults in a
            // tight loop, and with fewer cores than threads it keeps the invalidating thread (a
            // device converting pages, a host thread unmapping) from finishing, so the
            // invalidation stays in progress and every fault retries again: device-atomics with
            // two devices made single accesses fault 10^4 times before this yield.
            if (stats.seqRetries != retriesBefore) Thread.yield();
            if (t0 != 0) stats.latency.recordValue(Math.max(0, System.nanoTime() - t0));
            if (outcome == Vm.EXIT_MMIO) {
                stats.mmioExits++;
                return EXIT_MMIO;
            }
            if (outcome == Vm.EXIT_ADDRESS_SIZE) {
                stats.addressSizeErrors++;
                return EXIT_ADDRESS_SIZE;
            }
            if (outcome == Vm.EXIT_EFAULT) {
                stats.efaultExits++;
                return EXIT_EFAULT;
            }
        }
    }

    /** Returns the cache's frames to the VM's table memory (when the vCPU is destroyed). */
    void release() {
        cache.release();
        vm.tlbs().unregister(tlb);
    }
}
