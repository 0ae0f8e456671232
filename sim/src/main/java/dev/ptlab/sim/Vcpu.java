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
 * own memory cache for the tables a fault may need.
 *
 * <p>{@link #access} is what the guest does: translate, and on a stage-2 fault enter the VM's
 * abort handler and retry until the access succeeds or exits to the VMM.
 *
 * <p>Locks: used by one thread at a time, which holds no lock when it calls {@link #access};
 * the abort handler takes the MMU lock inside, and a wait for an invalidation holds nothing.
 * {@link #stats()} is that thread's to write (read it when the vCPU is idle).
 */
public final class Vcpu {
    /** {@link #access} result {@link VmExit#MMIO}: the access left the guest (no memslot, or a write to a read-only slot). */
    public static final long EXIT_MMIO = -1;
    /** {@link #access} result {@link VmExit#ADDRESS_SIZE}: the IPA is beyond the VM's size; the guest gets an address-size fault. */
    public static final long EXIT_ADDRESS_SIZE = -2;
    /** {@link #access} result {@link VmExit#EFAULT}: GUP refused the host page of an address-space memslot. */
    public static final long EXIT_EFAULT = -3;
    /**
     * Faults one access may take, not counting those lost to an MMU-notifier invalidation,
     * before the simulator calls it a livelock. A fault that lost to an invalidation made no
     * mapping because another thread was changing the host page: that thread's progress, not
     * ours, and bounded by how long it takes (the vCPU waits for it), not by a count here.
     */
    static final int MAX_FAULTS_PER_ACCESS = 10_000;
    private final Vm vm;
    private final int id;
    private final Tlb tlb;
    private final Mmu mmu;
    private final MemCache cache;
    final VcpuStats stats = new VcpuStats();
    /** The fault path's GUP result holder, reused by every fault (no allocation per fault). */
    final GupResult gup = new GupResult();
    /** Set by the abort handler with {@link AbortResult#INVALIDATING}: the invalidation sequence to wait past. */
    long invalidationSeq;
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
     * One guest access to {@code gpa}: returns the host PA, or the (negative) {@link VmExit#code()}
     * of the exit it took: {@link #EXIT_MMIO} / {@link #EXIT_ADDRESS_SIZE} / {@link #EXIT_EFAULT}.
     *
     * <p>A fault that lost to an MMU-notifier invalidation still in progress over {@code gpa}
     * waits for it to end before faulting again (KVM's vCPU would re-enter the guest, re-fault
     * and retry for as long as {@code mmu_invalidate_in_progress} covers the page, sleeping in
     * the run loop's reschedule point while the invalidating thread runs); one whose
     * invalidation already ended yields and faults again at once.
     *
     * @throws IllegalStateException if the access keeps faulting for other reasons (a livelock:
     *     a bug)
     */
    public long access(long gpa, Access access) {
        stats.accesses++;
        lifetimeAccesses++;
        for (int stuck = 0; ; ) {
            long r = mmu.translate(gpa, access);
            if (!Translation.isFault(r)) return r;
            if (stuck == MAX_FAULTS_PER_ACCESS) {
                throw new IllegalStateException("vcpu" + id + ": " + access + " of 0x" + Long.toHexString(gpa) + " faulted "
                        + stuck + " times (last " + Translation.faultType(r) + " at level " + Translation.faultLevel(r) + ", entry 0x"
                        + Long.toHexString(mmu.lastPte()) + ")");
            }
            FaultType type = Translation.faultType(r);
            int level = Translation.faultLevel(r);
            stats.faults[type.ordinal()][level + 1]++;
            long t0 = vm.config().latency() ? System.nanoTime() : 0;
            AbortResult outcome = vm.handleAbort(this, gpa, access, type, level, mmu.lastPte());
            if (t0 != 0) stats.latency.recordValue(Math.max(0, System.nanoTime() - t0));
            switch (outcome) {
                case RESUME:
                    stuck++;
                    break;
                case INVALIDATED:
                    // Back to the run loop, where KVM checks need_resched before entering the
                    // guest again: with fewer cores than threads, a tight re-fault loop keeps
                    // the threads invalidating (a device converting pages, a host thread
                    // unmapping) from running at all.
                    Thread.yield();
                    break;
                case INVALIDATING:
                    vm.awaitInvalidationEnd(invalidationSeq);
                    break;
                default:
                    VmExit exit = outcome.exit();
                    stats.exits[exit.ordinal()]++;
                    return exit.code();
            }
        }
    }

    /** Returns the cache's frames to the VM's table memory (when the vCPU is destroyed). */
    void release() {
        cache.release();
        vm.tlbs().unregister(tlb);
    }
}
