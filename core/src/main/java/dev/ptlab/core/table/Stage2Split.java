package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.LeafRunVisitor;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Walk;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import dev.ptlab.core.walk.Walker;

/**
 * Stage-2 subtrees built off the table: create-unlinked ({@link Stage2PageTable#createUnlinked},
 * a subtree mapping what one block would) and eager split ({@link Stage2PageTable#split}, every
 * block of a range swapped for such a subtree with break-before-make).
 *
 * <p>Building walks a detached table, which nothing else can reach: no lock, no TLBI, no cache
 * maintenance. Split walks the table exclusively (write lock, taken by {@link PageTable#walk}).
 */
final class Stage2Split implements LeafRunVisitor {
    private final Stage2PageTable table;
    private final MemCache cache;
    long splits;

    private Stage2Split(Stage2PageTable table, MemCache cache) {
        this.table = table;
        this.cache = cache;
    }

    static UnlinkedTable createUnlinked(Stage2PageTable t, long pa, int level, Prot prot, MemCache cache, boolean forcePte) {
        t.checkLive();
        if (prot == null) throw PageTableException.invalidArgument("prot", "null", "is required");
        t.checkCache(cache);
        checkUnlinkedLevel(t, level);
        long span = t.geometry.granule().levelSize(level);
        if ((pa & (span - 1)) != 0) {
            throw PageTableException.invalidArgument("pa", pa, "is not aligned to the level-" + level + " span 0x"
                    + Long.toHexString(span));
        }
        t.checkPa(pa, span);
        long attr = t.leafAttributes(prot);
        return buildUnlinked(t, pa, level, attr, cache, forcePte, 0);
    }

    private static void checkUnlinkedLevel(Stage2PageTable t, int level) {
        int startLevel = t.geometry.startLevel();
        if (level < startLevel || level >= Granule.LAST_LEVEL) {
            throw PageTableException.invalidArgument("level", (Object) level, "is outside " + startLevel + ".."
                    + (Granule.LAST_LEVEL - 1) + " (the level of the entry the subtree hangs under)");
        }
    }

    /**
     * Builds the subtree for a level-{@code level} block at {@code pa} with leaf attributes
     * {@code attr}: a map into a fresh, detached table. On failure the partial subtree is freed
     * and the error rethrown.
     */
    private static UnlinkedTable buildUnlinked(Stage2PageTable t, long pa, int level, long attr, MemCache cache,
                                               boolean forcePte, long base) {
        long root = PageTable.allocateTable(cache, base, level);
        Stage2Map v = new Stage2Map(t, pa, attr, cache, forcePte);
        try {
            Walker.walkSubtree(t.geometry, t.memory, root, level + 1, base,
                    WalkFlags.LEAF | WalkFlags.SKIP_BBM_TLBI | WalkFlags.SKIP_CMO, v);
        } catch (RuntimeException e) {
            t.freeSubtree(root, level, base);
            throw e;
        } finally {
            // The subtree's own root counts too: freeSubtree counts it as freed.
            t.counters.tablesInstalled.add(v.tables + 1);
        }
        return new UnlinkedTable(t, root, level, base);
    }

    /** Frames a full split of one level-{@code level} block to pages needs (513 for a 4K L1 block). */
    static int framesForFullSplit(Stage2PageTable t, int level) {
        int startLevel = t.geometry.startLevel();
        if (level < startLevel || level > Granule.LAST_LEVEL) {
            throw PageTableException.invalidArgument("level", (Object) level, "is outside " + startLevel + ".."
                    + Granule.LAST_LEVEL + " (the levels of this table)");
        }
        return framesBelow(t, level);
    }

    private static int framesBelow(Stage2PageTable t, int level) {
        if (level >= Granule.LAST_LEVEL) return 0;
        return 1 + (level + 1 >= Granule.LAST_LEVEL ? 0
                : t.geometry.granule().entriesPerTable() * framesBelow(t, level + 1));
    }

    static void split(Stage2PageTable t, long ipa, long size, MemCache cache) {
        t.checkUsable("split");
        t.checkRange("ipa", ipa, size);
        if (cache == null) throw PageTableException.invalidArgument("cache", "null", "is required");
        t.checkCache(cache);
        Stage2Split v = new Stage2Split(t, cache);
        try {
            t.walk(Walk.range(ipa, size).flags(WalkFlags.LEAF).policy(WalkPolicy.RANGE), v);
        } finally {
            t.counters.splits.add(v.splits);
            t.counters.breakBeforeMake.add(v.splits);
        }
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        long old = ctx.old();
        int level = ctx.level();
        if (level == Granule.LAST_LEVEL || !Pte.isValid(old)) return Status.OK;
        int need = framesForFullSplit(table, level);
        if (cache.size() < 1) {
            throw new PageTableException(Errno.ENOMEM, ctx.entryBase(), level,
                    "splitting a block needs at least one table frame and the memory cache is empty");
        }
        boolean full = cache.size() >= need;
        // As stage2_split_walker (Linux 7.1-rc4): the pages are rebuilt from the block's prot
        // (kvm_pgtable_stage2_pte_prot: R/W, PX/UX, software bits) through the same attribute
        // building as map, so they are Normal memory with AF = 1 whatever the block had (memory
        // type, AF, DBM and contiguous are not carried over). The kernel only eager-splits
        // dirty-logged RAM, which is mapped Normal; and a prot the CPU cannot encode (px != ux
        // without FEAT_XNX) is refused here with EINVAL before anything changes.
        long attr = table.leafAttributes(Stage2Descriptor.prot(old));
        UnlinkedTable sub = buildUnlinked(table, table.geometry.outputAddress(old), level, attr, cache, full, ctx.entryBase());
        boolean broken;
        try {
            broken = table.breakEntry(ctx);
        } catch (Throwable e) {
            table.freeUnlinked(sub); // the break failed and restored the block: the subtree was never linked
            throw e;
        }
        if (!broken) {
            table.freeUnlinked(sub);
            return Status.RACED;
        }
        table.make(ctx, Stage2Descriptor.table(table.geometry, sub.pa));
        splits++;
        return Status.OK;
    }

    /**
     * Pages are already as small as it gets, and {@link #visit} leaves them (and invalid
     * entries) alone: pass a run of them in one step. This is what the walk does in each
     * level-3 table a split has just built and swapped in.
     */
    @Override
    public void visitLeafRun(VisitContext ctx) {
        if (ctx.level() != Granule.LAST_LEVEL) return;
        ctx.skipRun();
    }
}
