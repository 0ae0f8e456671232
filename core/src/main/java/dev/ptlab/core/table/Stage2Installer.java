package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.VisitContext;

/**
 * What the stage-2 operations that write entries top-down share ({@link Stage2Map} and
 * {@link Stage2Annotate}): a table installed where no leaf fits, the break half of
 * break-before-make for whatever is in the way, the make half, and counts kept in fields and
 * added to the table's {@link TableCounters} once per walk ({@link #flushCounts}).
 */
abstract class Stage2Installer {
    final Stage2PageTable table;
    final MemCache cache;
    /** Whether leaves must be pages (a {@link ForcePteCallback}'s verdict, or annotations). */
    final boolean forcePte;
    long bbm, leaves, tables, raced;
    /**
     * Whether the entry this walk is at holds LOCKED in place of a valid entry it broke: from a
     * successful break of a valid entry until the make of its replacement, the span is
     * unmapped for every vCPU, and cache maintenance issued then lengthens that window
     * ({@link dev.ptlab.core.mem.CacheCounter#BBM_CMO_OPS}). Set by the break, cleared by the
     * make.
     */
    boolean validBroken;

    Stage2Installer(Stage2PageTable table, MemCache cache, boolean forcePte) {
        this.table = table;
        this.cache = cache;
        this.forcePte = forcePte;
    }

    /** The level half of "does a leaf fit here": the level may hold one (and pages are not forced). */
    final boolean leafLevel(int level) {
        if (forcePte && level < Granule.LAST_LEVEL) return false;
        return table.geometry.leafAllowed(level);
    }

    /** LEAF that cannot hold a leaf here: install an empty table and let the walker descend. */
    final Status installTable(VisitContext ctx) {
        int level = ctx.level();
        if (level == Granule.LAST_LEVEL) {
            throw new PageTableException(Errno.EINVAL, ctx.addr(), level, "no leaf fits at the last level");
        }
        long child = PageTable.allocateTable(cache, ctx.addr(), level);
        // A valid block here is being shrunk: the rest of its range is unmapped and refaults later.
        boolean broken;
        try {
            broken = breakForMap(ctx);
        } catch (Throwable e) {
            cache.giveBack(child); // the break failed and restored the entry: the frame was never linked
            throw e;
        }
        if (!broken) {
            cache.giveBack(child);
            raced++;
            return Status.RACED;
        }
        table.make(ctx, Stage2Descriptor.table(table.geometry, child));
        validBroken = false;
        tables++;
        return Status.OK;
    }

    /**
     * Break for map. In an exclusive walk an invalid entry needs no break (no TLB or other
     * walker can hold it), which keeps mapping into empty tables at one store per entry.
     */
    final boolean breakForMap(VisitContext ctx) {
        long old = ctx.old();
        if (!ctx.shared() && !Pte.isValid(old)) {
            // Exclusive and nothing live: no other walker or TLB can hold it, nothing to break.
            if (Pte.isLocked(old)) throw new IllegalStateException("exclusive walk met a LOCKED entry: " + ctx);
            if (table.isCounted(old)) ctx.putRef();
            return true;
        }
        if (!table.breakEntry(ctx)) return false;
        if (Pte.isValid(old)) {
            bbm++;
            validBroken = true;
        }
        return true;
    }

    /** Adds this walk's counts to the table's counters (once, when the walk ends). */
    void flushCounts() {
        TableCounters c = table.counters;
        c.breakBeforeMake.add(bbm);
        c.leavesInstalled.add(leaves);
        c.tablesInstalled.add(tables);
        c.raced.add(raced);
    }
}
