package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * The hypervisor's own EL2 stage-1 table. Simpler rules than stage-2: map never replaces a live
 * mapping (only software bits may change; a conflict stops the walk with EINVAL, as the kernel's
 * {@code hyp_map_walker}), unmap stops at the first hole and never splits a block, and tables come
 * straight from physical memory (no memory cache). Counted entries are the valid ones.
 */
public final class HypPageTable extends PageTable {

    public HypPageTable(Geometry geometry, PhysicalMemory memory, TlbMaintenance tlbi) {
        super(requireStage(geometry, Stage.HYP, "hyp"), memory, tlbi);
    }

    @Override
    protected boolean counted(long pte) {
        return Pte.isCountedHyp(pte);
    }

    /**
     * The hyp table has exclusive walks only (the kernel's hyp code rejects SHARED with -EPERM):
     * nothing at EL2 walks it concurrently in software.
     */
    @Override
    protected void checkWalkFlags(int flags) {
        if ((flags & WalkFlags.SHARED) != 0) {
            throw new PageTableException(Errno.EPERM, PageTableException.NO_ADDRESS, PageTableException.NO_LEVEL,
                    "the hyp table allows exclusive walks only; flags " + WalkFlags.toString(flags) + " include SHARED");
        }
    }

    @Override
    protected boolean sharedWalksAllowed() {
        return false;
    }

    public long tcr(boolean hardwareAf) {
        return Registers.tcrEl2(geometry, hardwareAf);
    }

    public long ttbr0() {
        checkLive();
        return Registers.ttbr0El2(geometry, rootPa);
    }

    /**
     * Maps {@code [va, va + size)} to {@code [pa, pa + size)} with the largest leaves that fit,
     * in address order as the kernel's {@code kvm_pgtable_hyp_map} (Linux 7.1-rc4): there is no
     * check of the whole range first, so when it stops at a conflict the mappings it made before
     * that point stay. A live entry that only differs in software bits is updated in place.
     *
     * <p>Deliberate difference: where a live block would need a table under it (a smaller or
     * different mapping inside it), the kernel stores a new table over the live leaf without
     * break-before-make; ptlab refuses with EINVAL instead and leaves the block as it is.
     *
     * @throws PageTableException EINVAL if a live page would change (other than in software
     *     bits; the kernel WARNs and returns -EINVAL) or a live block would need a table under
     *     it; ENOMEM if physical memory runs out. Either way the mappings made before that point
     *     stay and the table is consistent
     */
    public void map(long va, long size, long pa, Prot prot) {
        checkUsable("map");
        if (prot == null) throw PageTableException.invalidArgument("prot", "null", "is required");
        checkAligned("va", va);
        checkSize(size);
        checkPa(pa, size);
        long attr = HypDescriptor.attributes(prot, geometry.oaFormat());
        HypMapVisitor v = new HypMapVisitor(pa, attr);
        try {
            walk(va, size, v, WalkFlags.LEAF, WalkPolicy.RANGE);
        } finally {
            counters.leavesInstalled.add(v.leaves);
            counters.tablesInstalled.add(v.tables);
        }
    }

    final class HypMapVisitor implements Visitor {
        final long basePa;
        final long attr;
        long leaves, tables;

        HypMapVisitor(long basePa, long attr) {
            this.basePa = basePa;
            this.attr = attr;
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            int level = ctx.level();
            long addr = ctx.addr();
            long span = ctx.entrySpan();
            long phys = basePa + (addr - ctx.start());
            long old = ctx.old();
            boolean fits = geometry.leafAllowed(level) && leafFitsAt(addr, phys, span, ctx.end());
            if (fits) {
                long pte = HypDescriptor.leaf(geometry, phys, attr, level);
                if (!Pte.isValid(old)) {
                    ctx.getRef();
                    ctx.publish(pte);
                    leaves++;
                    return Status.OK;
                }
                if (((old ^ pte) & ~Pte.SW_BITS) == 0) {
                    // Identical, or only software bits differ (ignored by hardware): no TLBI.
                    if (old != pte) ctx.trySet(pte);
                    return Status.OK;
                }
                // Otherwise the kernel WARNs and treats the leaf as not fitting: below.
                if (level == Granule.LAST_LEVEL) throw livePage(ctx, pte);
                throw liveBlock(ctx);
            }
            if (Pte.isValid(old)) throw liveBlock(ctx); // a smaller mapping inside a live block
            if (level == Granule.LAST_LEVEL) {
                throw new PageTableException(Errno.EINVAL, addr, level, "no leaf fits at the last level");
            }
            long child = memory.allocate();
            ctx.getRef();
            // Release: the zeroed child is visible to any walker that sees the table entry.
            ctx.publish(HypDescriptor.table(geometry, child));
            tables++;
            return Status.OK;
        }

        /** The kernel's WARN + -EINVAL at the last level (hyp_map_walker). */
        private PageTableException livePage(VisitContext ctx, long wanted) {
            return new PageTableException(Errno.EINVAL, ctx.addr(), ctx.level(), "hyp map would replace the live page 0x"
                    + Long.toHexString(ctx.old()) + " with 0x" + Long.toHexString(wanted)
                    + "; hyp map never replaces live mappings (mappings before this address were made)");
        }

        /** Where the kernel would store a table over the live block; ptlab refuses. */
        private PageTableException liveBlock(VisitContext ctx) {
            return new PageTableException(Errno.EINVAL, ctx.addr(), ctx.level(), "hyp map would need a table under the live"
                    + " block 0x" + Long.toHexString(ctx.old()) + "; the kernel's hyp_map_walker stores one over the live"
                    + " leaf without break-before-make, ptlab refuses (mappings before this address were made)");
        }
    }

    /**
     * Unmaps from {@code va} until {@code size} bytes are gone, the first hole, or the first block
     * that extends past the range (never split). Empty tables are freed.
     *
     * @return bytes unmapped
     */
    public long unmap(long va, long size) {
        return new HoleStoppingUnmap() {
            @Override
            void invalidate(long addr, int level) {
                tlbi.flushHypVa(addr, level);
            }
        }.unmap(this, va, size);
    }
}
