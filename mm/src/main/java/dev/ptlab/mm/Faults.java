package dev.ptlab.mm;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Access;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;

/**
 * The fault handler (handle_mm_fault and what it calls) and GUP of one address space.
 *
 * <p>Entry: the mmap lock held for reading, exactly once by this thread. Every path returns with
 * it still held, except {@link FaultResult#RETRY}: the handler gave it up to sleep on a folio lock
 * (never sleep on a folio lock holding the mmap lock: its holder may be waiting for that lock).
 * Pages are allocated and copied before the PTL is taken; the PTL is held only to check that the
 * entry is still what the decision was based on and to change it. Notifiers (CoW's CLEAR, a
 * restore's CLEAR) are called with the PTL not held.
 */
final class Faults {
    private final AddressSpace mm;
    private final ProcessPageTable table;
    private final HostMemory memory;
    private final Geometry geometry;
    private final long pageSize;
    private final int pageShift;

    Faults(AddressSpace mm) {
        this.mm = mm;
        this.table = mm.table;
        this.memory = mm.memory;
        this.geometry = mm.geometry;
        this.pageSize = mm.pageSize;
        this.pageShift = mm.pageShift;
    }

    // ---- rights ----

    /** Whether the VMA allows {@code access}: read needs READ or WRITE (arm64: write implies read), exec needs EXEC. */
    static boolean vmaAllows(Vma v, Access access) {
        switch (access) {
            case READ: return (v.prot() & (Mman.PROT_READ | Mman.PROT_WRITE)) != 0;
            case WRITE: return v.writable();
            default: return v.executable();
        }
    }

    /** Whether a (present, user) entry lets EL0 do {@code access} without a fault. */
    static boolean entryAllows(long pte, Access access) {
        if (!Pte.isValid(pte) || !HostPte.isUser(pte)) return false;
        switch (access) {
            case READ: return true;
            case WRITE: return HostPte.isWrite(pte);
            default: return HostPte.isExec(pte);
        }
    }

    /** A new present entry for {@code pa} at {@code level} with the VMA's base rights. */
    long newEntry(Vma v, long pa, int level, boolean write, boolean young, boolean dirty) {
        long pte = HostPte.present(geometry, pa, level, v.prot() != Mman.PROT_NONE, write, v.executable(), young, dirty);
        return dirty ? HostPte.mkDirty(pte) : pte;
    }

    // ---- the fault handler ----

    FaultResult fault(long addr, Access access) {
        mm.stats.add(MmEvent.FAULT);
        Vma vma = mm.findVmaLocked(addr);
        if (vma == null) return segv(FaultResult.SEGV_MAPERR);
        if (!vmaAllows(vma, access)) return segv(FaultResult.SEGV_ACCERR);
        ProcessPageTable.Found f = table.lookup(addr, new ProcessPageTable.Found());
        long pte = f.pte;
        try {
            if (pte == 0) return none(vma, addr, access, f);
            if (HostPte.isDeviceExclusive(pte)) return DeviceExclusive.restoreOnFault(mm, vma, addr, pte);
            if (HostPte.isSwap(pte)) return swapIn(vma, addr, access, f);
            if (!Pte.isValid(pte)) {
                throw new IllegalStateException("fault at 0x" + Long.toHexString(addr) + " met " + HostPte.describe(geometry, pte));
            }
            if (entryAllows(pte, access)) {
                mm.stats.add(MmEvent.SPURIOUS_FAULT);
                return FaultResult.DONE;
            }
            if (access == Access.WRITE && HostPte.isUser(pte)) return wp(vma, addr, f);
            return makeAccessible(vma, addr, f);
        } catch (PageTableException e) {
            if (!AddressSpace.isOutOfMemory(e)) throw e;
            return FaultResult.OOM;
        }
    }

    private FaultResult segv(FaultResult r) {
        mm.stats.add(MmEvent.SEGV);
        return r;
    }

