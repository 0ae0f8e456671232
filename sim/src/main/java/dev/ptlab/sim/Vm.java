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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A simulated VM: a VMID, a stage-2 table with its MMU lock, memslots, vCPUs, and the guest-abort
 * handler KVM/arm64 runs when a vCPU takes a stage-2 fault (the kernel's
 * {@code kvm_handle_guest_abort}, {@code user_mem_abort} and {@code handle_access_fault};
 * reference kvm-pgtable.md §9).
 */
public final class Vm {
    static final int RESUME = 0;
    static final int EXIT_MMIO = 1;
    static final int EXIT_ADDRESS_SIZE = 2;

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
     * Adds a memslot of guest-physical {@code [gpa, gpa + size)} backed by host-physical memory
     * from {@code hostPa}.
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
        if (gpa < 0 || (gpa & g.pageMask()) != 0) {
            throw new IllegalArgumentException("gpa: 0x" + Long.toHexString(gpa) + " is not aligned to the " + g.label() + " granule");
        }
        if (gpa + size > ipaLimit() || gpa + size < gpa) {
            throw new IllegalArgumentException("memory: [0x" + Long.toHexString(gpa) + ", 0x" + Long.toHexString(gpa + size)
                    + ") does not fit the " + config.ipaBits() + "-bit IPA space (limit 0x" + Long.toHexString(ipaLimit()) + ")");
        }
        if (hostPa < 0 || hostPa % unit != 0) {
            throw new IllegalArgumentException("hostPa: 0x" + Long.toHexString(hostPa) + " is not aligned to the " + backing
                    + " backing's page size 0x" + Long.toHexString(unit));
        }
        long paLimit = 1L << geometry.paBits();
        if (hostPa + size > paLimit || hostPa + size < hostPa) {
            throw new IllegalArgumentException("hostPa: 0x" + Long.toHexString(hostPa) + " + size leaves the " + geometry.paBits()
                    + "-bit physical address space");
        }
        for (Memslot s : slots) {
            if (gpa < s.end() && s.gpa() < gpa + size) {
                throw new IllegalArgumentException("gpa: [0x" + Long.toHexString(gpa) + ", 0x" + Long.toHexString(gpa + size)
                        + ") overlaps " + s);
            }
        }
        Memslot m = new Memslot(slots.length, gpa, size, backing, hostPa, readOnly, g.shift());
        Memslot[] n = Arrays.copyOf(slots, slots.length + 1);
        n[slots.length] = m;
        Arrays.sort(n, Comparator.comparingLong(Memslot::gpa));
        slots = n;
        return m;
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
     * the guest, which retries the access), {@link #EXIT_MMIO} or {@link #EXIT_ADDRESS_SIZE}.
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
        Granule g = config.granule();
        boolean write = access == Access.WRITE;
        boolean perm = type == FaultType.PERMISSION;
        boolean logging = slot.logging();
        long faultGranule = perm ? g.levelSize(level) : 0;
        // The mapping size: the backing's page, forced to base pages while dirty logging, demoted
        // while the block would not be congruent in IPA and host PA or would leave the slot.
        long size = logging ? g.pageSize() : slot.backing().size(g);
        while (size > g.pageSize() && !blockFits(slot, gpa, size)) size = smallerBlock(size);
        // Tables may be needed unless this is a pure permission relaxation.
        if (!perm || (logging && write)) vcpu.cache().topUp(cacheMin);
        // Constants rather than Prot.with: this runs once per fault.
        boolean w = !slot.readOnly() && (write || !logging);
        boolean x = access == Access.EXEC || (perm && Stage2Descriptor.isExecutable(observed));
        Prot prot = w ? (x ? Prot.RWX : Prot.RW) : (x ? Prot.RX : Prot.R);
        Status s;
        if (perm && faultGranule == size) {
            s = table.relaxPerms(gpa, prot, faultFlags, vcpu.tlb());
        } else {
            long ipa = gpa & -size;
            try {
                s = table.map(ipa, size, slot.hostPa(ipa), prot, vcpu.cache(), faultFlags);
            } catch (PageTableException e) {
                throw new IllegalStateException("vcpu" + vcpu.id() + ": stage-2 map of 0x" + Long.toHexString(ipa) + " failed: "
                        + e.getMessage(), e);
            }
        }
        if (s == Status.RACED || s == Status.NOT_MAPPED) {
            vcpu.stats.raced++;
        } else if (write && logging) {
            slot.markDirty(gpa);
        }
        return RESUME;
    }

    /** KVM's fault_supports_stage2_huge_mapping: IPA and host PA congruent modulo the block, block inside the slot. */
    private static boolean blockFits(Memslot slot, long gpa, long size) {
        if (((slot.gpa() ^ slot.hostPa()) & (size - 1)) != 0) return false;
        long start = gpa & -size;
        return start >= slot.gpa() && start + size <= slot.end();
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

    /** Unmaps everything, frees every table and returns every vCPU's cache: all table memory back. */
    public void destroy() {
        for (Vcpu v : vcpus) v.release();
        splitCache.release();
        table.destroy();
    }
}
