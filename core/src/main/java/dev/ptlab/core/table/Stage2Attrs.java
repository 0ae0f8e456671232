package dev.ptlab.core.table;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.BreakBeforeMake;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Tlb;
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
 * Stage-2 operations on the attributes of live leaves, none of which breaks an entry:
 * {@link Stage2PageTable#wrprotect}, {@link Stage2PageTable#mkyoung},
 * {@link Stage2PageTable#relaxPerms} (all through {@link #updateLeafAttrs}),
 * {@link Stage2PageTable#testClearYoung} and {@link Stage2PageTable#flush}.
 *
 * <p>{@link #updateLeafAttrs} sets and clears permission, AF and software bits only: those
 * changes are break-before-make exempt, so there is no BBM and no TLBI here (callers invalidate
 * where their rule requires). It refuses any other bit before it walks, in every mode. Adding
 * execute rights invalidates the I-cache for the target first.
 *
 * <p>Statuses: an invalid entry is NOT_MAPPED; a LOCKED one, or a lost compare-and-swap in a
 * shared walk, is RACED. The walk's policy (from the flags) decides: range updates go on, fault
 * walks (HANDLE_FAULT) stop. Locking as the flags say: read lock for SHARED, else write lock.
 */
final class Stage2Attrs implements LeafRunVisitor {
    private final Stage2PageTable table;
    final long set;
    final long clear;
    Status last = Status.NOT_MAPPED;
    long lastPte;
    int lastLevel = TlbMaintenance.LEVEL_UNKNOWN;
    long updates;
    private final CacheMaintenanceBatch cmo;

    private Stage2Attrs(Stage2PageTable table, long set, long clear) {
        this.table = table;
        this.set = set;
        this.clear = clear;
        this.cmo = new CacheMaintenanceBatch(table.cmo);
    }

    /**
     * Applies {@code (v & ~clear) | set} to every valid leaf of the range in one walk with
     * {@code flags}.
     *
     * @throws IllegalArgumentException if {@code set} or {@code clear} has a bit that needs
     *     break-before-make (nothing is changed)
     */
    static Stage2Attrs updateLeafAttrs(Stage2PageTable t, long addr, long size, long set, long clear, int flags) {
        BreakBeforeMake.checkExemptUpdate(Stage.STAGE2, set, clear);
        Stage2Attrs v = new Stage2Attrs(t, set, clear);
        try {
            t.walk(Walk.range(addr, size).flags(flags | WalkFlags.LEAF), v);
        } finally {
            v.flushCounts();
        }
        return v;
    }

    static void wrprotect(Stage2PageTable t, long ipa, long size) {
        t.checkUsable("wrprotect");
        t.checkRange("ipa", ipa, size);
        updateLeafAttrs(t, ipa, size, 0, Stage2Descriptor.S2AP_W, 0);
    }

    static Status mkyoung(Stage2PageTable t, long ipa, int flags) {
        t.checkUsable("mkyoung");
        WalkFlags.check(flags, WalkFlags.FAULT, "mkyoung");
        long page = t.geometry.granule().pageSize();
        return updateLeafAttrs(t, ipa & -page, page, Stage2Descriptor.AF, 0, flags).last;
    }

    static Status relaxPerms(Stage2PageTable t, long ipa, Prot prot, int flags, Tlb local) {
        t.checkUsable("relaxPerms");
        WalkFlags.check(flags, WalkFlags.FAULT, "relaxPerms");
        if (prot == null) throw PageTableException.invalidArgument("prot", "null", "is required");
        if ((prot.bits() & ~(Prot.R_BIT | Prot.W_BIT | Prot.X_BITS)) != 0) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for relaxPerms: only r, w and x rights may be given");
        }
        // Only adds rights, as KVM's relax_perms: without execute rights in prot the execute field
        // is left alone. (Removing execute here would need a broadcast TLBI, not the local one.)
        boolean exec = (prot.bits() & Prot.X_BITS) != 0;
        long set = exec ? Stage2Descriptor.xnFor(prot) : 0;
        long clear = exec ? Stage2Descriptor.XN_MASK : 0;
        if (prot.readable()) set |= Stage2Descriptor.S2AP_R;
        if (prot.writable()) set |= Stage2Descriptor.S2AP_W;
        long page = t.geometry.granule().pageSize();
        t.lockFor(flags);
        try {
            Stage2Attrs v = updateLeafAttrs(t, ipa & -page, page, set, clear, flags);
            if (v.last == Status.OK || v.last == Status.RACED) {
                t.tlbi.flushVmidIpaLocal(local, t.vmid(), ipa & -page,
                        v.last == Status.OK ? v.lastLevel : TlbMaintenance.LEVEL_UNKNOWN);
            }
            return v.last;
        } finally {
            t.unlockFor(flags);
        }
    }

    static boolean testClearYoung(Stage2PageTable t, long ipa, long size, boolean mkold) {
        t.checkUsable("testClearYoung");
        t.checkRange("ipa", ipa, size);
        boolean[] young = {false};
        long[] cleared = {0};
        t.walk(ipa, size, (ctx, visit) -> {
            long old = ctx.old();
            if (!Pte.isValid(old) || (old & Stage2Descriptor.AF) == 0) return Status.OK;
            young[0] = true;
            if (mkold && ctx.trySet(old & ~Stage2Descriptor.AF)) cleared[0]++;
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        t.counters.attrUpdates.add(cleared[0]);
        return young[0];
    }

    static void flush(Stage2PageTable t, long ipa, long size) {
        t.checkUsable("flush");
        t.checkRange("ipa", ipa, size);
        if (t.fwb()) return;
        CacheMaintenanceBatch cmo = new CacheMaintenanceBatch(t.cmo);
        t.walk(ipa, size, (ctx, visit) -> {
            long old = ctx.old();
            if (Stage2Descriptor.isCacheable(old, false)) {
                cmo.dcacheCleanInvalPoc(t.geometry.outputAddress(old), ctx.entrySpan());
            }
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        cmo.flush();
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        long old = ctx.old();
        if (!Pte.isValid(old)) {
            last = Pte.isLocked(old) ? Status.RACED : Status.NOT_MAPPED;
            return last;
        }
        lastLevel = ctx.level();
        lastPte = old;
        long next = (old & ~clear) | set;
        if (next != old) {
            if (!Stage2Descriptor.isExecutable(old) && Stage2Descriptor.isExecutable(next)) {
                // New instructions must not come from stale I-cache lines.
                cmo.icacheInvalPou(table.geometry.outputAddress(old), ctx.entrySpan());
            }
            if (!ctx.trySet(next)) {
                last = Status.RACED;
                return last;
            }
            lastPte = next;
            updates++;
        }
        last = Status.OK;
        return Status.OK;
    }

    /** Runs of valid leaves in exclusive walks, when no I-cache maintenance can be due. */
    @Override
    public void visitLeafRun(VisitContext ctx) {
        if ((set & Stage2Descriptor.XN_MASK) != 0 || (clear & Stage2Descriptor.XN_MASK) != 0) return;
        do {
            if (!Pte.isValid(ctx.old())) return;
            int n = ctx.updateRun(set, clear);
            if (n == 0) return;
            updates += ctx.updatedInRun();
            lastLevel = ctx.level();
            lastPte = ctx.old();
            last = Status.OK;
        } while (ctx.nextInRun());
    }

    private void flushCounts() {
        table.counters.attrUpdates.add(updates);
        cmo.flush();
    }
}
