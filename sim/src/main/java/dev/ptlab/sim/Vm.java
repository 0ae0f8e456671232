package dev.ptlab.sim;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.Errno;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.GupResult;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.MmException;
import dev.ptlab.mm.Vma;
import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A simulated VM: a VMID, a stage-2 table with its MMU lock, memslots, vCPUs, and the guest-abort
 * handler KVM/arm64 runs when a vCPU takes a stage-2 fault (the kernel's
 * {@code kvm_handle_guest_abort}, {@code user_mem_abort} and {@code handle_access_fault};
 * reference kvm-pgtable.md §9).
 *
 * <p>Memslots backed by a host address space ({@link #addMemslot(long, long, AddressSpace, long,
 * boolean)}) are kept coherent with the host as KVM keeps them: the VM registers one
 * {@link MmuNotifier} with each such address space; an invalidation unmaps the stage-2 range it
 * covers and is tracked by {@code mmuInvalidateInProgress} (with the merged GPA range of the
 * invalidations in progress) and {@code mmuInvalidateSeq} (bumped at each end); the fault path
 * reads the sequence before GUP and maps only if, under the MMU lock, no invalidation of its
 * address is in progress and the sequence is unchanged (reference mm-exclusive-rcu.md B.3, B.8).
 * Stage-2 entries hold no page references: the notifiers are what keeps them from outliving the
 * host mapping.
 */
public final class Vm {
    static final int RESUME = 0;
    static final int EXIT_MMIO = 1;
    static final int EXIT_ADDRESS_SIZE = 2;
    /** GUP refused the host page of an address-space memslot with EFAULT: -EFAULT from KVM_RUN. */
    static final int EXIT_EFAULT = 3;

    /** Where table frames live in the simulated physical address space (far from guest memory). */
    public static final long TABLE_MEMORY_BASE = 0x7F00_0000_0000L;

    private final VmConfig config;
    private final Geometry geometry;
    private final PhysicalMemory tableMemory;
    private final TlbSystem tlbs = new TlbSystem();
    private final Stage2PageTable table;
    private final int faultFlags;
    private final int cacheMin;
    private volatile Memslot[] slots = new Memslot[0];
    private final List<Vcpu> vcpus = new CopyOnWriteArrayList<>();
    private final MemCache splitCache;
    private final long splitCacheCapacity;

    // ---- MMU-notifier coherence (KVM's mmu_invalidate_*) ----
    /** One notifier per distinct address space backing a memslot; guarded by this. */
    private final Map<AddressSpace, SlotNotifier> notifiers = new LinkedHashMap<>();
    /**
     * Bumped (under the MMU write lock) when an invalidation that hit a memslot ends. Volatile:
     * the fault path reads it before GUP with acquire order, so any invalidation that ends after
     * that read, even one whose host change GUP saw half of, is visible as a changed value under
     * the lock.
     */
    private volatile long mmuInvalidateSeq;
    /** Invalidations hitting a memslot that have started and not ended; guarded by the MMU lock. */
    private volatile int mmuInvalidateInProgress;
    /**
     * Guest-physical range covering every invalidation in progress (merged, as KVM merges
     * mmu_invalidate_range_start/end); empty (start > end) until one adds to it. Guarded by the
     * MMU lock: written under the write lock, read by faults under the read lock.
     */
    private long invalidateGpaStart = Long.MAX_VALUE;
    private long invalidateGpaEnd = Long.MIN_VALUE;
    /** Ranges whose start counted as in progress: their end must undo exactly that. */
    private final Set<NotifierRange> countedRanges = ConcurrentHashMap.newKeySet();
    private final AtomicLongArray notifierEvents = new AtomicLongArray(NotifierEvent.values().length);
    private final AtomicLong notifierUnmapped = new AtomicLong();
    private final AtomicLong notifierYoung = new AtomicLong();
    /** Test hook run by the fault path after GUP, before the MMU lock (set by the thread that runs the vCPU). */
    private Runnable faultHook;

