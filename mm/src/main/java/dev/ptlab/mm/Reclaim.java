package dev.ptlab.mm;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.walk.Status;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.Arrays;

/**
 * Reclaim of one page to swap (try_to_unmap + pageout, 6.15, reference A.10) and page aging.
 * Both run under the mmap read lock, beside faults.
 */
final class Reclaim {
    private Reclaim() {}

    /**
     * try_to_unmap of the page at {@code addr}: a present entry (a PMD-mapped THP is split first,
     * its folio too where possible) or a device-exclusive one, of an anonymous order-0 folio that
     * nobody else holds: reference and lock tried (never waited for), the CLEAR notifier sent,
     * the entry re-checked under the PTL, the contents saved in a new swap slot, the entry
     * replaced by the swap entry (soft-dirty carried), the map count and the mapping's reference
     * dropped, and the folio freed when our own reference goes.
     *
     * <p>ptlab has no rmap, so only a folio mapped by exactly this one entry is reclaimed
     * (map count 1, references = map count + our temporary one); anything else returns false.
     */
    static boolean reclaim(AddressSpace mm, long addr) {
        ProcessPageTable table = mm.table;
        mm.mmapLock.readLock();
        try {
            Vma vma = addr >= 0 && addr < mm.geometry.iaLimit() ? mm.findVmaLocked(addr) : null;
            if (vma == null || !vma.anonymous()) return false; // shmem and hugetlb are not reclaimed here
            try {
                mm.faults.splitHuge(addr); // a THP is split first, under its own notifier
            } catch (PageTableException e) {
                if (!AddressSpace.isOutOfMemory(e)) throw e;
                return false; // no table frame to split the THP with
            }
            ProcessPageTable.Found f = new ProcessPageTable.Found();
            Folio folio;
            table.lock();
            try {
                table.lookup(addr, f);
                if (Pte.isValid(f.pte)) {
                    folio = mm.memory.folioOf(mm.geometry.outputAddress(f.pte));
                } else if (HostPte.isDeviceExclusive(f.pte)) {
                    folio = mm.memory.folioOf(HostPte.swapOffset(f.pte) << mm.pageShift);
                } else {
                    return false;
                }
                if (folio == null || !folio.tryGet()) return false;
            } finally {
                table.unlock();
            }
            return unmap(mm, addr, f.pte, folio);
        } finally {
            mm.mmapLock.readUnlock();
        }
    }

    /** The part after the lookup: holds a reference on {@code folio}, drops it. */
    private static boolean unmap(AddressSpace mm, long addr, long pte, Folio folio) {
        if (!folio.tryLock()) {
            folio.put();
            return false;
        }
        boolean done = false;
        try {
            if (folio.isLarge() || !folio.isAnon() || folio.isHugetlb() || folio.mapcount() != 1 || folio.refcount() != 2) return false;
            NotifierRange range = new NotifierRange(addr, addr + mm.pageSize, NotifierEvent.CLEAR, null);
            mm.notifiers.invalidateRangeStart(range);
            try {
                boolean[] ok = {false};
                mm.table.atLeaf(addr, ctx -> {
                    if (ctx.level() != Granule.LAST_LEVEL || ctx.old() != pte) return;
                    // Again under the PTL: GUP takes its references under it, so a page pinned
                    // after the first check is seen here and left alone.
                    if (folio.mapcount() != 1 || folio.refcount() != 2) return;
                    if (Pte.isValid(pte) && HostPte.isDirty(pte)) folio.markDirty();
                    long slot = mm.host.swap().allocate(folio.pageWords(0));
                    long swp = HostPte.swapEntry(HostPte.SWP_SWAPFILE, slot);
                    if (HostPte.isSoftDirty(pte)) swp |= HostPte.SWP_SOFT_DIRTY;
                    mm.table.set(ctx, swp); // a device-exclusive entry is cleared without a flush in the kernel; counted alike here
                    folio.decMapcount();
                    folio.put(); // the entry's reference; ours keeps the folio until unlocked
                    ok[0] = true;
                });
                done = ok[0];
            } finally {
                mm.notifiers.invalidateRangeEnd(range);
            }
        } finally {
            folio.unlock();
            folio.put();
        }
        if (done) {
            mm.rss.decrementAndGet();
            mm.stats.add(MmEvent.RECLAIM);
        }
        return done;
    }

    /**
     * Ages {@code [start, end)}: clears AF of every present leaf under the PTL (no flush needed
     * for correctness in the kernel's clear_young; counted), then, without the PTL, asks the
     * notifiers to clear-and-flush their own young state over each leaf's part of the range.
     * Returns the pages that were young in either.
     */
    static long age(AddressSpace mm, long start, long end) {
        mm.mmapLock.readLock();
        try {
            // Per present leaf: [from, to, young] (young as 0/1); collected under the PTL.
            long[][] leaves = {new long[48]};
            int[] n = {0};
            mm.table.walkRange(start, end, (ctx, visit) -> {
                long pte = ctx.old();
                if (!Pte.isValid(pte)) return Status.OK;
                long from = Math.max(start, ctx.entryBase());
                long to = Math.min(end, ctx.entryBase() + ctx.entrySpan());
                boolean young = HostPte.isYoung(pte);
                if (young) mm.table.set(ctx, HostPte.mkOld(pte));
                if (n[0] + 3 > leaves[0].length) leaves[0] = Arrays.copyOf(leaves[0], leaves[0].length * 2);
                leaves[0][n[0]++] = from;
                leaves[0][n[0]++] = to;
                leaves[0][n[0]++] = young ? 1 : 0;
                return Status.OK;
            }, false);
            long pages = 0;
            long[] l = leaves[0];
            for (int i = 0; i < n[0]; i += 3) {
                boolean secondary = mm.notifiers.clearFlushYoung(l[i], l[i + 1]);
                if (secondary || l[i + 2] != 0) pages += (l[i + 1] - l[i]) >>> mm.pageShift;
            }
            return pages;
        } finally {
            mm.mmapLock.readUnlock();
        }
    }
}
