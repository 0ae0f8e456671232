package dev.ptlab.mm;

import dev.ptlab.core.Errno;
import dev.ptlab.core.InvariantViolation;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.mm.notify.MmuNotifiers;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A host process's address space (the kernel's mm_struct): VMAs, an mmap lock, a process page
 * table in the arm64 stage-1 format walked by ptlab's walker, and the MMU-notifier hub through
 * which secondary MMUs (a VM's stage-2, a device) stay coherent with it.
 *
 * <p>Locking (outermost first): the mmap lock ({@link #mmapLock()}; read for faults, GUP,
 * device-exclusive conversion, reclaim and aging; write for mmap, munmap, mprotect, madvise,
 * fork and close), then a folio lock, then the page-table lock (PTL; one per address space,
 * where Linux splits it per table page: the write side of the process table's own MMU lock).
 * Every public method takes the locks it needs itself: callers hold none of them. Notifier
 * callbacks run with the mmap lock held but never the PTL.
 *
 * <p>Sleeping on a folio lock while holding the mmap lock could deadlock against a driver that
 * holds the folio lock and waits for the mmap lock behind a writer, so a fault that would sleep
 * on a folio lock gives up the mmap lock first, waits, and returns {@link FaultResult#RETRY}
 * (the kernel's VM_FAULT_RETRY); {@link #access} and {@link #getUserPage} retry themselves.
 * ({@link #makeDeviceExclusive} does sleep on the folio lock with the mmap lock held, as the
 * kernel's make_device_exclusive does: its callers are drivers, not faults.)
 *
 * <p>Counting (6.15 model): every entry mapping a folio, present or device-exclusive, holds one
 * reference and one map count on it; a PMD-mapped THP is one entry. Splitting a PMD into PTEs
 * keeps the folio large, its counts grow by the extra entries. {@code FOLL_SPLIT_PMD} (and
 * reclaim) also split the folio into order-0 folios when every mapping of it is a PTE of this
 * table and nothing else references it; otherwise it stays large.
 *
 * <p>Anonymous faults have no shared zero page: a read fault allocates a zeroed page too (mapped
 * writable and dirty if the VMA is writable). A read of a VMA needs {@code PROT_READ} or
 * {@code PROT_WRITE} (arm64: write implies read); exec needs {@code PROT_EXEC} (EPAN: exec does
 * not imply read).
 *
 * <p>Why one class of this size: it is the mm_struct's public face, and every public method is
 * where the lock order above is taken. The table work is already elsewhere ({@code Faults},
 * {@code Fork}, {@code Zap}, {@code Protect}, {@code Reclaim}, {@code DeviceExclusive}); what stays
 * is the VMA list (mmap, munmap, mprotect, madvise split and merge it under the write lock), CPU
 * data access and the invariant check, all of which read the VMA list under the same lock.
 */
public final class AddressSpace implements AutoCloseable {
    /** Where {@link #mmap} with addr 0 starts looking for a free range. */
    public static final long MMAP_BASE = 0x1000_0000L;
    private static final int PROT_MASK = Mman.PROT_READ | Mman.PROT_WRITE | Mman.PROT_EXEC;
    private static final int MAP_KNOWN = Mman.MAP_SHARED | Mman.MAP_PRIVATE | Mman.MAP_FIXED | Mman.MAP_ANONYMOUS
            | Mman.MAP_HUGETLB | (0x3F << Mman.MAP_HUGE_SHIFT);

    final Host host;
    final Geometry geometry;
    final HostMemory memory;
    final ProcessPageTable table;
    final MmuNotifiers notifiers = new MmuNotifiers();
    final MmuLock mmapLock = new MmuLock();
    final MmStats stats = new MmStats();
    final long pageSize;
    final int pageShift;
    /** Resident pages: present and device-exclusive entries, in pages. Changed under the PTL. */
    final AtomicLong rss = new AtomicLong();
    /** By start address; guarded by the mmap lock (written under its write side only). */
    private final TreeMap<Long, Vma> vmas = new TreeMap<>();
    final Faults faults;
    private volatile boolean closed;

    AddressSpace(Host host) {
        this.host = host;
        this.geometry = host.geometry();
        this.memory = host.memory();
        this.table = new ProcessPageTable(geometry, host.tableMemory(), memory);
        this.pageSize = geometry.granule().pageSize();
        this.pageShift = geometry.granule().shift();
        this.faults = new Faults(this);
    }

    public Host host() { return host; }
    public Geometry geometry() { return geometry; }
    public MmuNotifiers notifiers() { return notifiers; }
    /** The mmap lock, for tests and for callers that must order against mm operations (callers of this class's methods must not hold it). */
    public MmuLock mmapLock() { return mmapLock; }
    public MmStats stats() { return stats; }
    /** TLB invalidations the kernel would have issued for this space's entries (host TLBs are not modelled; see {@link ProcessPageTable}). */
    public long tlbFlushes() { return table.tlbFlushes(); }
    /** Physical address of the page-table root (TTBR0_EL1's base). */
    public long rootPa() { return table.rootPa(); }

    void checkLive() {
        if (closed) throw new IllegalStateException("address space is closed");
    }

    // ---- VMAs ----

    /**
     * Maps {@code length} bytes of anonymous memory (always {@code MAP_ANONYMOUS}, which may be
     * omitted): private or shared, optionally hugetlb ({@code MAP_HUGETLB}, with
     * {@code MAP_HUGE_2MB} / {@code MAP_HUGE_1GB}, or neither for the default size: the granule's
     * level-2 block; any block size of the granule at levels 1..2 is accepted). {@code addr} 0
     * picks a free range from {@link #MMAP_BASE} up (aligned to the largest block size that fits
     * the length, or to the huge page size, so THP and hugetlb can be used); another {@code addr}
     * without {@code MAP_FIXED} is a hint, used if it is aligned and that range is free; with
     * {@code MAP_FIXED} existing mappings there are unmapped first (UNMAP notifier; a hugetlb
     * area may not be cut inside a huge page).
     *
     * @return the start address
     * @throws MmException EINVAL (bad length, prot, flags or alignment; hugetlb length and address
     *         must be multiples of the huge page size), ENOMEM (no free range, or outside the
     *         address space), EPERM (MAP_FIXED below the first page)
     */
    public long mmap(long addr, long length, int prot, int flags) {
        checkLive();
        if ((prot & ~PROT_MASK) != 0) throw new MmException(Errno.EINVAL, addr, "prot: 0x" + Integer.toHexString(prot) + " has unknown bits");
        if ((flags & ~MAP_KNOWN) != 0) throw new MmException(Errno.EINVAL, addr, "flags: 0x" + Integer.toHexString(flags) + " has unknown bits");
        boolean shared = (flags & Mman.MAP_SHARED) != 0;
        if (shared == ((flags & Mman.MAP_PRIVATE) != 0)) {
            throw new MmException(Errno.EINVAL, addr, "flags: 0x" + Integer.toHexString(flags) + " must have exactly one of MAP_SHARED, MAP_PRIVATE");
        }
        if (length <= 0) throw new MmException(Errno.EINVAL, addr, "length: 0x" + Long.toHexString(length) + " is not positive");
        long hugeSize = 0;
        if ((flags & Mman.MAP_HUGETLB) != 0) {
            hugeSize = hugePageSize(addr, flags);
        } else if ((flags >>> Mman.MAP_HUGE_SHIFT) != 0) {
            throw new MmException(Errno.EINVAL, addr, "flags: 0x" + Integer.toHexString(flags) + " give a huge page size without MAP_HUGETLB");
        }
        long unit = hugeSize != 0 ? hugeSize : pageSize;
        if (hugeSize != 0 && (length & (hugeSize - 1)) != 0) {
            throw new MmException(Errno.EINVAL, addr, "length: 0x" + Long.toHexString(length) + " is not a multiple of the huge page size 0x"
                    + Long.toHexString(hugeSize));
        }
        long len = alignUp(length, pageSize);
        if (len <= 0 || len > geometry.iaLimit()) throw new MmException(Errno.ENOMEM, addr, "length: 0x" + Long.toHexString(length) + " does not fit the address space");
        boolean fixed = (flags & Mman.MAP_FIXED) != 0;
        if (fixed) {
            if ((addr & (unit - 1)) != 0) {
                throw new MmException(Errno.EINVAL, addr, "addr: 0x" + Long.toHexString(addr) + " is not aligned to 0x" + Long.toHexString(unit));
            }
            if (addr < pageSize) throw new MmException(Errno.EPERM, addr, "addr: 0x" + Long.toHexString(addr) + " is below the lowest mappable address");
            if (addr + len > geometry.iaLimit() || addr + len < addr) {
                throw new MmException(Errno.ENOMEM, addr, "[0x" + Long.toHexString(addr) + ", +0x" + Long.toHexString(len) + ") leaves the "
                        + geometry.iaBits() + "-bit address space");
            }
        }
        mmapLock.writeLock();
        try {
            checkLive();
            long start;
            if (fixed) {
                start = addr;
                checkHugeBoundaries("mmap", start, start + len);
                unmapLocked(start, start + len);
            } else if (addr != 0 && (addr & (unit - 1)) == 0 && addr >= pageSize && addr + len <= geometry.iaLimit() && addr + len > addr
                    && isFree(addr, addr + len)) {
                start = addr;
            } else {
                start = findFree(len, hugeSize != 0 ? hugeSize : largestBlockWithin(len));
            }
            SharedMemory shmem = null;
            if (shared) {
                int order = Long.numberOfTrailingZeros(hugeSize != 0 ? hugeSize : pageSize) - pageShift;
                shmem = new SharedMemory(memory, order, hugeSize != 0);
            }
            insertVma(new Vma(start, start + len, prot, shared, hugeSize, false, shmem, 0));
            return start;
        } finally {
            mmapLock.writeUnlock();
        }
    }

    /** The huge page size {@code flags} ask for: a block size of the granule at level 1 or 2. */
    private long hugePageSize(long addr, int flags) {
        int log = (flags >>> Mman.MAP_HUGE_SHIFT) & 0x3F;
        Granule g = geometry.granule();
        if (log == 0) return g.levelSize(2);
        for (int level = Math.max(1, g.minBlockLevel()); level <= 2; level++) {
            if (g.levelShift(level) == log) return g.levelSize(level);
        }
        throw new MmException(Errno.EINVAL, addr, "flags: huge page size 2^" + log + " is not a block size of the " + g.label()
                + " granule (levels 1..2)");
    }

    /** The largest block size (levels 1..2) not above {@code len}, else the page size. */
    private long largestBlockWithin(long len) {
        Granule g = geometry.granule();
        for (int level = Math.max(1, g.minBlockLevel()); level <= 2; level++) {
            if (g.levelSize(level) <= len) return g.levelSize(level);
        }
        return pageSize;
    }

    static long alignUp(long v, long a) {
        return (v + a - 1) & -a;
    }

    private boolean isFree(long start, long end) {
        Map.Entry<Long, Vma> e = vmas.lowerEntry(end);
        return e == null || e.getValue().end() <= start;
    }

    private long findFree(long len, long align) {
        long limit = geometry.iaLimit();
        long candidate = alignUp(MMAP_BASE, align);
        for (Vma v : vmas.values()) {
            if (v.end() <= candidate) continue;
            if (candidate + len <= v.start()) break;
            candidate = alignUp(v.end(), align);
            if (candidate <= 0 || candidate >= limit) break;
        }
        if (candidate <= 0 || candidate + len > limit || candidate + len < candidate) {
            throw new MmException(Errno.ENOMEM, 0, "no free range of 0x" + Long.toHexString(len) + " bytes aligned to 0x"
                    + Long.toHexString(align) + " in the " + geometry.iaBits() + "-bit address space");
        }
        return candidate;
    }

    /** Adds {@code v} (its range is free); a shared-memory object gains a user. */
    void insertVma(Vma v) {
        if (v.sharedMemory() != null) v.sharedMemory().addUser();
        vmas.put(v.start(), v);
    }

    private void removeVma(Vma v) {
        vmas.remove(v.start());
        if (v.sharedMemory() != null) v.sharedMemory().removeUser();
    }

    /**
     * Splits the VMA containing {@code addr} strictly inside it into two at {@code addr}. A THP
     * block across {@code addr} is split to PTEs first (the kernel's vma_adjust_trans_huge), so
     * no block entry ever spans two VMAs.
     *
     * @throws MmException ENOMEM if no table frame is free for that split (no VMA changed)
     */
    private void splitAt(long addr) {
        Map.Entry<Long, Vma> e = vmas.lowerEntry(addr);
        if (e == null) return;
        Vma v = e.getValue();
        if (v.end() <= addr) return;
        if (!v.hugetlb()) {
            try {
                table.atLeaf(addr, ctx -> {
                    if (Pte.isValid(ctx.old()) && ctx.level() < Granule.LAST_LEVEL && ctx.entryBase() != addr) {
                        table.splitBlock(ctx);
                        stats.add(MmEvent.THP_SPLIT);
                    }
                });
            } catch (PageTableException x) {
                if (!isOutOfMemory(x)) throw x;
                throw new MmException(Errno.ENOMEM, addr, "no table frame to split the THP across the new VMA boundary");
            }
        }
        Vma lo = v.slice(v.start(), addr, v.prot());
        Vma hi = v.slice(addr, v.end(), v.prot());
        vmas.put(lo.start(), lo);
        vmas.put(hi.start(), hi);
        if (v.sharedMemory() != null) v.sharedMemory().addUser(); // two VMAs name it now
    }

    /** The VMAs overlapping {@code [start, end)}, in address order (mmap lock held). */
    List<Vma> vmasIn(long start, long end) {
        List<Vma> out = new ArrayList<>();
        Map.Entry<Long, Vma> first = vmas.lowerEntry(start);
        if (first != null && first.getValue().end() > start) out.add(first.getValue());
        for (Vma v : vmas.subMap(start, true, end, false).values()) out.add(v);
        return out;
    }

    /** Whether {@code [start, end)} is covered by VMAs without a hole (mmap lock held). */
    private boolean covered(long start, long end) {
        long at = start;
        for (Vma v : vmasIn(start, end)) {
            if (v.start() > at) return false;
            at = v.end();
        }
        return at >= end;
    }

    /** Checks a range argument: page-aligned start, positive length; returns the page-aligned end. */
    private long rangeEnd(String op, long addr, long length) {
        if ((addr & (pageSize - 1)) != 0) {
            throw new MmException(Errno.EINVAL, addr, op + ": addr: 0x" + Long.toHexString(addr) + " is not page-aligned");
        }
        if (length <= 0) throw new MmException(Errno.EINVAL, addr, op + ": length: 0x" + Long.toHexString(length) + " is not positive");
        long end = alignUp(addr + length, pageSize);
        if (addr < 0 || end > geometry.iaLimit() || end <= addr) {
            throw new MmException(Errno.EINVAL, addr, op + ": [0x" + Long.toHexString(addr) + ", +0x" + Long.toHexString(length)
                    + ") leaves the " + geometry.iaBits() + "-bit address space");
        }
        return end;
    }

    /** Hugetlb VMAs may only be cut at huge-page boundaries (the kernel's EINVAL). */
    private void checkHugeBoundaries(String op, long start, long end) {
        for (Vma v : vmasIn(start, end)) {
            if (!v.hugetlb()) continue;
            long mask = v.hugePageSize() - 1;
            if ((start > v.start() && (start & mask) != 0) || (end < v.end() && (end & mask) != 0)) {
                throw new MmException(Errno.EINVAL, start, op + ": [0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end)
                        + ") cuts the hugetlb area " + v + " inside a huge page");
            }
        }
    }

    /** Unmaps {@code [addr, addr + length)}: UNMAP notifier, zap, free the page tables left empty. */
    public void munmap(long addr, long length) {
        checkLive();
        long end = rangeEnd("munmap", addr, length);
        mmapLock.writeLock();
        try {
            checkLive();
            checkHugeBoundaries("munmap", addr, end);
            unmapLocked(addr, end);
        } finally {
            mmapLock.writeUnlock();
        }
    }

    /** munmap with the mmap write lock held: one UNMAP notifier over the mapped part, zap, VMAs removed. */
    private void unmapLocked(long start, long end) {
        List<Vma> hit = vmasIn(start, end);
        if (hit.isEmpty()) return;
        long s = Math.max(start, hit.get(0).start());
        long e = Math.min(end, hit.get(hit.size() - 1).end());
        Zap.zap(this, s, e, NotifierEvent.UNMAP, true);
        splitAt(start);
        splitAt(end);
        for (Vma v : vmasIn(start, end)) removeVma(v);
    }

    /**
     * Changes protection (PROTECTION_VMA notifier over the range). Present entries lose write,
     * exec or (PROT_NONE) user access as the new protection requires, and regain user access and
     * exec if it grants them; write is never added to an entry (the next write fault makes the
     * page writable, reusing or copying it). Swap and device-exclusive entries are left alone
     * (a device-exclusive entry's writability is decided from the VMA when it is restored).
     *
     * @throws MmException EINVAL (bad arguments, a hugetlb area cut inside a huge page), ENOMEM
     *         (part of the range is not mapped; nothing is changed)
     */
    public void mprotect(long addr, long length, int prot) {
        checkLive();
        long end = rangeEnd("mprotect", addr, length);
        if ((prot & ~PROT_MASK) != 0) throw new MmException(Errno.EINVAL, addr, "prot: 0x" + Integer.toHexString(prot) + " has unknown bits");
        mmapLock.writeLock();
        try {
            checkLive();
            if (!covered(addr, end)) {
                throw new MmException(Errno.ENOMEM, addr, "mprotect: [0x" + Long.toHexString(addr) + ", 0x" + Long.toHexString(end) + ") is not fully mapped");
            }
            checkHugeBoundaries("mprotect", addr, end);
            NotifierRange range = new NotifierRange(addr, end, NotifierEvent.PROTECTION_VMA, null);
            notifiers.invalidateRangeStart(range);
            try {
                splitAt(addr);
                splitAt(end);
                for (Vma v : vmasIn(addr, end)) vmas.put(v.start(), v.slice(v.start(), v.end(), prot));
                Protect.protect(this, addr, end, prot);
            } finally {
                notifiers.invalidateRangeEnd(range);
            }
        } finally {
            mmapLock.writeUnlock();
        }
    }

    /**
     * MADV_DONTNEED (zap, CLEAR notifier per area; tables stay), MADV_HUGEPAGE / MADV_NOHUGEPAGE
     * (private anonymous areas only; split at the boundaries), MADV_PAGEOUT (reclaim each page
     * that can be, under the mmap read lock). As the kernel does, the mapped parts are handled
     * and ENOMEM is thrown afterwards if the range had a hole.
     *
     * @throws MmException EINVAL (bad arguments or advice, hugetlb cut inside a huge page), ENOMEM
     *         (part of the range was not mapped)
     */
    public void madvise(long addr, long length, int advice) {
        checkLive();
        long end = rangeEnd("madvise", addr, length);
        if (advice == Mman.MADV_PAGEOUT) {
            boolean hole;
            mmapLock.readLock();
            try {
                hole = !covered(addr, end);
            } finally {
                mmapLock.readUnlock();
            }
            for (long a = addr; a < end; a += pageSize) reclaimPage(a);
            if (hole) throw holeError("madvise", addr, end);
            return;
        }
        if (advice != Mman.MADV_DONTNEED && advice != Mman.MADV_HUGEPAGE && advice != Mman.MADV_NOHUGEPAGE) {
            throw new MmException(Errno.EINVAL, addr, "advice: " + advice + " is not one of MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_PAGEOUT");
        }
        mmapLock.writeLock();
        try {
            checkLive();
            boolean hole = !covered(addr, end);
            if (advice == Mman.MADV_DONTNEED) {
                checkHugeBoundaries("madvise", addr, end);
                for (Vma v : vmasIn(addr, end)) {
                    Zap.zap(this, Math.max(addr, v.start()), Math.min(end, v.end()), NotifierEvent.CLEAR, false);
                }
            } else {
                boolean on = advice == Mman.MADV_HUGEPAGE;
                boolean any = false;
                for (Vma v : vmasIn(addr, end)) any |= v.anonymous();
                if (any) {
                    splitAt(addr);
                    splitAt(end);
                    for (Vma v : vmasIn(addr, end)) {
                        if (v.anonymous()) vmas.put(v.start(), v.withThp(on));
                    }
                }
            }
            if (hole) throw holeError("madvise", addr, end);
        } finally {
            mmapLock.writeUnlock();
        }
    }

    private static MmException holeError(String op, long addr, long end) {
        return new MmException(Errno.ENOMEM, addr, op + ": [0x" + Long.toHexString(addr) + ", 0x" + Long.toHexString(end)
                + ") is not fully mapped (the mapped parts were handled)");
    }

    public List<Vma> vmas() {
        mmapLock.readLock();
        try {
            return List.copyOf(vmas.values());
        } finally {
            mmapLock.readUnlock();
        }
    }

    /** The VMA containing {@code addr}, or null. */
    public Vma findVma(long addr) {
        mmapLock.readLock();
        try {
            return findVmaLocked(addr);
        } finally {
            mmapLock.readUnlock();
        }
    }

    /** {@link #findVma} with the mmap lock held. */
    Vma findVmaLocked(long addr) {
        Map.Entry<Long, Vma> e = vmas.floorEntry(addr);
        if (e == null || !e.getValue().contains(addr)) return null;
        return e.getValue();
    }

    /** Every VMA (mmap lock held). */
    Iterable<Vma> vmasLocked() {
        return vmas.values();
    }

    /**
     * Copies this address space (fork): private areas become COW on both sides (a
     * PROTECTION_PAGE notifier over each first), shared areas are shared, device-exclusive entries
     * are restored first.
     *
     * @throws MmException ENOMEM if a device-exclusive folio's lock cannot be taken (a driver holds
     *         it); then nothing is changed and no child exists. ENOMEM also if table memory runs
     *         out while copying: then no child exists, but entries already write-protected stay so.
     */
    public AddressSpace fork() {
        checkLive();
        return Fork.fork(this);
    }

    // ---- CPU side ----

    /** Handles one CPU fault at {@code addr} (the arch fault handler + handle_mm_fault). */
    public FaultResult handleFault(long addr, Access access) {
        checkLive();
        if (access == null) throw new IllegalArgumentException("access: null");
        mmapLock.readLock();
        FaultResult r = null;
        try {
            r = faults.fault(addr, access);
        } finally {
            // RETRY: the handler already gave up the mmap lock (to sleep on a folio lock). An
            // exception (r still null) comes with the lock held.
            if (r != FaultResult.RETRY) mmapLock.readUnlock();
        }
        return r;
    }

    /**
     * A CPU access: faults (retrying RETRY) until the entry allows it, marks it young (and dirty
     * for a write) as the hardware would, and returns the physical address.
     *
     * @throws SegmentationFault if a fault ends in SIGSEGV
     * @throws MmException ENOMEM on OOM
     */
    public long access(long addr, Access access) {
        return cpu(addr, access, CpuOp.NONE, 0, 0);
    }

    public int readInt(long addr) {
        checkAlignment(addr, 4);
        return (int) cpu(addr, Access.READ, CpuOp.READ_INT, 0, 0);
    }

    public void writeInt(long addr, int value) {
        checkAlignment(addr, 4);
        cpu(addr, Access.WRITE, CpuOp.WRITE_INT, value, 0);
    }

    /** Atomically adds {@code delta} to the int at {@code addr} (a CPU atomic); returns the old value. */
    public int getAndAddInt(long addr, int delta) {
        checkAlignment(addr, 4);
        return (int) cpu(addr, Access.WRITE, CpuOp.ADD_INT, delta, 0);
    }

    public long readLong(long addr) {
        checkAlignment(addr, 8);
        return cpu(addr, Access.READ, CpuOp.READ_LONG, 0, 0);
    }

    public void writeLong(long addr, long value) {
        checkAlignment(addr, 8);
        cpu(addr, Access.WRITE, CpuOp.WRITE_LONG, 0, value);
    }

    private static void checkAlignment(long addr, int size) {
        if ((addr & (size - 1)) != 0) {
            throw new IllegalArgumentException("addr: 0x" + Long.toHexString(addr) + " is not aligned to " + size + " bytes");
        }
    }

    private enum CpuOp { NONE, READ_INT, WRITE_INT, ADD_INT, READ_LONG, WRITE_LONG }

    /**
     * One CPU access: under the PTL, if the entry allows it, set AF (and DIRTY for a write) as the
     * hardware does and do the data access on the folio, which the entry keeps alive while the
     * PTL is held; otherwise fault and try again.
     */
    private long cpu(long addr, Access access, CpuOp op, int intValue, long longValue) {
        checkLive();
        if (access == null) throw new IllegalArgumentException("access: null");
        boolean inRange = addr >= 0 && addr < geometry.iaLimit();
        long[] result = new long[2];
        while (true) {
            if (inRange) {
                result[0] = 0;
                table.atLeaf(addr, ctx -> {
                    long pte = ctx.old();
                    if (!Faults.entryAllows(pte, access)) return;
                    long young = pte | HostPte.AF | (access == Access.WRITE ? HostPte.DIRTY : 0);
                    // AF and DIRTY are what the hardware sets itself (no TLB flush).
                    if (young != pte) ctx.trySet(young);
                    long pa = geometry.outputAddress(pte) + (addr - ctx.entryBase());
                    result[0] = 1;
                    result[1] = op == CpuOp.NONE ? pa : data(pa, op, intValue, longValue);
                });
                if (result[0] != 0) return result[1];
            }
            FaultResult r = handleFault(addr, access);
            switch (r) {
                case DONE:
                case RETRY:
                    continue;
                case SEGV_MAPERR:
                    throw new SegmentationFault(addr, true, access.label() + " with no VMA at the address");
                case SEGV_ACCERR:
                    throw new SegmentationFault(addr, false, access.label() + " not allowed by " + findVma(addr));
                case OOM:
                    throw new MmException(Errno.ENOMEM, addr, access.label() + " fault: out of memory");
                default:
                    throw new IllegalStateException("fault result " + r);
            }
        }
    }

    private long data(long pa, CpuOp op, int intValue, long longValue) {
        Folio f = memory.folioOf(pa);
        long off = pa - f.pa();
        switch (op) {
            case READ_INT: return f.readInt(off);
            case WRITE_INT: f.writeInt(off, intValue); return 0;
            case ADD_INT: return f.getAndAddInt(off, intValue);
            case READ_LONG: return f.readLong(off);
            case WRITE_LONG: f.writeLong(off, longValue); return 0;
            default: return pa;
        }
    }

    // ---- kernel-internal users ----

    /**
     * get_user_pages for one page: faults it in (unless FOLL_NOFAULT), breaking COW for
     * FOLL_WRITE, splitting a PMD-mapped THP for FOLL_SPLIT_PMD, and returns it in {@code out}
     * with a reference the caller must put. A device-exclusive entry is restored through the
     * fault path first (so a second device steals exclusivity from the first).
     *
     * <p>FOLL_SPLIT_PMD remaps a PMD-mapped THP by PTEs and splits the folio into order-0 folios
     * when every mapping of it is a PTE of this table and nothing else holds a reference;
     * otherwise (after fork, or while pinned) the folio stays large, PTE-mapped.
     *
     * @throws MmException EFAULT (no VMA, access not allowed, or FOLL_NOFAULT and not mapped),
     *         ENOMEM, EOPNOTSUPP (FOLL_SPLIT_PMD on hugetlb)
     */
    public void getUserPage(long addr, int gupFlags, GupResult out) {
        checkLive();
        if (out == null) throw new IllegalArgumentException("out: null");
        int known = Mman.FOLL_WRITE | Mman.FOLL_NOFAULT | Mman.FOLL_SPLIT_PMD;
        if ((gupFlags & ~known) != 0) throw new IllegalArgumentException("gupFlags: 0x" + Integer.toHexString(gupFlags) + " has unknown bits");
        mmapLock.readLock();
        try {
            faults.gup(addr, gupFlags, out);
        } finally {
            mmapLock.readUnlock();
        }
    }

    /**
     * make_device_exclusive (6.15): converts the page at {@code addr} to a device-exclusive
     * entry and returns its folio locked, with a reference; the caller unlocks and puts it.
     * EXCLUSIVE notifier with {@code owner} over the page. The entry keeps the mapping's map
     * count and reference (counts are unchanged by the conversion).
     *
     * @throws MmException EOPNOTSUPP (hugetlb or not anonymous), EFAULT (no VMA or not writable),
     *         EBUSY (a THP whose folio could not be split because it is shared or pinned)
     */
    public Folio makeDeviceExclusive(long addr, Object owner) {
        checkLive();
        return DeviceExclusive.make(this, addr & -pageSize, owner);
    }

    /**
     * Reclaims the page at {@code addr} to swap (try_to_unmap + pageout): a present or
     * device-exclusive entry of an unlocked, unpinned, anonymous order-0 folio mapped once
     * becomes a swap entry after a CLEAR notifier (a PMD-mapped THP is split first, folio too if
     * possible). Returns false (changing nothing but such a split) if the page cannot be
     * reclaimed now. With no rmap in ptlab, only folios mapped by exactly one entry are reclaimed.
     */
    public boolean reclaimPage(long addr) {
        checkLive();
        return Reclaim.reclaim(this, addr & -pageSize);
    }

    /**
     * Ages {@code [addr, addr + length)}: clears the young bit of present entries and asks the
     * notifiers to clear-and-flush theirs over each present leaf's range; returns how many pages
     * were young in either.
     */
    public long age(long addr, long length) {
        checkLive();
        long end = rangeEnd("age", addr, length);
        return Reclaim.age(this, addr, end);
    }

    /** The leaf entry mapping {@code addr} (0 if none): present, swap or device-exclusive. */
    public long pte(long addr) {
        checkLive();
        if (addr < 0 || addr >= geometry.iaLimit()) return 0;
        return table.lookup(addr, new ProcessPageTable.Found()).pte;
    }

    /** The level of the leaf entry mapping {@code addr} (where the walk stopped if none). */
    public int pteLevel(long addr) {
        checkLive();
        if (addr < 0 || addr >= geometry.iaLimit()) throw new IllegalArgumentException("addr: 0x" + Long.toHexString(addr) + " is outside the address space");
        return table.lookup(addr, new ProcessPageTable.Found()).level;
    }

    /** Resident pages (present or device-exclusive entries, counted in pages). */
    public long rss() {
        return rss.get();
    }

    /**
     * Checks this space's own invariants: table refcounts exact, every entry inside a VMA, every
     * present or device-exclusive entry names a live folio whose kind matches its VMA (anonymous
     * order-0 or THP in private areas, hugetlb at its block level, the shared-memory object's own
     * folio in shared areas), present entries' rights within the VMA's, device-exclusive entries
     * only in private anonymous areas on order-0 anonymous folios, swap entries only in private
     * anonymous areas naming used slots, and {@link #rss()} equal to the pages mapped.
     * {@link Host#checkInvariants(boolean)} adds the cross-space counts. For quiescent points.
     *
     * @throws InvariantViolation on the first violation
     */
    public void checkInvariants() {
        checkLive();
        table.checkRefcounts();
        mmapLock.readLock();
        try {
            long[] pages = {0};
            table.forEachEntry(0, geometry.iaLimit(), (base, level, pte) -> pages[0] += checkEntry(base, level, pte));
            if (pages[0] != rss.get()) {
                throw new InvariantViolation("rss is " + rss.get() + " pages but entries map " + pages[0]);
            }
        } finally {
            mmapLock.readUnlock();
        }
    }

    /** Checks one entry against its VMA; returns the resident pages it stands for. */
    private long checkEntry(long base, int level, long pte) {
        long size = geometry.granule().levelSize(level);
        Vma v = findVmaLocked(base);
        String where = "entry " + HostPte.describe(geometry, pte) + " at 0x" + Long.toHexString(base) + " level " + level;
        if (v == null || base + size > v.end()) throw new InvariantViolation(where + " is not inside one VMA (" + v + ")");
        if (HostPte.isSwap(pte)) {
            if (!v.anonymous()) throw new InvariantViolation(where + " is a swap entry in " + v);
            if (level != Granule.LAST_LEVEL) throw new InvariantViolation(where + " is a swap entry above the last level");
            if (host.swap().count(HostPte.swapOffset(pte)) <= 0) throw new InvariantViolation(where + " names a free swap slot");
            return 0;
        }
        if (HostPte.isDeviceExclusive(pte)) {
            Folio f = memory.folioOf(HostPte.swapOffset(pte) << pageShift);
            if (!v.anonymous()) throw new InvariantViolation(where + " is device-exclusive in " + v);
            if (level != Granule.LAST_LEVEL) throw new InvariantViolation(where + " is device-exclusive above the last level");
            if (f == null || f.isLarge() || !f.isAnon() || f.isHugetlb()) {
                throw new InvariantViolation(where + " names " + f + " (needs a live order-0 anonymous folio)");
            }
            return 1;
        }
        if (!Pte.isValid(pte)) throw new InvariantViolation(where + " is a non-present entry of a type ptlab never writes");
        long pa = geometry.outputAddress(pte);
        Folio f = memory.folioOf(pa);
        if (f == null) throw new InvariantViolation(where + " maps a free page");
        if (HostPte.isUser(pte) != (v.prot() != Mman.PROT_NONE)) throw new InvariantViolation(where + " has user access unlike " + v);
        if (HostPte.isWrite(pte) && !v.writable()) throw new InvariantViolation(where + " is writable in " + v);
        if (HostPte.isExec(pte) != v.executable()) throw new InvariantViolation(where + " has exec unlike " + v);
        if (v.hugetlb()) {
            if (size != v.hugePageSize() || !f.isHugetlb() || f.size() != size || f.pa() != pa) {
                throw new InvariantViolation(where + " in " + v + " maps " + f + " (needs a whole hugetlb folio at the huge page level)");
            }
        } else if (f.isHugetlb()) {
            throw new InvariantViolation(where + " in " + v + " maps a hugetlb folio " + f);
        }
        if (v.shared()) {
            Folio own = v.sharedMemory().folio(v.sharedOffset() + (base - v.start()));
            if (f.isAnon() || own != f) throw new InvariantViolation(where + " in " + v + " maps " + f + ", not its shared memory's folio " + own);
        } else if (!f.isAnon()) {
            throw new InvariantViolation(where + " in " + v + " maps a non-anonymous folio " + f);
        }
        if (level < Granule.LAST_LEVEL && !v.hugetlb() && (f.pa() != pa || f.size() != size)) {
            throw new InvariantViolation(where + " is a block over " + f + " (a THP block maps its whole folio)");
        }
        if (level == Granule.LAST_LEVEL && !f.contains(pa)) throw new InvariantViolation(where + " is outside " + f);
        return size >>> pageShift;
    }

    /** exit_mmap: RELEASE notifier, unmaps everything, frees every table frame (the root too). */
    @Override
    public void close() {
        if (closed) return;
        mmapLock.writeLock();
        try {
            if (closed) return;
            // Secondary MMUs drop everything first; the zap that follows sends no invalidations.
            notifiers.release();
            for (Vma v : new ArrayList<>(vmas.values())) {
                Zap.zap(this, v.start(), v.end(), null, true);
                removeVma(v);
            }
            table.destroy();
            closed = true;
            host.remove(this);
        } finally {
            mmapLock.writeUnlock();
        }
    }

    public boolean closed() {
        return closed;
    }

    /** Turns a table-memory ENOMEM into the mm's own error. */
    static boolean isOutOfMemory(PageTableException e) {
        return e.errno() == Errno.ENOMEM;
    }

    @Override
    public String toString() {
        return "address space (" + vmas.size() + " VMAs, rss " + rss.get() + " pages)" + (closed ? " closed" : "");
    }
}