    public Vm(VmConfig config) {
        if (config == null) throw new IllegalArgumentException("config: null");
        this.config = config;
        this.geometry = Geometry.stage2(config.granule(), config.ipaBits());
        this.tableMemory = new PhysicalMemory(TABLE_MEMORY_BASE, config.tableMemory(), config.granule(), config.checking());
        this.table = new Stage2PageTable(geometry, tableMemory, tlbs, config.vmid(), config.tableFlags());
        table.setCoalescePolicy(config.coalescePolicy());
        this.faultFlags = WalkFlags.HANDLE_FAULT | (config.faultLocking() == FaultLocking.SHARED ? WalkFlags.SHARED : 0);
        // One table per level below the root: enough for any single mapping (kvm_mmu_cache_min_pages).
        this.cacheMin = geometry.levels() - 1;
        this.splitCache = new MemCache(tableMemory);
        this.splitCacheCapacity = splitCapacity(config.eagerSplitChunk());
        long chunk = config.eagerSplitChunk();
        if (chunk != 0 && !isBlockSize(chunk)) {
            table.destroy();
            throw new IllegalArgumentException("eager split chunk: 0x" + Long.toHexString(chunk) + " is not 0 or a block size of the "
                    + config.granule().label() + " granule (" + blockSizes() + ")");
        }
    }

    private boolean isBlockSize(long size) {
        for (int l = 0; l < Granule.LAST_LEVEL; l++) if (geometry.leafAllowed(l) && geometry.granule().levelSize(l) == size) return true;
        return false;
    }

    private String blockSizes() {
        List<String> s = new ArrayList<>();
        for (int l = 0; l < Granule.LAST_LEVEL; l++) if (geometry.leafAllowed(l)) s.add("0x" + Long.toHexString(geometry.granule().levelSize(l)));
        return String.join(", ", s);
    }

    /** Frames one eager-split chunk may need: one table per block of each block level the chunk can contain. */
    private long splitCapacity(long chunk) {
        if (chunk == 0) return 0;
        long n = 0;
        for (int l = geometry.startLevel(); l < Granule.LAST_LEVEL; l++) {
            if (!geometry.leafAllowed(l)) continue;
            long span = geometry.granule().levelSize(l);
            n += (chunk + span - 1) / span;
        }
        return n;
    }

