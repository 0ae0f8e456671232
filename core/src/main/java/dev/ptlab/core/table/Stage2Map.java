package dev.ptlab.core.table;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.CacheMaintenanceBatch;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.LeafRunVisitor;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Walk;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.Walker;

/**
 * Stage-2 map ({@link Stage2PageTable#map}) and its coalescing: one walk that places the largest
 * leaves that fit, installs tables where none fits, and replaces a table by a block when a block
 * fits its whole span ({@link CoalescePolicy} chooses the order). Also builds the subtrees of
 * create-unlinked and split ({@link Stage2Split}), which are maps into a detached table.
 *
 * <p>Locking: as the walk's flags say (read lock and compare-and-swap for SHARED, else the write
 * lock), taken by {@link PageTable#walk}. Counts are kept locally and added once
 * ({@link #flushCounts}).
 */
final class Stage2Map extends Stage2Installer implements LeafRunVisitor {
    final long basePa;
    final long attr;
    /**
     * Whether the leaf for PA {@code p + k * span} is the leaf for {@code p} plus {@code k *
     * span}, so a run can be filled by {@link VisitContext#fillRun}: true for the 48-bit
     * output format, whose address field is the PA's own bits (map checked that the PAs stay
     * below 2^48). The 52-bit formats move high PA bits elsewhere; those runs go entry by entry.
     */
    final boolean linearLeaves;
    final CoalescePolicy policy;
    final CacheMaintenanceBatch cmo;
    long coalesced, invalidSteps;
    /** The walk flags a caller may give map: the fault path's, and skipping cache maintenance. */
    static final int MAP_FLAGS = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT | WalkFlags.SKIP_CMO;

    Stage2Map(Stage2PageTable table, long basePa, long attr, MemCache cache, boolean forcePte) {
        super(table, cache, forcePte);
        this.basePa = basePa;
        this.attr = attr;
        this.linearLeaves = table.geometry.oaFormat() == OutputAddressFormat.PA48;
        this.policy = table.coalescePolicy();
        this.cmo = new CacheMaintenanceBatch(table.cmo);
    }

    /** {@link Stage2PageTable#map(long, long, long, Prot, MemCache, int)}: checks, then one walk. */
    static Status map(Stage2PageTable t, long ipa, long size, long pa, Prot prot, MemCache cache, int flags) {
        t.checkUsable("map");
        WalkFlags.check(flags, MAP_FLAGS, "map");
        t.checkCache(cache);
        if (prot == null) throw PageTableException.invalidArgument("prot", "null", "is required");
        t.checkAligned("ipa", ipa);
        t.checkSize(size);
        t.checkPa(pa, size);
        if ((t.tableFlags() & Stage2PageTable.IDMAP) != 0 && ipa != pa) {
            throw PageTableException.invalidArgument("pa", pa, "differs from ipa 0x" + Long.toHexString(ipa)
                    + " in an identity-mapped table");
        }
        long attr = t.leafAttributes(prot); // EINVAL naming prot (memory type, FEAT_XNX)
        ForcePteCallback cb = t.forcePteCallback;
        boolean forcePte = cb != null && cb.forcePages(ipa, ipa + size, prot);
        Stage2Map v = new Stage2Map(t, pa, attr, cache, forcePte);
        try {
            return t.walk(Walk.range(ipa, size).flags(flags | WalkFlags.TABLE_PRE | WalkFlags.LEAF), v);
        } finally {
            v.flushCounts();
        }
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        if (visit == Visit.TABLE_PRE) {
            return coalesce(ctx);
        }
        Status s = tryLeaf(ctx);
        if (s != Status.NO_FIT) {
            if (s == Status.RACED) raced++;
            return s;
        }
        return installTable(ctx);
    }

    /** The output address for input address {@code addr} of this walk. */
    private long oa(long addr, long start) {
        return basePa + (addr - start);
    }

    private boolean leafFits(VisitContext ctx) {
        long addr = ctx.addr();
        return leafLevel(ctx.level()) && PageTable.leafFitsAt(addr, oa(addr, ctx.start()), ctx.entrySpan(), ctx.end());
    }

