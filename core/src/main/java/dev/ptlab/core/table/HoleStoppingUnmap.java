package dev.ptlab.core.table;

import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * The unmap of the stage-1 format tables (the hypervisor's, as {@code kvm_pgtable_hyp_unmap} in
 * Linux 7.1-rc4, and a guest's): from the start until the size is gone, the first hole, or the
 * first block reaching outside the range (never split), freeing tables that become empty. Each
 * removed leaf is invalidated, by {@link #invalidate}, before its reference is dropped; a table
 * unlinked on the way up is invalidated with no level hint, which reaches its walk-cache entries.
 * Only the TLBI differs between the tables that use it. Exclusive walk, under the table's lock.
 */
abstract class HoleStoppingUnmap implements Visitor, VisitContext.UnlinkFlush {
    long bytes, leaves, tables;

    /** The TLBI for a leaf or table of {@code level} (or {@link TlbMaintenance#LEVEL_UNKNOWN}) at {@code va}. */
    abstract void invalidate(long va, int level);

    /** Walks {@code [va, va + size)} of {@code table} with this visitor; returns the bytes unmapped. */
    final long unmap(PageTable table, long va, long size) {
        table.checkUsable("unmap");
        table.checkRange("va", va, size);
        try {
            table.walk(va, size, this, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.STOP_AT_HOLE);
        } finally {
            table.counters.leavesRemoved.add(leaves);
            table.counters.tablesFreed.add(tables);
        }
        return bytes;
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        if (visit == Visit.TABLE_POST) {
            if (ctx.freeChildIfEmpty(this)) tables++;
            return Status.OK;
        }
        long old = ctx.old();
        if (!Pte.isValid(old)) return Status.NOT_MAPPED;
        long span = ctx.entrySpan();
        long base = ctx.entryBase();
        if (base < ctx.start() || base + span > ctx.end()) return Status.NOT_MAPPED;
        ctx.trySet(0);
        try {
            invalidate(base, ctx.level());
        } catch (Throwable e) {
            ctx.publish(old); // a failed TLBI leaves the leaf mapped, its reference held
            throw e;
        }
        ctx.putRef();
        bytes += span;
        leaves++;
        return Status.OK;
    }

    @Override
    public void afterUnlink(long entryBase, int level) {
        invalidate(entryBase, TlbMaintenance.LEVEL_UNKNOWN);
    }
}