    public VmConfig config() { return config; }
    public Stage2PageTable table() { return table; }
    public PhysicalMemory tableMemory() { return tableMemory; }
    public TlbSystem tlbs() { return tlbs; }
    public MmuLock mmuLock() { return table.mmuLock(); }
    public List<Vcpu> vcpus() { return List.copyOf(vcpus); }
    public List<Memslot> memslots() { return List.of(slots); }
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
    public synchronized Memslot addMemslot(long gpa, long size, Backing backing, long hostPa, boolean readOnly) {
        if (backing == null) throw new IllegalArgumentException("backing: null");
        Granule g = config.granule();
        long unit = backing.size(g);
        if (size <= 0 || size % unit != 0) {
            throw new IllegalArgumentException("memory: 0x" + Long.toHexString(size) + " is not a positive multiple of the "
                    + backing + " backing's page size 0x" + Long.toHexString(unit));
        }
        checkGuestRange(gpa, size);
        if (hostPa < 0 || hostPa % unit != 0) {
            throw new IllegalArgumentException("hostPa: 0x" + Long.toHexString(hostPa) + " is not aligned to the " + backing
                    + " backing's page size 0x" + Long.toHexString(unit));
        }
        long paLimit = 1L << geometry.paBits();
        if (hostPa + size > paLimit || hostPa + size < hostPa) {
            throw new IllegalArgumentException("hostPa: 0x" + Long.toHexString(hostPa) + " + size leaves the " + geometry.paBits()
                    + "-bit physical address space");
        }
        checkNoOverlap(gpa, size);
        return insert(new Memslot(slots.length, gpa, size, backing, hostPa, null, 0, readOnly, g.shift()));
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
    public synchronized Memslot addMemslot(long gpa, long size, AddressSpace mm, long hva, boolean readOnly) {
        if (mm == null) throw new IllegalArgumentException("mm: null");
        if (mm.closed()) throw new IllegalArgumentException("mm: " + mm + " is closed");
        Granule g = config.granule();
        if (mm.geometry().granule() != g) {
            throw new IllegalArgumentException("mm: its " + mm.geometry().granule().label() + " granule differs from the VM's "
                    + g.label() + " granule");
        }
        long page = g.pageSize();
        if (size <= 0 || size % page != 0) {
            throw new IllegalArgumentException("memory: 0x" + Long.toHexString(size) + " is not a positive multiple of the "
                    + g.label() + " page size");
        }
        checkGuestRange(gpa, size);
        if (hva < 0 || (hva & g.pageMask()) != 0) {
            throw new IllegalArgumentException("hva: 0x" + Long.toHexString(hva) + " is not aligned to the " + g.label() + " granule");
        }
        if (hva + size < hva) {
            throw new IllegalArgumentException("hva: 0x" + Long.toHexString(hva) + " + size 0x" + Long.toHexString(size) + " overflows");
        }
        Vma first = null;
        for (long a = hva; a < hva + size; ) {
            Vma v = mm.findVma(a);
            if (v == null) {
                throw new IllegalArgumentException("hva: [0x" + Long.toHexString(hva) + ", 0x" + Long.toHexString(hva + size)
                        + ") is not all mapped in the address space: no VMA at 0x" + Long.toHexString(a));
            }
            if (first == null) first = v;
            a = v.end();
        }
        checkNoOverlap(gpa, size);
        Backing described = first.hugetlb() ? Backing.HUGETLB : first.thp() ? Backing.THP : Backing.PAGE;
        // Subscribe before the slot is visible to faults, so no host change can fall between.
        if (!notifiers.containsKey(mm)) {
            SlotNotifier n = new SlotNotifier(mm);
            notifiers.put(mm, n);
            mm.notifiers().register(n);
        }
        return insert(new Memslot(slots.length, gpa, size, described, -1, mm, hva, readOnly, g.shift()));
    }

    private void checkGuestRange(long gpa, long size) {
        Granule g = config.granule();
        if (gpa < 0 || (gpa & g.pageMask()) != 0) {
            throw new IllegalArgumentException("gpa: 0x" + Long.toHexString(gpa) + " is not aligned to the " + g.label() + " granule");
        }
        if (gpa + size > ipaLimit() || gpa + size < gpa) {
            throw new IllegalArgumentException("memory: [0x" + Long.toHexString(gpa) + ", 0x" + Long.toHexString(gpa + size)
                    + ") does not fit the " + config.ipaBits() + "-bit IPA space (limit 0x" + Long.toHexString(ipaLimit()) + ")");
        }
    }

    private void checkNoOverlap(long gpa, long size) {
        for (Memslot s : slots) {
            if (gpa < s.end() && s.gpa() < gpa + size) {
                throw new IllegalArgumentException("gpa: [0x" + Long.toHexString(gpa) + ", 0x" + Long.toHexString(gpa + size)
                        + ") overlaps " + s);
            }
        }
    }

    private Memslot insert(Memslot m) {
        Memslot[] n = Arrays.copyOf(slots, slots.length + 1);
        n[slots.length] = m;
        Arrays.sort(n, Comparator.comparingLong(Memslot::gpa));
        slots = n;
        return m;
    }

    /** The host address spaces backing memslots, each once. */
    public synchronized List<AddressSpace> addressSpaces() {
        return List.copyOf(notifiers.keySet());
    }

    /** The memslot containing {@code gpa}, or null. */
    public Memslot memslot(long gpa) {
        Memslot[] s = slots;
        int lo = 0, hi = s.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            Memslot m = s[mid];
            if (gpa < m.gpa()) hi = mid - 1;
            else if (gpa >= m.end()) lo = mid + 1;
            else return m;
        }
        return null;
    }

