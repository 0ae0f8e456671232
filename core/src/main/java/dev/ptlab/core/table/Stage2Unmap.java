package dev.ptlab.core.table;

import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.CacheMaintenanceBatch;
import dev.ptlab.core.walk.LeafRunVisitor;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Walk;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * Stage-2 unmap ({@link Stage2PageTable#unmap}): every mapping and annotation in the range is
 * cleared, blocks overlapping it whole, and tables that empty are freed on the way up. Each leaf
 * is invalidated by IPA (or, with FWB and RANGE_TLBI, by one range TLBI after the walk), and
 * cacheable leaves get D-cache maintenance after their TLBI when FWB is off.
 *
 * <p>Locking: the write lock, held across the walk and the deferred range TLBI (which must
 * complete before a fault can map the range again).
 */
final class Stage2Unmap implements LeafRunVisitor, VisitContext.UnlinkFlush {
    private final Stage2PageTable table;
    private final boolean deferTlbi;
    private final CacheMaintenanceBatch cmo;
    long leaves, tables;

    private Stage2Unmap(Stage2PageTable table, boolean deferTlbi) {
        this.table = table;
        this.deferTlbi = deferTlbi;
        this.cmo = new CacheMaintenanceBatch(table.cmo);
    }

    static void unmap(Stage2PageTable t, long ipa, long size) {
        t.checkUsable("unmap");
        t.checkRange("ipa", ipa, size);
        boolean defer = t.fwb() && (t.tableFlags() & Stage2PageTable.RANGE_TLBI) != 0;
        Stage2Unmap v = new Stage2Unmap(t, defer);
        t.mmuLock.writeLock();
        try {
            try {
                t.walk(Walk.range(ipa, size).flags(WalkFlags.LEAF | WalkFlags.TABLE_POST).policy(WalkPolicy.RANGE), v);
            } finally {
                t.counters.leavesRemoved.add(v.leaves);
                t.counters.tablesFreed.add(v.tables);
                v.cmo.flush();
                // As kvm_pgtable_stage2_unmap (Linux 7.1-rc4): the deferred flush is issued
                // whatever the walk found or how it ended, chunked as kvm_tlb_flush_vmid_range.
                if (defer) t.flushVmidRange(ipa, size);
            }
        } finally {
            t.mmuLock.writeUnlock();
        }
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        if (visit == Visit.TABLE_POST) {
            if (ctx.freeChildIfEmpty(this)) tables++;
            return Status.OK;
        }
        leaf(ctx);
        return Status.OK;
    }

    /** The TLBI for a table entry unlinked on the way up (its leaves were invalidated one by one). */
    @Override
    public void afterUnlink(long entryBase, int level) {
        table.tlbi.flushVmidIpa(table.vmid(), entryBase, TlbMaintenance.LEVEL_UNKNOWN);
    }

    /**
     * Run of leaves (exclusive walks): every leaf is handled exactly as {@link #visit} does.
     * With the TLBI deferred (which implies FWB, so no D-cache maintenance either), what
     * {@link #leaf} does to a valid leaf is clear it and drop its reference: consecutive
     * valid leaves go through {@link VisitContext#clearRun} in one loop.
     */
    @Override
    public void visitLeafRun(VisitContext ctx) {
        boolean bulk = deferTlbi && table.fwb();
        do {
            if (bulk) {
                int n = ctx.clearRun();
                if (n > 0) {
                    leaves += n;
                    continue;
                }
            }
            leaf(ctx);
        } while (ctx.nextInRun());
    }

    /** LEAF: clears the entry (always ends OK with a zero entry). */
    private void leaf(VisitContext ctx) {
        long old = ctx.old();
        if (!Pte.isValid(old)) {
            if (table.isCounted(old)) {
                ctx.trySet(0);
                ctx.putRef();
            }
            return;
        }
        int level = ctx.level();
        boolean needFlush = !table.fwb() && Stage2Descriptor.isCacheable(old, false);
        ctx.trySet(0);
        if (!deferTlbi) {
            try {
                table.tlbi.flushVmidIpa(table.vmid(), ctx.entryBase(), level);
            } catch (Throwable e) {
                ctx.publish(old); // a failed TLBI leaves the leaf mapped, its reference held
                throw e;
            }
        }
        ctx.putRef();
        if (needFlush) {
            // After the TLBI, so no line can be allocated through the dying mapping.
            cmo.dcacheCleanInvalPoc(table.geometry.outputAddress(old), ctx.entrySpan());
        }
        leaves++;
    }
}