    /** Nothing mapped: allocate (anonymous, THP, hugetlb) or look up (shared) and map. */
    private FaultResult none(Vma vma, long addr, Access access, ProcessPageTable.Found f) {
        boolean write = access == Access.WRITE;
        if (vma.hugetlb()) {
            long size = vma.hugePageSize();
            int level = levelOfSize(size);
            long base = addr & -size;
            if (f.level > level) {
                // A table where the huge page goes: VMA boundaries and zap keep this from happening.
                throw new IllegalStateException("hugetlb fault at 0x" + Long.toHexString(addr) + " found a table at level " + level);
            }
            Folio folio = vma.shared()
                    ? vma.sharedMemory().getForMapping(vma.sharedOffset() + (base - vma.start()))
                    : memory.allocate(Long.numberOfTrailingZeros(size) - pageShift, Folio.HUGETLB | Folio.ANON);
            if (folio == null) return FaultResult.OOM;
            boolean dirty = vma.shared() ? write : vma.writable();
            return mapNew(folio, base, level, newEntry(vma, folio.pa(), level, vma.writable(), true, dirty), MmEvent.HUGETLB_PAGE);
        }
        if (vma.shared()) {
            long page = addr & -pageSize;
            Folio folio = vma.sharedMemory().getForMapping(vma.sharedOffset() + (page - vma.start()));
            if (folio == null) return FaultResult.OOM;
            return mapNew(folio, page, Granule.LAST_LEVEL, newEntry(vma, folio.pa(), Granule.LAST_LEVEL, vma.writable(), true, write),
                    MmEvent.SHMEM_PAGE);
        }
        // Private anonymous. No zero page: a read allocates too (writable and dirty if the VMA is).
        if (vma.thp() && f.level <= 2) {
            long blk = geometry.granule().levelSize(2);
            long base = addr & -blk;
            if (base >= vma.start() && base + blk <= vma.end()) {
                Folio folio = memory.allocate(Long.numberOfTrailingZeros(blk) - pageShift, Folio.ANON);
                if (folio != null) {
                    return mapNew(folio, base, 2, newEntry(vma, folio.pa(), 2, vma.writable(), true, vma.writable()), MmEvent.THP_PAGE);
                }
                // No block free: fall back to a page, as the kernel does.
            }
        }
        Folio folio = memory.allocate(0, Folio.ANON);
        if (folio == null) return FaultResult.OOM;
        long page = addr & -pageSize;
        return mapNew(folio, page, Granule.LAST_LEVEL,
                newEntry(vma, folio.pa(), Granule.LAST_LEVEL, vma.writable(), true, vma.writable()), MmEvent.ANON_PAGE);
    }

    /** The level whose entries map {@code size} bytes. */
    int levelOfSize(long size) {
        Granule g = geometry.granule();
        for (int level = Granule.LAST_LEVEL; level >= g.minBlockLevel(); level--) {
            if (g.levelSize(level) == size) return level;
        }
        throw new IllegalArgumentException("size: 0x" + Long.toHexString(size) + " is no level's entry size");
    }

    /**
     * Maps a folio the caller holds the mapping's reference on (a new allocation's first reference,
     * or the one shared memory took). If the entry is no longer empty another fault won: the
     * folio is dropped and the access replays.
     */
    private FaultResult mapNew(Folio folio, long addr, int level, long pte, MmEvent event) {
        // The map count is taken before the entry is visible, so nobody sees the entry uncounted.
        folio.incMapcount();
        boolean ok;
        try {
            ok = table.install(addr, level, pte);
        } catch (PageTableException e) {
            folio.decMapcount();
            folio.put();
            throw e;
        }
        if (!ok) {
            folio.decMapcount();
            folio.put();
            return FaultResult.DONE;
        }
        mm.rss.addAndGet(geometry.granule().levelSize(level) >>> pageShift);
        mm.stats.add(event);
        return FaultResult.DONE;
    }

    /** A swap entry: a new page with the slot's contents, the slot's count dropped. */
    private FaultResult swapIn(Vma vma, long addr, Access access, ProcessPageTable.Found f) {
        Folio folio = memory.allocate(0, Folio.ANON);
        if (folio == null) return FaultResult.OOM;
        long swp = f.pte;
        // Read fault: read-only, so a later write goes through the reuse path (as do_swap_page).
        boolean write = access == Access.WRITE && vma.writable();
        long pte = newEntry(vma, folio.pa(), Granule.LAST_LEVEL, write, true, write);
        if (HostPte.isSoftDirty(swp)) pte |= HostPte.SOFT_DIRTY;
        long newPte = pte;
        boolean[] done = {false};
        folio.incMapcount();
        table.atLeaf(addr, ctx -> {
            if (ctx.level() != Granule.LAST_LEVEL || ctx.old() != swp) return; // another fault swapped it in
            long slot = HostPte.swapOffset(swp);
            folio.setPageWords(0, mm.host.swap().read(slot));
            mm.host.swap().free(slot);
            table.set(ctx, newPte);
            done[0] = true;
        });
        if (!done[0]) {
            folio.decMapcount();
            folio.put();
            return FaultResult.DONE;
        }
        mm.rss.incrementAndGet();
        mm.stats.add(MmEvent.SWAP_IN);
        return FaultResult.DONE;
    }