    /** Creates a vCPU with its own MMU, TLB (receiving broadcast TLBIs) and memory cache. */
    public Vcpu createVcpu() {
        Vcpu v = new Vcpu(this, vcpus.size());
        tlbs.register(v.tlb());
        vcpus.add(v);
        return v;
    }

    // ------------------------------------------------------------------------------------------
    // guest aborts

    /**
     * Handles a stage-2 fault of {@code vcpu} on {@code gpa}: returns {@link #RESUME} (re-enter
     * the guest, which retries the access), {@link #EXIT_MMIO}, {@link #EXIT_ADDRESS_SIZE} or
     * {@link #EXIT_EFAULT}.
     *
     * @param observed the entry the MMU found (the invalid one for a translation fault)
     */
    int handleAbort(Vcpu vcpu, long gpa, Access access, FaultType type, int level, long observed) {
        if (gpa < 0 || gpa >= ipaLimit()) return EXIT_ADDRESS_SIZE;
        Memslot slot = memslot(gpa);
        if (slot == null) return EXIT_MMIO;
        boolean write = access == Access.WRITE;
        if (write && slot.readOnly()) return EXIT_MMIO;
        if (type == FaultType.TRANSLATION && Pte.isLocked(observed)) vcpu.stats.spurious++;
        if (type == FaultType.ACCESS_FLAG) {
            Status s = table.mkyoung(gpa, faultFlags);
            if (s == Status.RACED) vcpu.stats.raced++;
            return RESUME;
        }
        return userMemAbort(vcpu, slot, gpa, access, type, level, observed);
    }

    private int userMemAbort(Vcpu vcpu, Memslot slot, long gpa, Access access, FaultType type, int level, long observed) {
        if (slot.mm() != null) return userMemAbortMm(vcpu, slot, gpa, access, type, level, observed);
        Granule g = config.granule();
        boolean write = access == Access.WRITE;
        boolean perm = type == FaultType.PERMISSION;
        boolean logging = slot.logging();
        // The mapping size: the backing's page, forced to base pages while dirty logging, demoted
        // while the block would not be congruent in IPA and host PA or would leave the slot.
        long size = logging ? g.pageSize() : slot.backing().size(g);
        long pa = slot.hostPa(gpa & -g.pageSize());
        while (size > g.pageSize() && !blockFits(slot, gpa, pa, size)) size = smallerBlock(size);
        // Tables may be needed unless this is a pure permission relaxation.
        if (!perm || (logging && write)) vcpu.cache().topUp(cacheMin);
        Status s = mapOrRelax(vcpu, gpa, pa, size, faultProt(slot, access, perm, observed, true), perm, level);
        if (s == Status.RACED || s == Status.NOT_MAPPED) {
            vcpu.stats.raced++;
        } else if (write && logging) {
            slot.markDirty(gpa);
        }
        return RESUME;
    }

