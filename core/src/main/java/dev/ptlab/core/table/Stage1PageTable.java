package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.arch.Stage1Descriptor;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * A guest's EL1&amp;0 stage-1 table (one TTBRn_EL1 half), built by the common walker.
 *
 * <p><b>Guest memory.</b> The table's frames come from {@code guestTables}, a window of
 * physical memory the guest uses for its page tables; its descriptors (and its TTBR) hold the
 * frames' addresses as IPAs. ptlab's convention is that this window is <em>identity-mapped at
 * stage 2</em> (IPA = PA, a memslot for the guest's page tables): the software walker then
 * reads the frames the descriptors name, and the hardware walk ({@code NestedMmu}) reaches the
 * same frames only through stage 2, each table IPA translated before its read. Mapping the
 * window at stage 2 is the caller's job ({@link #tableWindowBase()}, {@link #tableWindowSize()}):
 * leave a page of it unmapped and the hardware walk takes a stage-2 fault with S1PTW.
 *
 * <p>A TTBR1_EL1 table covers the top of the VA space; it is built with table-relative input
 * addresses {@code va - (2^64 - 2^vaBits)} (the bits the walk indexes with).
 *
 * <p>Rules, as the guest kernel keeps them: map never replaces a live mapping (other than in
 * software bits) and never splits; unmap removes whole leaves up to the first hole, frees empty
 * tables, and issues the guest's TLBI per leaf: DSB ISHST; TLBI VAE1IS (VA, ASID, TTL = leaf
 * level; no hint for a table); DSB ISH (Linux 7.1-rc4 {@code __flush_tlb_range} for one page,
 * {@code __tlbi_level}). Executed by the guest at EL1 with the VM's VMID loaded, so its reach is
 * that VMID.
 */
public final class Stage1PageTable extends PageTable {
    private final TlbSystem tlbs;
    private final int vmid;
    private final int asid;

    /**
     * @param guestTables the guest's page-table memory (identity-mapped at stage 2 by the caller)
     * @param tlbs the system whose TLBs the guest's TLBIs reach
     * @param vmid the VM's VMID (the context the guest's TLBIs run in)
     * @param asid the ASID of this table's address space (TTBRn_EL1.ASID; tags its non-global entries)
     */
    public Stage1PageTable(Geometry geometry, PhysicalMemory guestTables, TlbSystem tlbs, int vmid, int asid) {
        super(requireStage(geometry, Stage.GUEST_S1, "guest stage-1"), guestTables, requireTlbs(tlbs));
        if (vmid < 0 || vmid > 0xFFFF) throw PageTableException.invalidArgument("vmid", (Object) vmid, "is outside 0..65535");
        if (asid < 0 || asid > 0xFFFF) throw PageTableException.invalidArgument("asid", (Object) asid, "is outside 0..65535");
        this.tlbs = tlbs;
        this.vmid = vmid;
        this.asid = asid;
    }

    private static TlbMaintenance requireTlbs(TlbSystem tlbs) {
        if (tlbs == null) throw PageTableException.invalidArgument("tlbs", null, "is null");
        return tlbs;
    }

    public int vmid() { return vmid; }
    public int asid() { return asid; }
    /** First IPA (= PA) of the guest page-table window stage 2 must map for the walk. */
    public long tableWindowBase() { return memory.base(); }
    public long tableWindowSize() { return memory.size(); }

    /** TTBRn_EL1: ASID [63:48], BADDR = the root table's IPA. */
    public long ttbr() {
        checkLive();
        return (long) asid << 48 | rootPa;
    }

    @Override
    protected boolean counted(long pte) {
        return Pte.isValid(pte);
    }

    /**
     * Maps {@code [va, va + size)} to IPAs {@code [ipa, ipa + size)} with the largest leaves that
     * fit. EL0 gets the same read/write access if {@code el0}; {@code global} leaves nG clear.
     *
     * @throws PageTableException EEXIST (nothing changed) if a live mapping in the range differs
     *     other than in software bits or would need splitting; ENOMEM when guest table memory runs out
     */
    public void map(long va, long size, long ipa, Prot prot, boolean el0, boolean global) {
        checkUsable("map");
        checkAligned("va", va);
        checkSize(size);
        checkPa(ipa, size);
        long attr = Stage1Descriptor.attributes(prot, el0, global, geometry.oaFormat());
        MapVisitor v = new MapVisitor(ipa, attr);
        mmuLock.writeLock();
        try {
            // The first pass only checks, so a conflict anywhere leaves the table as it was.
            walk(va, size, v, WalkFlags.LEAF, WalkPolicy.RANGE);
            v.checkOnly = false;
            walk(va, size, v, WalkFlags.LEAF, WalkPolicy.RANGE);
        } finally {
            mmuLock.writeUnlock();
            counters.leavesInstalled.add(v.leaves);
            counters.tablesInstalled.add(v.tables);
        }
    }

    private final class MapVisitor implements Visitor {
        private final long ipaBase;
        private final long attr;
        boolean checkOnly = true;
        long leaves, tables;

        MapVisitor(long ipaBase, long attr) {
            this.ipaBase = ipaBase;
            this.attr = attr;
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            int level = ctx.level();
            long out = ipaBase + (ctx.addr() - ctx.start());
            long current = ctx.old();
            boolean live = Pte.isValid(current);
            if (!geometry.leafAllowed(level) || !leafFitsAt(ctx.addr(), out, ctx.entrySpan(), ctx.end())) {
                if (live) throw exists(ctx, "a block would need splitting");
                if (level == Granule.LAST_LEVEL) throw new PageTableException(Errno.EINVAL, ctx.addr(), level, "no leaf fits at the last level");
                if (!checkOnly) {
                    ctx.getRef();
                    // Release: a walker that sees the table descriptor sees the zeroed table.
                    ctx.publish(Stage1Descriptor.table(geometry, memory.allocate()));
                    tables++;
                }
                return Status.OK;
            }
            long want = Stage1Descriptor.leaf(geometry, out, attr, level);
            if (live) {
                if (((current ^ want) & ~Pte.SW_BITS) != 0) throw exists(ctx, "0x" + Long.toHexString(current) + " is mapped");
                if (!checkOnly && current != want) ctx.trySet(want);
            } else if (!checkOnly) {
                ctx.getRef();
                ctx.publish(want);
                leaves++;
            }
            return Status.OK;
        }

        private PageTableException exists(VisitContext ctx, String why) {
            return new PageTableException(Errno.EEXIST, ctx.addr(), ctx.level(), "guest stage-1 map: " + why);
        }
    }

    /**
     * Unmaps from {@code va} until {@code size} bytes are gone, the first hole, or the first block
     * reaching outside the range; frees empty tables. Each removed leaf is invalidated with
     * VAE1IS (its level as TTL) before its reference is dropped.
     *
     * @return bytes unmapped
     */
    public long unmap(long va, long size) {
        return new HoleStoppingUnmap() {
            @Override
            void invalidate(long addr, int level) {
                tlbs.flushGuestVa(vmid, asid, addr, level);
            }
        }.unmap(this, va, size);
    }
}