    private long leafFor(VisitContext ctx, int level) {
        return Stage2Descriptor.leaf(table.geometry, oa(ctx.addr(), ctx.start()), attr, level);
    }

    /** Installs the leaf for this entry if one fits here; NO_FIT otherwise. */
    private Status tryLeaf(VisitContext ctx) {
        if (!leafFits(ctx)) return Status.NO_FIT;
        long pte = leafFor(ctx, ctx.level());
        long old = ctx.old();
        if (Pte.isValid(old) && ((old ^ pte) & ~Stage2Descriptor.PERMS) == 0) {
            // Identical, or a permission-only difference: not map's business (relaxPerms'),
            // and doing BBM here would make every vCPU faulting on one block re-break it.
            return Status.RACED;
        }
        if (!ctx.shared() && Pte.isValid(old) && ((old ^ pte) & ~Pte.SW_BITS) == 0) {
            // Only software bits differ: hardware ignores them, so no BBM and no TLBI.
            ctx.trySet(pte);
            return Status.OK;
        }
        if (!breakForMap(ctx)) return Status.RACED;
        installLeaf(ctx, pte, old);
        return Status.OK;
    }

    /**
     * The make half for a leaf, after the entry was broken (or needed no break): CMO, then
     * publish. If the cache maintenance throws, {@code restore} is made instead (the entry as it
     * was before the break, its subtree untouched; or 0 where that is gone) and the exception
     * rethrown, so a failed map never leaves a LOCKED entry or a wrong count.
     */
    private void installLeaf(VisitContext ctx, long pte, long restore) {
        boolean inWindow = validBroken;
        validBroken = false;
        if (needsCmo(ctx, pte)) {
            try {
                issueCmo(ctx, pte, inWindow);
            } catch (Throwable e) {
                table.make(ctx, restore);
                throw e;
            }
        }
        table.make(ctx, pte);
        leaves++;
    }

    /** Whether installing {@code pte} needs cache maintenance in this walk. */
    private boolean needsCmo(VisitContext ctx, long pte) {
        return (ctx.flags() & WalkFlags.SKIP_CMO) == 0
                && ((!table.fwb() && Stage2Descriptor.isCacheable(pte, false)) || Stage2Descriptor.isExecutable(pte));
    }

    /**
     * Cache maintenance of the new target, between the break's TLBI and the install: D-cache
     * clean+invalidate when the mapping is cacheable and FWB is off (the guest may access it
     * with caches off), I-cache invalidate when it is executable. {@code inWindow}: a valid
     * entry was broken for this install, so the guest waits for this maintenance.
     */
    private void issueCmo(VisitContext ctx, long pte, boolean inWindow) {
        long span = ctx.entrySpan();
        Geometry g = table.geometry;
        if (!table.fwb() && Stage2Descriptor.isCacheable(pte, false)) cmo.dcacheCleanInvalPoc(g.outputAddress(pte), span, inWindow);
        if (Stage2Descriptor.isExecutable(pte)) cmo.icacheInvalPou(g.outputAddress(pte), span, inWindow);
    }

    /**
     * Run of leaves (exclusive walks): takes the plain case only, an empty entry where a leaf
     * fits. For it {@link #tryLeaf} finds nothing to compare or break ({@link #breakForMap}
     * on an exclusive, all-zero entry does nothing) and goes straight to
     * {@link #installLeaf}; the walker sees a leaf and moves on. Anything else is left to
     * {@link #visit}.
     */
    @Override
    public void visitLeafRun(VisitContext ctx) {
        // leafFits and the leaf, with what is the same for the whole run read once.
        int level = ctx.level();
        if (!leafLevel(level)) return;
        long span = ctx.entrySpan();
        long start = ctx.start();
        long end = ctx.end();
        do {
            long addr = ctx.addr();
            if (ctx.old() != 0 || !PageTable.leafFitsAt(addr, oa(addr, start), span, end)) return;
            long pte = Stage2Descriptor.leaf(table.geometry, oa(addr, start), attr, level);
            // Bulk fill only when no cache maintenance is due: it must precede each install.
            int n = linearLeaves && !needsCmo(ctx, pte)
                    ? ctx.fillRun(pte, span, (int) Math.min((end - addr) / span, Integer.MAX_VALUE)) : 0;
            if (n > 0) {
                // fillRun did the make of each (reference, release store); no CMO was due.
                leaves += n;
            } else {
                installLeaf(ctx, pte, 0);
            }
        } while (ctx.nextInRun());
    }