    /**
     * The fault path for a memslot backed by a host address space (KVM's user_mem_abort with
     * __kvm_faultin_pfn): snapshot the invalidation sequence, GUP the host page, then under the
     * MMU lock map it unless an invalidation got in between.
     */
    private int userMemAbortMm(Vcpu vcpu, Memslot slot, long gpa, Access access, FaultType type, int level, long observed) {
        Granule g = config.granule();
        long page = g.pageSize();
        boolean write = access == Access.WRITE;
        boolean perm = type == FaultType.PERMISSION;
        boolean logging = slot.logging();
        if (!perm || (logging && write)) vcpu.cache().topUp(cacheMin);
        // Read before GUP: an invalidation that changes the host entry after GUP looked at it
        // either is still in progress when we check under the lock, or has ended and bumped this.
        long seq = mmuInvalidateSeq;
        GupResult gup = vcpu.gup;
        AddressSpace mm = slot.mm();
        // The process has exited (its release notifier emptied the slot): as KVM's GUP on a dead
        // mm, no page. (GUP itself refuses a closed address space with IllegalStateException.)
        if (mm.closed()) return EXIT_EFAULT;
        try {
            mm.getUserPage(slot.hva(gpa), write ? Mman.FOLL_WRITE : 0, gup);
        } catch (MmException e) {
            if (e.errno() == Errno.EFAULT) return EXIT_EFAULT;
            throw new IllegalStateException("vcpu" + vcpu.id() + ": GUP of hva 0x" + Long.toHexString(slot.hva(gpa)) + " for gpa 0x"
                    + Long.toHexString(gpa) + " failed: " + e.getMessage(), e);
        }
        try {
            Runnable hook = faultHook;
            if (hook != null) hook.run();
            // The host's leaf size bounds the mapping (a THP or hugetlb page can be a block; a
            // base page cannot), forced to base pages while logging, demoted while the block
            // would not be congruent (GPA vs PA) or would leave the slot.
            long size = logging ? page : gup.mappingSize;
            while (size > page && (!isLeafSize(size) || !blockFits(slot, gpa, gup.pa, size))) size = smallerBlock(size);
            // Writable only if the host entry is (a read fault on a writable host page maps
            // writable unless logging, so the guest's first write does not fault again).
            Prot prot = faultProt(slot, access, perm, observed, gup.writable);
            MmuLock lock = table.mmuLock();
            boolean shared = (faultFlags & WalkFlags.SHARED) != 0;
            // The check and the map must be one critical section: an invalidation takes the
            // write lock, so while we hold the read (or write) side none can start or end.
            if (shared) lock.readLock(); else lock.writeLock();
            Status s;
            try {
                if (invalidateRetry(seq, gpa)) {
                    vcpu.stats.seqRetries++;
                    return RESUME;
                }
                s = mapOrRelax(vcpu, gpa, gup.pa, size, prot, perm, level);
            } finally {
                if (shared) lock.readUnlock(); else lock.writeUnlock();
            }
            if (s == Status.RACED || s == Status.NOT_MAPPED) {
                vcpu.stats.raced++;
            } else {
                if (write && logging) slot.markDirty(gpa);
                // As KVM's release of a page mapped writable: the guest may now write it without
                // the host page table seeing a dirty bit, so the folio is dirty.
                if (prot.writable() && !gup.folio.isDirty()) gup.folio.markDirty();
            }
            return RESUME;
        } finally {
            // Stage-2 entries hold no page reference: the notifiers keep them coherent instead.
            gup.folio.put();
            gup.clear();
        }
    }

    /** The stage-2 protection of a fault's mapping; constants rather than Prot.with (this runs once per fault). */
    private static Prot faultProt(Memslot slot, Access access, boolean perm, long observed, boolean hostWritable) {
        boolean w = !slot.readOnly() && hostWritable && (access == Access.WRITE || !slot.logging());
        boolean x = access == Access.EXEC || (perm && Stage2Descriptor.isExecutable(observed));
        return w ? (x ? Prot.RWX : Prot.RW) : (x ? Prot.RX : Prot.R);
    }

    /** Relaxes permissions in place if the fault was on a leaf of the mapping size, else maps {@code [gpa, pa)} rounded to {@code size}. */
    private Status mapOrRelax(Vcpu vcpu, long gpa, long pa, long size, Prot prot, boolean perm, int level) {
        if (perm && config.granule().levelSize(level) == size) return table.relaxPerms(gpa, prot, faultFlags, vcpu.tlb());
        long ipa = gpa & -size;
        try {
            return table.map(ipa, size, pa & -size, prot, vcpu.cache(), faultFlags);
        } catch (PageTableException e) {
            throw e.withContext("vcpu" + vcpu.id() + ": stage-2 map of 0x" + Long.toHexString(ipa) + " failed");
        }
    }

