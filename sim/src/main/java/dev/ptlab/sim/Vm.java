package dev.ptlab.sim;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A simulated VM: a VMID, a stage-2 table with its MMU lock, memslots, vCPUs, and what KVM/arm64
 * does for them. This class owns the VM's lifetime and is the one public entry point; the work
 * is in its parts, each with its own lock contract:
 * <ul>
 *   <li>{@link Memslots}: adding and finding memslots;</li>
 *   <li>{@link AbortHandler}: the guest-abort handler a vCPU enters on a stage-2 fault;</li>
 *   <li>{@link DirtyLog}: dirty logging and the dirty bitmap;</li>
 *   <li>{@link NotifierBridge} with {@link MmuInvalidations}: the MMU notifiers that keep memslots
 *       backed by a host address space coherent with the host, as KVM keeps them (an
 *       invalidation unmaps the stage-2 range it covers and is tracked by KVM's
 *       {@code mmu_invalidate_in_progress} and {@code mmu_invalidate_seq}; reference
 *       mm-exclusive-rcu.md B.3, B.8).</li>
 * </ul>
 *
 * <p>Locks: no public method expects a lock held by the caller. Memslot changes are serialised
 * among themselves; table changes take the MMU lock ({@link #mmuLock()}); vCPU operations are
 * used by one thread per vCPU.
 */
public final class Vm {
    /** Where table frames live in the simulated physical address space (far from guest memory). */
    public static final long TABLE_MEMORY_BASE = 0x7F00_0000_0000L;

    private final VmConfig config;
    private final Geometry geometry;
    private final PhysicalMemory tableMemory;
    private final TlbSystem tlbs = new TlbSystem();
    private final Stage2PageTable table;
    private final List<Vcpu> vcpus = new CopyOnWriteArrayList<>();
    private final MemCache splitCache;
    private final Memslots slots;
    private final MmuInvalidations invalidations = new MmuInvalidations();
    private final NotifierBridge notifiers;
    private final AbortHandler aborts;
    private final DirtyLog dirtyLog;

    public Vm(VmConfig config) {
        if (config == null) throw new IllegalArgumentException("config: null");
        this.config = config;
        this.geometry = Geometry.stage2(config.granule(), config.ipaBits());
        long chunk = config.eagerSplitChunk();
        if (!config.eagerSplitChunkValid()) {
            throw new IllegalArgumentException("eager split chunk: 0x" + Long.toHexString(chunk) + " is not 0 or a block size of the "
                    + config.granule().label() + " granule (" + blockSizes(geometry) + ")");
        }
        this.tableMemory = new PhysicalMemory(TABLE_MEMORY_BASE, config.tableMemory(), config.granule(), config.checking());
        this.table = new Stage2PageTable(geometry, tableMemory, tlbs, config.vmid(), config.tableFlags());
        table.setCoalescePolicy(config.coalescePolicy());
        // The eager-split cache's capacity is its minimum, one chunk's worth of tables, as KVM
        // sizes kvm->arch.mmu.split_page_cache (Linux 7.1-rc4).
        this.splitCache = new MemCache(tableMemory, (int) Math.max(1, Math.min(Integer.MAX_VALUE, DirtyLog.splitCapacity(geometry, chunk))));
        this.slots = new Memslots(geometry);
        this.notifiers = new NotifierBridge(table, tlbs, config.vmid(), config.granule().pageSize(), slots, invalidations);
        this.aborts = new AbortHandler(geometry, table, slots, invalidations, config.faultLocking());
        this.dirtyLog = new DirtyLog(table, chunk, splitCache);
    }

    /** Whether stage-2 of {@code geometry} can map a block (not a page) of {@code size}. */
    static boolean isBlockSize(Geometry geometry, long size) {
        for (int l = 0; l < Granule.LAST_LEVEL; l++) if (geometry.leafAllowed(l) && geometry.granule().levelSize(l) == size) return true;
        return false;
    }

    private static String blockSizes(Geometry geometry) {
        List<String> s = new ArrayList<>();
        for (int l = 0; l < Granule.LAST_LEVEL; l++) if (geometry.leafAllowed(l)) s.add("0x" + Long.toHexString(geometry.granule().levelSize(l)));
        return String.join(", ", s);
    }

    public VmConfig config() { return config; }
    public Stage2PageTable table() { return table; }
    public PhysicalMemory tableMemory() { return tableMemory; }
    public TlbSystem tlbs() { return tlbs; }
    public MmuLock mmuLock() { return table.mmuLock(); }
    public List<Vcpu> vcpus() { return List.copyOf(vcpus); }
    public List<Memslot> memslots() { return slots.all(); }
    public long ipaLimit() { return geometry.iaLimit(); }
    long splitCacheRefills() { return splitCache.refills(); }

    /** Guest accesses made by all vCPUs so far (for progress displays). */
    public long accessesSoFar() {
        long n = 0;
        for (Vcpu v : vcpus) n += v.lifetimeAccesses();
        return n;
    }

    /**
     * Table-memory frames held in memory caches (every vCPU's and the eager-split cache): in use,
     * but not part of the table.
     */
    public long cachedFrames() {
        long n = splitCache.size();
        for (Vcpu v : vcpus) n += v.cache().size();
        return n;
    }

    // ------------------------------------------------------------------------------------------
    // memslots

    /**
     * Adds a memslot of guest-physical {@code [gpa, gpa + size)} backed by the fixed host-physical
     * range from {@code hostPa}: guest page {@code gpa} is always host PA {@code hostPa + (gpa -
     * slot start)}, no host page table is involved, and {@code backing} bounds the mapping size.
     * (The form scenario files and hand-computed tests use; {@link #addMemslot(long, long,
     * AddressSpace, long, boolean)} is the KVM-like one.)
     *
     * @throws IllegalArgumentException naming the argument: size not a positive multiple of the
     *     backing's page size, addresses not aligned to it, the slot beyond the IPA space or
     *     overlapping another, host memory beyond the physical address space
     */
    public Memslot addMemslot(long gpa, long size, Backing backing, long hostPa, boolean readOnly) {
        return slots.addFixed(gpa, size, backing, hostPa, readOnly);
    }

    /**
     * Adds a memslot of guest-physical {@code [gpa, gpa + size)} backed by host virtual
     * {@code [hva, hva + size)} of {@code mm} (KVM_SET_USER_MEMORY_REGION with
     * {@code userspace_addr}). Faults resolve each page through {@link AddressSpace#getUserPage}
     * and map it with the host's own mapping size (a THP as a block when guest and host
     * addresses are congruent); the first slot of an address space registers the VM's MMU
     * notifier with it, so host changes (munmap, mprotect, MADV_DONTNEED, fork, reclaim,
     * device-exclusive conversion) unmap the stage-2 range they cover.
     *
     * @throws IllegalArgumentException naming the argument: mm null or closed or of another
     *     granule, size not a positive multiple of the page size, gpa or hva not page-aligned, the
     *     slot beyond the IPA space or overlapping another, or {@code [hva, hva + size)} not
     *     covered by VMAs of {@code mm} without a hole
     */
    public Memslot addMemslot(long gpa, long size, AddressSpace mm, long hva, boolean readOnly) {
        // Subscribe before the slot is visible to faults, so no host change can fall between.
        return slots.addAddressSpace(gpa, size, mm, hva, readOnly, notifiers::subscribe);
    }

    /** The host address spaces backing memslots, each once. */
    public List<AddressSpace> addressSpaces() {
        return notifiers.addressSpaces();
    }

    /** The memslot containing {@code gpa}, or null. */
    public Memslot memslot(long gpa) {
        return slots.find(gpa);
    }

    /** Creates a vCPU with its own MMU, TLB (receiving broadcast TLBIs) and memory cache. */
    public synchronized Vcpu createVcpu() {
        Vcpu v = new Vcpu(this, vcpus.size());
        tlbs.register(v.tlb());
        vcpus.add(v);
        return v;
    }

    // ------------------------------------------------------------------------------------------
    // guest aborts

    /**
     * Handles a stage-2 fault of {@code vcpu} on {@code gpa} ({@link AbortHandler}).
     *
     * @param observed the entry the MMU found (the invalid one for a translation fault)
     */
    AbortResult handleAbort(Vcpu vcpu, long gpa, Access access, FaultType type, int level, long observed) {
        return aborts.handle(vcpu, gpa, access, type, level, observed);
    }

    /**
     * After {@link AbortResult#INVALIDATING}: waits, holding nothing, until an invalidation ends
     * after the sequence was {@code seenSeq} ({@link MmuInvalidations#awaitEnd}).
     */
    void awaitInvalidationEnd(long seenSeq) {
        invalidations.awaitEnd(seenSeq);
    }

    /**
     * Test hook: {@code afterGup} runs in every address-space fault after GUP returned the host
     * page and before the MMU lock is taken (null: none). Set it from the thread that runs the
     * vCPU.
     */
    void setFaultHook(Runnable afterGup) {
        aborts.setFaultHook(afterGup);
    }

    // ------------------------------------------------------------------------------------------
    // dirty logging

    /**
     * Starts dirty logging on {@code slot}: write-protects it (then one range TLBI, as KVM does;
     * without {@link VmConfig#rangeTlbi() range TLBI} one TLBI of the whole VMID)
     * and, with an eager-split chunk size, splits its blocks chunk by chunk so later write faults
     * find pages. Under the MMU write lock.
     */
    public void enableDirtyLogging(Memslot slot) {
        slots.check(slot);
        dirtyLog.enable(slot);
    }

    /** Stops dirty logging: nothing eager; later faults map blocks again (coalescing). */
    public void disableDirtyLogging(Memslot slot) {
        slots.check(slot);
        dirtyLog.disable(slot);
    }

    /** {@link #getDirtyLog(Memslot, boolean)} re-protecting the reported pages. */
    public long[] getDirtyLog(Memslot slot) {
        return getDirtyLog(slot, true);
    }

    /**
     * KVM_GET_DIRTY_LOG: returns the slot's dirty bitmap (bit {@code i} = page {@code i} of the
     * slot) and clears it. With {@code reprotect} (KVM's default) the reported pages are
     * write-protected again so the next write to each is caught (one range TLBI over the slot if
     * any page was dirty, VMID-wide without range TLBI); without it (manual-protect mode, which defers that to a separate
     * clear) they stay writable.
     */
    public long[] getDirtyLog(Memslot slot, boolean reprotect) {
        slots.check(slot);
        return dirtyLog.take(slot, reprotect);
    }

    // ------------------------------------------------------------------------------------------
    // MMU notifiers

    /** MMU-notifier invalidations of {@code event} received from the memslots' address spaces (release counted as RELEASE). */
    public long notifierInvalidations(NotifierEvent event) {
        return notifiers.invalidations(event);
    }

    /** Stage-2 leaves (pages and blocks) removed by notifier invalidations and releases. */
    public long notifierUnmappedLeaves() {
        return notifiers.unmappedLeaves();
    }

    /**
     * Clearing aging callbacks (clear-flush, clear; not test) that found stage-2 young in their
     * range; the host ages leaf by leaf, so this counts host pages and THPs the guest had accessed
     * since the last aging.
     */
    public long notifierYoung() {
        return notifiers.young();
    }

    /** KVM's mmu_invalidate_seq: invalidations hitting a memslot that have ended. */
    public long mmuInvalidateSeq() {
        return invalidations.seq();
    }

    /** KVM's mmu_invalidate_in_progress: invalidations hitting a memslot that have started and not ended. */
    public int mmuInvalidateInProgress() {
        return invalidations.inProgress();
    }

    /**
     * Unregisters the {@link MmuNotifier}s, unmaps everything, frees every table and returns every
     * vCPU's cache: all table memory back. The address spaces stay (the VMM closes them).
     */
    public void destroy() {
        notifiers.unsubscribeAll();
        invalidations.close();
        for (Vcpu v : vcpus) v.release();
        splitCache.release();
        table.destroy();
    }
}