    /**
     * Write to a present read-only entry of a writable VMA. Shared: make it writable. Private:
     * reuse the folio if this entry is its only mapping and reference (COW_REUSE), else copy the
     * page (COW_COPY). A PMD-mapped THP that cannot be reused is split to PTEs first and the one
     * page copied, as the kernel's do_huge_pmd_wp_page falls back.
     */
    private FaultResult wp(Vma vma, long addr, ProcessPageTable.Found f) {
        if (vma.shared()) {
            long np = HostPte.mkWrite(HostPte.mkDirty(HostPte.mkYoung(f.pte)));
            table.replace(addr, f.level, f.pte, np);
            return FaultResult.DONE;
        }
        Folio src;
        ProcessPageTable.Found cur = new ProcessPageTable.Found();
        table.lock();
        try {
            table.lookup(addr, cur);
            if (cur.pte != f.pte) return FaultResult.DONE; // changed meanwhile: replay
            src = memory.folioOf(geometry.outputAddress(cur.pte));
            if (src.mapcount() == 1 && src.refcount() == 1) {
                // The only mapping and no other reference (no GUP pin, no swap-in in flight):
                // nobody else can see the page, so writing it in place is safe.
                long np = HostPte.mkWrite(HostPte.mkDirty(HostPte.mkYoung(cur.pte)));
                table.replace(addr, cur.level, cur.pte, np);
                mm.stats.add(MmEvent.COW_REUSE);
                return FaultResult.DONE;
            }
            if (cur.level < Granule.LAST_LEVEL && !src.isHugetlb()) {
                splitPmd(addr, cur);
                table.lookup(addr, cur);
                src = memory.folioOf(geometry.outputAddress(cur.pte));
            }
            // Keeps the source alive while it is copied with no lock held.
            src.get();
        } finally {
            table.unlock();
        }
        try {
            return copy(vma, addr, cur, src);
        } finally {
            src.put();
        }
    }

    /** The COW copy of the page (or hugetlb page) {@code cur} maps, from {@code src}. */
    private FaultResult copy(Vma vma, long addr, ProcessPageTable.Found cur, Folio src) {
        Folio copy;
        if (src.isHugetlb()) {
            copy = memory.allocate(src.order(), Folio.HUGETLB | Folio.ANON);
            if (copy == null) return FaultResult.OOM;
            copy.copyFrom(src);
        } else {
            copy = memory.allocate(0, Folio.ANON);
            if (copy == null) return FaultResult.OOM;
            copy.copyPageFrom(src, (int) ((geometry.outputAddress(cur.pte) - src.pa()) >>> pageShift));
        }
        long np = newEntry(vma, copy.pa(), cur.level, true, true, true);
        if ((cur.pte & HostPte.SOFT_DIRTY) != 0) np |= HostPte.SOFT_DIRTY;
        NotifierRange range = new NotifierRange(cur.base, cur.base + cur.size, NotifierEvent.CLEAR, null);
        mm.notifiers.invalidateRangeStart(range);
        boolean ok;
        try {
            copy.incMapcount();
            table.lock();
            try {
                ok = table.replace(addr, cur.level, cur.pte, np);
                if (ok) {
                    src.decMapcount();
                    src.put(); // the old entry's reference (our temporary one keeps src alive)
                }
            } finally {
                table.unlock();
            }
            if (!ok) {
                copy.decMapcount();
                copy.put();
            }
        } finally {
            mm.notifiers.invalidateRangeEnd(range);
        }
        if (ok) mm.stats.add(MmEvent.COW_COPY);
        return FaultResult.DONE;
    }