    /**
     * KVM's mmu_invalidate_retry_gfn, called under the MMU lock: an invalidation covering
     * {@code gpa} is in progress (its host change may not have happened when GUP looked), or one
     * ended since the fault read {@code seq}.
     */
    private boolean invalidateRetry(long seq, long gpa) {
        if (mmuInvalidateInProgress > 0 && gpa >= invalidateGpaStart && gpa < invalidateGpaEnd) return true;
        return mmuInvalidateSeq != seq;
    }

    /**
     * KVM's fault_supports_stage2_huge_mapping: the IPA and host PA ({@code pa}, of the page
     * containing {@code gpa}) are congruent modulo the block, and the block lies inside the slot.
     */
    private boolean blockFits(Memslot slot, long gpa, long pa, long size) {
        if ((((gpa & -config.granule().pageSize()) ^ pa) & (size - 1)) != 0) return false;
        long start = gpa & -size;
        return start >= slot.gpa() && start + size <= slot.end();
    }

    /** Whether stage-2 can map a leaf of {@code size} (a page, or a block of a level that allows blocks). */
    private boolean isLeafSize(long size) {
        return size == config.granule().pageSize() || isBlockSize(size);
    }

    /** The largest mapping size below {@code size}: the next block level down, or a page. */
    private long smallerBlock(long size) {
        Granule g = config.granule();
        for (int l = 0; l < Granule.LAST_LEVEL; l++) {
            long s = g.levelSize(l);
            if (s < size && geometry.leafAllowed(l)) return s;
        }
        return g.pageSize();
    }

    // ------------------------------------------------------------------------------------------
    // dirty logging

    /**
     * Starts dirty logging on {@code slot}: write-protects it (then one range TLBI, as KVM does)
     * and, with an eager-split chunk size, splits its blocks chunk by chunk so later write faults
     * find pages. Under the MMU write lock.
     */
    public void enableDirtyLogging(Memslot slot) {
        checkSlot(slot);
        MmuLock lock = table.mmuLock();
        lock.writeLock();
        try {
            slot.setLogging(true);
            table.wrprotect(slot.gpa(), slot.size());
            tlbs.flushVmidRange(config.vmid(), slot.gpa(), slot.size());
            long chunk = config.eagerSplitChunk();
            if (chunk != 0) {
                for (long a = slot.gpa(); a < slot.end(); ) {
                    long next = Math.min(slot.end(), (a & -chunk) + chunk);
                    // Best effort, as KVM: top the split cache up to one chunk's worth per chunk.
                    splitCache.topUp((int) splitCacheCapacity);
                    table.split(a, next - a, splitCache);
                    a = next;
                }
            }
        } finally {
            lock.writeUnlock();
        }
    }

    /** Stops dirty logging: nothing eager; later faults map blocks again (coalescing). */
    public void disableDirtyLogging(Memslot slot) {
        checkSlot(slot);
        MmuLock lock = table.mmuLock();
        lock.writeLock();
        try {
            slot.setLogging(false);
            splitCache.release();
        } finally {
            lock.writeUnlock();
        }
    }

    /** {@link #getDirtyLog(Memslot, boolean)} re-protecting the reported pages. */
    public long[] getDirtyLog(Memslot slot) {
        return getDirtyLog(slot, true);
    }