    /** TABLE_PRE: replace the whole table by one block when a block fits its span. */
    private Status coalesce(VisitContext ctx) {
        if (!leafFits(ctx)) return Status.OK;
        long child = ctx.childTable();
        long base = ctx.entryBase();
        int level = ctx.level();
        if (policy == CoalescePolicy.UNMAP_FIRST) {
            return ctx.shared() ? coalesceUnmapFirstShared(ctx, child, base, level)
                    : coalesceUnmapFirst(ctx, child, base, level);
        }
        Status s = tryLeaf(ctx);
        if (s == Status.OK) {
            // Install-first order: the block is live before the old subtree is torn down. The
            // subtree is unreachable now (entry replaced, its span invalidated by the break),
            // so the hook may free it at once (exclusive) or after a grace period (shared).
            coalesced++;
            table.freeUnlinkedHook.free(table, new UnlinkedTable(table, child, level, base));
        } else if (s == Status.RACED) {
            raced++;
        }
        return s == Status.NO_FIT ? Status.OK : s;
    }

    /**
     * The original order (exclusive walks only): invalidate the table entry, invalidate the
     * whole VMID, free the old subtree, then install the block. Every entry the teardown
     * visits is a walker step during which the span is unmapped.
     */
    private Status coalesceUnmapFirst(VisitContext ctx, long child, long base, int level) {
        long pte = leafFor(ctx, level);
        long old = ctx.old();
        ctx.trySet(Pte.LOCKED);
        if ((ctx.flags() & WalkFlags.SKIP_BBM_TLBI) == 0) {
            try {
                table.tlbi.flushVmid(table.vmid());
            } catch (Throwable e) {
                ctx.publish(old); // as breakEntry: a failed TLBI leaves the table as it was
                throw e;
            }
        }
        ctx.putRef();
        bbm++;
        validBroken = true;
        invalidSteps += table.freeSubtree(child, level, base);
        installLeaf(ctx, pte, 0);
        coalesced++;
        return Status.OK;
    }

    /**
     * The original order in a shared walk (for comparisons: the kernel never combined the two).
     * The entry is broken (CAS to LOCKED, span or VMID TLBI) and the old subtree is walked
     * inside the invalid window, as the legacy teardown walked it; but its frames may only be
     * freed after a grace period, so the walk counts and the free is handed to the hook.
     */
    private Status coalesceUnmapFirstShared(VisitContext ctx, long child, long base, int level) {
        long pte = leafFor(ctx, level);
        long old = ctx.old();
        if (!table.breakEntry(ctx)) {
            raced++;
            return Status.RACED;
        }
        bbm++;
        validBroken = true;
        long[] steps = {0};
        Walker.walkSubtree(table.geometry, table.memory, child, level + 1, base, WalkFlags.LEAF | WalkFlags.TABLE_POST,
                (c, v) -> {
                    steps[0]++;
                    return Status.OK;
                });
        invalidSteps += steps[0];
        installLeaf(ctx, pte, old); // the subtree is intact until the hook frees it
        coalesced++;
        table.freeUnlinkedHook.free(table, new UnlinkedTable(table, child, level, base));
        return Status.OK;
    }

    @Override
    void flushCounts() {
        super.flushCounts();
        table.counters.coalesced.add(coalesced);
        table.counters.invalidWindowSteps.add(invalidSteps);
        cmo.flush();
    }
}