    /**
     * A present entry lacking user access or exec that the VMA grants (not produced by ptlab's
     * own operations, which keep entries in step with their VMA; handled for robustness).
     */
    private FaultResult makeAccessible(Vma vma, long addr, ProcessPageTable.Found f) {
        long np = f.pte | HostPte.USER;
        if (vma.executable()) np &= ~HostPte.UXN;
        table.replace(addr, f.level, f.pte, np);
        return FaultResult.DONE;
    }

    // ---- splits ----

    /** Splits the PMD-mapped THP {@code cur} describes into PTEs (PTL held). */
    void splitPmd(long addr, ProcessPageTable.Found cur) {
        long pte = cur.pte;
        int level = cur.level;
        boolean[] done = {false};
        table.atLeaf(addr, ctx -> {
            if (ctx.level() == level && ctx.old() == pte) {
                table.splitBlock(ctx);
                done[0] = true;
            }
        });
        if (done[0]) mm.stats.add(MmEvent.THP_SPLIT);
    }

    /**
     * Splits a PTE-mapped large anonymous folio into order-0 folios (PTL held), if every mapping
     * of it is a page entry of this table at its natural place and nothing else references it
     * (no rmap in ptlab: that is how we know all its mappings). Pages no entry maps are freed.
     * Needs the folio lock (tried, never waited for). Returns whether it split.
     *
     * @param pageVa an address mapped to {@code pagePa}, a page of {@code folio}
     */
    boolean trySplitFolio(long pageVa, long pagePa, Folio folio) {
        if (!folio.isLarge() || folio.isHugetlb() || !folio.isAnon()) return false;
        long vaBase = (pageVa & -pageSize) - ((pagePa & -pageSize) - folio.pa());
        int n = folio.pages();
        boolean[] mapped = new boolean[n];
        int[] count = {0};
        boolean[] foreign = {false};
        if (!folio.tryLock()) return false;
        boolean split = false;
        try {
            table.walkRange(vaBase, vaBase + folio.size(), (ctx, visit) -> {
                long pte = ctx.old();
                if (!Pte.isValid(pte) || !folio.contains(geometry.outputAddress(pte))) return dev.ptlab.core.walk.Status.OK;
                long want = folio.pa() + (ctx.entryBase() - vaBase);
                if (ctx.level() != Granule.LAST_LEVEL || geometry.outputAddress(pte) != want) {
                    foreign[0] = true;
                } else {
                    mapped[(int) ((ctx.entryBase() - vaBase) >>> pageShift)] = true;
                    count[0]++;
                }
                return dev.ptlab.core.walk.Status.OK;
            }, false);
            if (foreign[0] || count[0] != folio.mapcount() || folio.refcount() != folio.mapcount()) return false;
            Folio[] pieces = memory.split(folio, 1, 0);
            split = true;
            for (int i = 0; i < n; i++) {
                if (mapped[i]) pieces[i].incMapcount();
            }
            for (int i = 0; i < n; i++) {
                pieces[i].unlock();
                if (!mapped[i]) pieces[i].put(); // nobody maps it: free
            }
            return true;
        } finally {
            // After a split the large folio is gone; its lock bit is cleared for any waiter all the same.
            folio.unlock();
            if (split) mm.stats.add(MmEvent.THP_SPLIT);
        }
    }

    // ---- GUP ----

    /**
     * get_user_pages for one page with the mmap read lock held (returns with it held, re-taking it
     * after a fault that gave it up).
     */
    void gup(long addr, int flags, GupResult out) {
        boolean write = (flags & Mman.FOLL_WRITE) != 0;
        Access access = write ? Access.WRITE : Access.READ;
        while (true) {
            Vma vma = (addr >= 0 && addr < geometry.iaLimit()) ? mm.findVmaLocked(addr) : null;
            if (vma == null) throw new MmException(Errno.EFAULT, addr, "no VMA");
            if (!vmaAllows(vma, access)) throw new MmException(Errno.EFAULT, addr, access.label() + " not allowed by " + vma);
            if ((flags & Mman.FOLL_SPLIT_PMD) != 0 && vma.hugetlb()) {
                throw new MmException(Errno.EOPNOTSUPP, addr, "FOLL_SPLIT_PMD on hugetlb " + vma);
            }
            try {
                if (grab(addr, flags, access, out)) return;
            } catch (PageTableException e) {
                if (!AddressSpace.isOutOfMemory(e)) throw e;
                throw new MmException(Errno.ENOMEM, addr, "GUP: no memory for page tables");
            }
            if ((flags & Mman.FOLL_NOFAULT) != 0) {
                throw new MmException(Errno.EFAULT, addr, "FOLL_NOFAULT and the page is not mapped for " + access.label());
            }
            FaultResult r = fault(addr, access);
            switch (r) {
                case DONE:
                    break;
                case RETRY:
                    mm.mmapLock.readLock();
                    break;
                case OOM:
                    throw new MmException(Errno.ENOMEM, addr, "GUP fault: out of memory");
                default:
                    throw new MmException(Errno.EFAULT, addr, "GUP fault: " + r);
            }
        }
    }

