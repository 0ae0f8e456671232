package dev.ptlab.core.table;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.BreakBeforeMake;
import dev.ptlab.core.arch.MemAttr;
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
    /** The last valid leaf visited as it was before this update (lastPte is after it). */
    long before;
    /**
     * relaxPerms' request: if it has execute rights, a leaf that is not Normal write-back memory
     * is refused (EINVAL) before it changes. Null for the other updates.
     */
    Prot refuseExecOn;
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
        Stage2Attrs v = new Stage2Attrs(t, set, clear);
        v.walkRange(addr, size, flags);
        return v;
    }

    /** The walk of {@link #updateLeafAttrs} with this visitor (whose fields may be set first). */
    private void walkRange(long addr, long size, int flags) {
        BreakBeforeMake.checkExemptUpdate(Stage.STAGE2, set, clear);
        try {
            table.walk(Walk.range(addr, size).flags(flags | WalkFlags.LEAF), this);
        } finally {
            flushCounts();
        }
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
        // As kvm_pgtable_stage2_relax_perms (Linux 7.1-rc4): R and W are only ever added, but the
        // XN field is rewritten to exactly the execute rights asked for (stage2_set_xn_attr, which
        // also refuses px != ux without FEAT_XNX), so relaxing an executable leaf with rw makes it
        // non-executable.
        long set = Stage2Descriptor.xnFor(prot, t.xnx());
        long clear = Stage2Descriptor.XN_MASK;
        if (prot.readable()) set |= Stage2Descriptor.S2AP_R;
        if (prot.writable()) set |= Stage2Descriptor.S2AP_W;
        long page = t.geometry.granule().pageSize();
        long addr = ipa & -page;
        t.lockFor(flags);
        try {
            Stage2Attrs v = new Stage2Attrs(t, set, clear);
            // The kernel's caller (user_mem_abort) refuses an exec fault on device or
            // non-cacheable memory with -ENOEXEC before it relaxes; ptlab's operation refuses it
            // itself, so relax cannot make a state map refuses.
            v.refuseExecOn = prot;
            v.walkRange(addr, page, flags);
            if (v.last == Status.OK && (execRights(v.before) & ~execRights(v.lastPte)) != 0) {
                // Deliberate difference: the kernel keeps its local TLBI even when the rewrite took
                // an execute right away (other CPUs then keep a stale, more permissive entry).
                // ptlab never takes a right away under a local-only TLBI: broadcast, by IPA at
                // the leaf's level, as any downgrade of a live entry needs.
                t.tlbi.flushVmidIpa(t.vmid(), addr, v.lastLevel);
            } else {
                // OK, RACED or NOT_MAPPED: the kernel flushes locally on success and on -EAGAIN,
                // which a not-mapped entry gives too; the level is only known after a success.
                t.tlbi.flushVmidIpaLocal(local, t.vmid(), addr,
                        v.last == Status.OK ? v.lastLevel : TlbMaintenance.LEVEL_UNKNOWN);
            }
            return v.last;
        } finally {
            t.unlockFor(flags);
        }
    }

    /** The execute rights of a valid stage-2 leaf, as {@link Prot} bits (PX, UX). */
    private static long execRights(long pte) {
        return Stage2Descriptor.prot(pte).bits() & Prot.X_BITS;
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
        if (refuseExecOn != null && refuseExecOn.anyExec()) checkExecutableMemory(ctx, old);
        lastLevel = ctx.level();
        lastPte = old;
        before = old;
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

    /** EINVAL if {@code old} maps memory that must not be executable (device, non-cacheable). */
    private void checkExecutableMemory(VisitContext ctx, long old) {
        MemAttr type = Stage2Descriptor.memAttr(old, table.fwb());
        if (type != MemAttr.NORMAL_WB) {
            throw PageTableException.invalidArgument("prot", refuseExecOn, "is invalid for the leaf at ipa 0x"
                    + Long.toHexString(ctx.entryBase()) + ": its memory type " + type
                    + " cannot be executable (the entry is unchanged)");
        }
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
