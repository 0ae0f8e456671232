package dev.ptlab.core.table;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.core.walk.Walk;
import dev.ptlab.core.walk.WalkFlags;

/**
 * Stage-2 annotations ({@link Stage2PageTable#setOwner}, {@link Stage2PageTable#annotate}):
 * every page of a range becomes one given invalid, counted entry (an owner id, say). Walks down
 * like map, installing tables where a page is not reachable yet, and replaces blocks in the way
 * by tables with break-before-make (the rest of such a block is lost and refaults). Exclusive:
 * the write lock, taken by {@link PageTable#walk}.
 */
final class Stage2Annotate extends Stage2Installer implements Visitor {
    final long annotation;

    private Stage2Annotate(Stage2PageTable table, MemCache cache, long annotation) {
        super(table, cache, true);
        this.annotation = annotation;
    }

    static void setOwner(Stage2PageTable t, long ipa, long size, MemCache cache, int ownerId) {
        if (ownerId < 0 || ownerId > Pte.MAX_OWNER_ID) {
            throw PageTableException.invalidArgument("owner", (Object) ownerId, "is outside 0.." + Pte.MAX_OWNER_ID);
        }
        annotate(t, ipa, size, cache, Pte.ownerAnnotation(ownerId));
    }

    static void annotate(Stage2PageTable t, long ipa, long size, MemCache cache, long annotation) {
        t.checkUsable("annotate");
        t.checkRange("ipa", ipa, size);
        t.checkCache(cache);
        if (Pte.isValid(annotation)) {
            throw PageTableException.invalidArgument("annotation", annotation, "is a valid descriptor (bit 0 set)");
        }
        if ((annotation & Pte.LOCKED) != 0) {
            throw PageTableException.invalidArgument("annotation", annotation, "uses the LOCKED bit 10");
        }
        Stage2Annotate v = new Stage2Annotate(t, cache, annotation);
        try {
            t.walk(Walk.range(ipa, size).flags(WalkFlags.TABLE_PRE | WalkFlags.LEAF), v);
        } finally {
            v.flushCounts();
        }
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        // Tables stay: an annotation is per page, never coalesced into a block.
        if (visit == Visit.TABLE_PRE) return Status.OK;
        if (!leafLevel(ctx.level())) return installTable(ctx);
        if (ctx.old() == annotation) return Status.OK;
        if (!breakForMap(ctx)) {
            raced++;
            return Status.RACED;
        }
        // An invalid entry: no cache maintenance is due for it.
        table.make(ctx, annotation);
        leaves++;
        return Status.OK;
    }
}
