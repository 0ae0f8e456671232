package dev.ptlab.mm;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;

/**
 * Zap (zap_pte_range and friends, 6.15, reference A.8): clears every entry of a range and drops
 * what each held. A present or device-exclusive entry: map count and reference dropped (a dirty
 * present entry marks its folio dirty first; core mm treats a device-exclusive entry as clean).
 * A swap entry: its slot's count dropped. A block the range covers only partly (a THP) is split
 * to PTEs first, and only the covered ones go. With {@code freeTables} (munmap, exit) every table
 * left empty is freed on the way up; MADV_DONTNEED keeps them, as the kernel does.
 *
 * <p>Runs with the mmap write lock held and the PTL taken by the walk, inside the notifier the
 * caller names (UNMAP for munmap, CLEAR for MADV_DONTNEED, none for exit after RELEASE).
 */
final class Zap implements Visitor, VisitContext.UnlinkFlush {
    private final AddressSpace mm;
    private final boolean freeTables;
    long pages;
    long tablesFreed;

    private Zap(AddressSpace mm, boolean freeTables) {
        this.mm = mm;
        this.freeTables = freeTables;
    }

    /**
     * Zaps {@code [start, end)} inside an invalidation of {@code event} (none if null: exit,
     * after the RELEASE call), the PTL held only by the walk, never around the notifier.
     */
    static void zap(AddressSpace mm, long start, long end, NotifierEvent event, boolean freeTables) {
        NotifierRange range = event == null ? null : new NotifierRange(start, end, event, null);
        if (range != null) mm.notifiers.invalidateRangeStart(range);
        try {
            Zap z = new Zap(mm, freeTables);
            mm.table.walkRange(start, end, z, freeTables);
            mm.stats.add(MmEvent.ZAPPED_PAGE, z.pages);
            mm.stats.add(MmEvent.TABLE_FREED, z.tablesFreed);
        } finally {
            if (range != null) mm.notifiers.invalidateRangeEnd(range);
        }
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        if (visit == Visit.TABLE_POST) {
            // Empty: unlink, then free (nothing walks this table without the PTL, which we hold).
            if (ctx.freeChildIfEmpty(this)) tablesFreed++;
            return Status.OK;
        }
        long pte = ctx.old();
        if (pte == 0) return Status.OK;
        long base = ctx.entryBase();
        long span = ctx.entrySpan();
        if (base < ctx.start() || base + span > ctx.end()) {
            if (!Pte.isValid(pte) || ctx.level() == Granule.LAST_LEVEL) {
                throw new IllegalStateException("zap of part of " + HostPte.describe(mm.geometry, pte) + " at 0x" + Long.toHexString(base));
            }
            Folio f = mm.table.splitBlock(ctx); // the walk descends into the new table
            if (f.isHugetlb()) throw new IllegalStateException("zap split the hugetlb block at 0x" + Long.toHexString(base));
            mm.stats.add(MmEvent.THP_SPLIT);
            return Status.OK;
        }
        if (Pte.isValid(pte)) {
            Folio f = mm.memory.folioOf(mm.geometry.outputAddress(pte));
            if (HostPte.isDirty(pte)) f.markDirty();
            mm.table.set(ctx, 0);
            dropMapping(f, span);
        } else if (HostPte.isDeviceExclusive(pte)) {
            Folio f = mm.memory.folioOf(HostPte.swapOffset(pte) << mm.pageShift);
            mm.table.set(ctx, 0);
            dropMapping(f, span);
        } else if (HostPte.isSwap(pte)) {
            mm.table.set(ctx, 0);
            mm.host.swap().free(HostPte.swapOffset(pte));
        } else {
            throw new IllegalStateException("zap met " + HostPte.describe(mm.geometry, pte) + " at 0x" + Long.toHexString(base));
        }
        return Status.OK;
    }

    /** The flush for a table entry unlinked on the way up, at the entry's own level. */
    @Override
    public void afterUnlink(long entryBase, int level) {
        mm.table.flushVa(entryBase, level);
    }

    private void dropMapping(Folio f, long span) {
        long n = span >>> mm.pageShift;
        f.decMapcount();
        f.put();
        mm.rss.addAndGet(-n);
        pages += n;
    }
}