    /**
     * KVM_GET_DIRTY_LOG: returns the slot's dirty bitmap (bit {@code i} = page {@code i} of the
     * slot) and clears it. With {@code reprotect} (KVM's default) the reported pages are
     * write-protected again so the next write to each is caught (one range TLBI over the slot if
     * any page was dirty); without it (manual-protect mode, which defers that to a separate
     * clear) they stay writable.
     */
    public long[] getDirtyLog(Memslot slot, boolean reprotect) {
        checkSlot(slot);
        MmuLock lock = table.mmuLock();
        lock.writeLock();
        try {
            long[] bits = slot.takeDirty();
            if (reprotect && slot.logging()) {
                long page = config.granule().pageSize();
                boolean any = false;
                for (int w = 0; w < bits.length; w++) {
                    long word = bits[w];
                    while (word != 0) {
                        int b = Long.numberOfTrailingZeros(word);
                        word &= word - 1;
                        table.wrprotect(slot.gpa() + ((long) w * 64 + b) * page, page);
                        any = true;
                    }
                }
                if (any) tlbs.flushVmidRange(config.vmid(), slot.gpa(), slot.size());
            }
            return bits;
        } finally {
            lock.writeUnlock();
        }
    }

    private void checkSlot(Memslot slot) {
        if (slot == null || memslot(slot.gpa()) != slot) throw new IllegalArgumentException("slot: " + slot + " is not a memslot of this VM");
    }

    // ------------------------------------------------------------------------------------------
    // MMU notifiers

    /**
     * The VM's subscription to one host address space (KVM's kvm_mmu_notifier_ops): every
     * callback translates the host range into the guest-physical ranges of the memslots of that
     * address space it intersects.
     */
    private final class SlotNotifier implements MmuNotifier {
        final AddressSpace mm;

        SlotNotifier(AddressSpace mm) {
            this.mm = mm;
        }

        @Override
        public void invalidateRangeStart(NotifierRange range) {
            notifierEvents.incrementAndGet(range.event().ordinal());
            if (!intersectsSlot(mm, range.start(), range.end())) return;
            MmuLock lock = table.mmuLock();
            lock.writeLock();
            try {
                if (table.destroyed()) return;
                // In progress first: a fault that GUPs after this point may still see the old
                // host entry, and must find this invalidation when it checks under the lock.
                countedRanges.add(range);
                if (mmuInvalidateInProgress++ == 0) {
                    invalidateGpaStart = Long.MAX_VALUE;
                    invalidateGpaEnd = Long.MIN_VALUE;
                }
                long removed = table.counters().leavesRemoved();
                forEachGuestRange(mm, range.start(), range.end(), (gs, ge) -> {
                    invalidateGpaStart = Math.min(invalidateGpaStart, gs);
                    invalidateGpaEnd = Math.max(invalidateGpaEnd, ge);
                    // Blocks overlapping the range go whole (the rest refaults); the unmap
                    // invalidates the TLBs before the write lock is dropped.
                    table.unmap(gs, ge - gs);
                });
                notifierUnmapped.addAndGet(table.counters().leavesRemoved() - removed);
            } finally {
                lock.writeUnlock();
            }
        }

        @Override
        public void invalidateRangeEnd(NotifierRange range) {
            if (!countedRanges.remove(range)) return;
            MmuLock lock = table.mmuLock();
            lock.writeLock();
            try {
                // Seq before in-progress drops: a fault that checks after this sees one or the other.
                mmuInvalidateSeq++;
                mmuInvalidateInProgress--;
            } finally {
                lock.writeUnlock();
            }
        }

        @Override
        public boolean clearFlushYoung(long start, long end) {
            return age(mm, start, end, true, true);
        }

        @Override
        public boolean clearYoung(long start, long end) {
            return age(mm, start, end, true, false);
        }

        @Override
        public boolean testYoung(long start, long end) {
            return age(mm, start, end, false, false);
        }

        @Override
        public void release() {
            notifierEvents.incrementAndGet(NotifierEvent.RELEASE.ordinal());
            MmuLock lock = table.mmuLock();
            lock.writeLock();
            try {
                if (table.destroyed()) return;
                long removed = table.counters().leavesRemoved();
                for (Memslot s : slots) if (s.mm() == mm) table.unmap(s.gpa(), s.size());
                notifierUnmapped.addAndGet(table.counters().leavesRemoved() - removed);
            } finally {
                lock.writeUnlock();
            }
        }
    }