    /**
     * Splits a THP mapped at {@code addr} — the PMD mapping, then the large folio where it can —
     * inside a CLEAR notifier over the whole huge page (mmap lock held, PTL not). Does nothing if
     * the entry is not present or not huge.
     *
     * <p>A split is an invalidation for secondary MMUs: a PMD split changes the mapping's shape
     * and a folio split moves the pages into new folios, so a stage-2 2M block built from the
     * huge page must not outlive it (a store through the stale block would land in the old large
     * folio and be lost). As the kernel's __split_huge_pmd does, the split runs inside a notifier
     * over the whole huge page. The notifier may sleep, so it cannot be sent under the PTL: the
     * span is found under the PTL, which is dropped for the notifier, and the entry is looked up
     * again inside it, since anything may have changed meanwhile.
     *
     * @throws PageTableException out of memory for the page table the PMD split needs
     */
    void splitHuge(long addr) {
        ProcessPageTable.Found f = new ProcessPageTable.Found();
        NotifierRange span;
        table.lock();
        try {
            table.lookup(addr, f);
            span = Pte.isValid(f.pte) ? hugeSpan(addr, f) : null;
        } finally {
            table.unlock();
        }
        if (span == null) return;
        mm.notifiers.invalidateRangeStart(span);
        try {
            table.lock();
            try {
                table.lookup(addr, f);
                if (!Pte.isValid(f.pte)) return;
                if (f.level < Granule.LAST_LEVEL) {
                    splitPmd(addr, f);
                    table.lookup(addr, f);
                }
                long pagePa = geometry.outputAddress(f.pte);
                Folio folio = memory.folioOf(pagePa);
                if (folio.isLarge()) trySplitFolio(addr, pagePa, folio);
            } finally {
                table.unlock();
            }
        } finally {
            mm.notifiers.invalidateRangeEnd(span);
        }
    }

    /** The range a split of {@code f}'s mapping invalidates, or null if nothing there is a splittable THP (PTL held). */
    private NotifierRange hugeSpan(long addr, ProcessPageTable.Found f) {
        long pagePa = geometry.outputAddress(f.pte);
        Folio folio = memory.folioOf(pagePa);
        if (folio == null || folio.isHugetlb()) return null;
        if (f.level < Granule.LAST_LEVEL) {
            return new NotifierRange(f.base, f.base + f.size, NotifierEvent.CLEAR, null);
        }
        if (!folio.isLarge() || !folio.isAnon()) return null;
        long vaBase = (addr & -pageSize) - ((pagePa & -pageSize) - folio.pa());
        return new NotifierRange(vaBase, vaBase + folio.size(), NotifierEvent.CLEAR, null);
    }

    /** Takes the page if its entry allows {@code access} (PTL held throughout); false if a fault is needed. */
    private boolean grab(long addr, int flags, Access access, GupResult out) {
        if ((flags & Mman.FOLL_SPLIT_PMD) != 0) splitHuge(addr);
        ProcessPageTable.Found f = new ProcessPageTable.Found();
        table.lock();
        try {
            table.lookup(addr, f);
            if (!entryAllows(f.pte, access)) return false;
            long leafPa = geometry.outputAddress(f.pte);
            long pa = leafPa + ((addr & -pageSize) - f.base);
            Folio folio = memory.folioOf(pa);
            folio.get();
            out.folio = folio;
            out.pa = pa;
            out.writable = HostPte.isWrite(f.pte);
            out.mappingSize = f.size;
            out.mappingPa = leafPa;
            return true;
        } finally {
            table.unlock();
        }
    }
}