    private boolean intersectsSlot(AddressSpace mm, long start, long end) {
        for (Memslot s : slots) if (s.mm() == mm && start < s.hva() + s.size() && s.hva() < end) return true;
        return false;
    }

    /**
     * Aging of host {@code [start, end)}: whether stage-2 has a young leaf in the guest ranges it
     * backs, clearing the access flags with {@code clear} and then invalidating the TLBs of the
     * young ranges with {@code flush} (an entry cached as young would hide the next access).
     */
    private boolean age(AddressSpace mm, long start, long end, boolean clear, boolean flush) {
        boolean[] young = {false};
        forEachGuestRange(mm, start, end, (gs, ge) -> {
            if (table.destroyed() || !table.testClearYoung(gs, ge - gs, clear)) return;
            young[0] = true;
            if (flush) tlbs.flushVmidRange(config.vmid(), gs, ge - gs);
        });
        if (young[0] && clear) notifierYoung.incrementAndGet();
        return young[0];
    }

    /** A guest-physical range {@code [start, end)}. */
    @FunctionalInterface
    private interface GpaRange {
        void accept(long start, long end);
    }

    /**
     * Calls {@code action} with the guest-physical range (whole pages) backed by host
     * {@code [start, end)} in each memslot of {@code mm} the host range intersects.
     */
    private void forEachGuestRange(AddressSpace mm, long start, long end, GpaRange action) {
        long page = config.granule().pageSize();
        for (Memslot s : slots) {
            if (s.mm() != mm) continue;
            long hs = Math.max(start, s.hva()), he = Math.min(end, s.hva() + s.size());
            if (hs >= he) continue;
            action.accept(s.gpaOfHva(hs) & -page, (s.gpaOfHva(he - 1) & -page) + page);
        }
    }

    /** MMU-notifier invalidations of {@code event} received from the memslots' address spaces (release counted as RELEASE). */
    public long notifierInvalidations(NotifierEvent event) {
        return notifierEvents.get(event.ordinal());
    }

    /** Stage-2 leaves (pages and blocks) removed by notifier invalidations and releases. */
    public long notifierUnmappedLeaves() {
        return notifierUnmapped.get();
    }

    /**
     * Clearing aging callbacks (clear-flush, clear; not test) that found stage-2 young in their
     * range; the host ages leaf by leaf, so this counts host pages and THPs the guest had accessed
     * since the last aging.
     */
    public long notifierYoung() {
        return notifierYoung.get();
    }

    /** KVM's mmu_invalidate_seq: invalidations hitting a memslot that have ended. */
    public long mmuInvalidateSeq() {
        return mmuInvalidateSeq;
    }

    /** KVM's mmu_invalidate_in_progress: invalidations hitting a memslot that have started and not ended. */
    public int mmuInvalidateInProgress() {
        return mmuInvalidateInProgress;
    }

    /**
     * Test hook: {@code afterGup} runs in every address-space fault after GUP returned the host
     * page and before the MMU lock is taken (null: none). Set it from the thread that runs the
     * vCPU.
     */
    void setFaultHook(Runnable afterGup) {
        this.faultHook = afterGup;
    }

    /**
     * Unregisters the MMU notifiers, unmaps everything, frees every table and returns every
     * vCPU's cache: all table memory back. The address spaces stay (the VMM closes them).
     */
    public void destroy() {
        List<SlotNotifier> ns;
        synchronized (this) {
            ns = new ArrayList<>(notifiers.values());
            notifiers.clear();
        }
        for (SlotNotifier n : ns) n.mm.notifiers().unregister(n);
        for (Vcpu v : vcpus) v.release();
        splitCache.release();
        table.destroy();
    }
}
