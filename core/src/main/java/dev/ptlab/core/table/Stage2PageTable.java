package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.LeafRunVisitor;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * A guest's stage-2 table (IPA to PA), with the operations KVM performs on it.
 *
 * <p>Every operation is one walk with a small visitor. Valid-to-valid changes of anything but
 * permissions, the access flag or software bits go through break-before-make: the entry is
 * swapped to the LOCKED invalid marker, the TLB is invalidated (by IPA for a leaf, over the
 * table's whole span for a table), the table reference is dropped, cache maintenance for the new
 * target runs, and the new entry is published with a store-release.
 *
 * <p>Reference counts: every table frame's count is 1 + its non-zero entries (LOCKED excepted),
 * so a count of 1 means "empty" and unmap frees tables bottom-up without scanning them.
 */
public final class Stage2PageTable extends PageTable {
    /** Table flag: FEAT_S2FWB in use (Normal-WB encoded as 0b0110; no D-cache maintenance needed). */
    public static final int FWB = 1;
    /** Table flag: identity map only; map requires ipa == pa. */
    public static final int IDMAP = 1 << 1;
    /**
     * Table flag: the CPU has range TLBI (FEAT_TLBIRANGE). With FWB, unmap then defers per-leaf
     * TLBIs to one range invalidation after the walk, and table breaks invalidate only the
     * table's span instead of the whole VMID.
     */
    public static final int RANGE_TLBI = 1 << 2;

    private final int vmid;
    private final int tableFlags;
    private final boolean fwb;
    private final CacheMaintenance cmo;

    public Stage2PageTable(Geometry geometry, PhysicalMemory memory, TlbMaintenance tlbi, int vmid, int tableFlags) {
        super(checkStage(geometry), memory, tlbi);
        if (vmid < 0 || vmid > 0xFFFF) {
            memory.freeContiguous(rootPa, geometry.rootPages());
            throw PageTableException.invalidArgument("vmid", (Object) vmid, "is outside 0..65535");
        }
        if ((tableFlags & ~(FWB | IDMAP | RANGE_TLBI)) != 0) {
            memory.freeContiguous(rootPa, geometry.rootPages());
            throw PageTableException.invalidArgument("tableFlags", (Object) tableFlags, "has unknown bits");
        }
        this.vmid = vmid;
        this.tableFlags = tableFlags;
        this.fwb = (tableFlags & FWB) != 0;
        this.cmo = memory.cacheMaintenance();
    }

    private static Geometry checkStage(Geometry g) {
        if (g != null && g.stage() != Stage.STAGE2) {
            throw new IllegalArgumentException("geometry: " + g + " is not a stage-2 geometry");
        }
        return g;
    }

    public int vmid() { return vmid; }
    public boolean fwb() { return fwb; }
    public int tableFlags() { return tableFlags; }

    @Override
    protected boolean counted(long pte) {
        return Pte.isCountedStage2(pte);
    }

    /** VTCR_EL2 value for this table. */
    public long vtcr(boolean hardwareAf) {
        return Registers.vtcr(geometry, hardwareAf);
    }

    /** VTTBR_EL2 value for this table (VMID and root address). */
    public long vttbr() {
        return Registers.vttbr(geometry, rootPa, vmid);
    }

    // ------------------------------------------------------------------------------------------
    // map

    /**
     * Maps {@code [ipa, ipa + size)} to {@code [pa, pa + size)} with the largest leaves that fit
     * (blocks where both addresses are aligned and the level allows them), replacing existing
     * mappings with break-before-make. An exclusive range walk: raced entries are skipped.
     *
     * @throws PageTableException EINVAL for bad arguments, ERANGE outside the IPA space, ENOMEM
     *     when a table is needed and {@code cache} is empty (the table stays consistent)
     */
    public Status map(long ipa, long size, long pa, Prot prot, MemCache cache) {
        return map(ipa, size, pa, prot, cache, 0);
    }

    /** {@link #map} with extra walk flags (SHARED, HANDLE_FAULT, SKIP_CMO, ...). */
    public Status map(long ipa, long size, long pa, Prot prot, MemCache cache, int flags) {
        checkLive();
        if (prot == null) throw PageTableException.invalidArgument("prot", "null", "is required");
        checkAligned("ipa", ipa);
        checkSize(size);
        checkPa(pa, size);
        if ((tableFlags & IDMAP) != 0 && ipa != pa) {
            throw PageTableException.invalidArgument("pa", pa, "differs from ipa 0x" + Long.toHexString(ipa)
                    + " in an identity-mapped table");
        }
        long attr = Stage2Descriptor.attributes(prot, fwb, geometry.oaFormat());
        MapVisitor v = new MapVisitor(pa, attr, cache, false);
        try {
            return walk(ipa, size, v, flags | WalkFlags.TABLE_PRE | WalkFlags.LEAF, WalkPolicy.forFlags(flags));
        } finally {
            v.flushCounts();
        }
    }

    /** Places leaves for one map call. Counts locally; {@link #flushCounts} adds them once. */
    final class MapVisitor implements LeafRunVisitor {
        final long basePa;
        final long attr;
        final MemCache cache;
        final boolean forcePte;
        /**
         * Whether the leaf for PA {@code p + k * span} is the leaf for {@code p} plus {@code k *
         * span}, so a run can be filled by {@link VisitContext#fillRun}: true for the 48-bit
         * output format, whose address field is the PA's own bits (map checked that the PAs stay
         * below 2^48). The 52-bit formats move high PA bits elsewhere; those runs go entry by entry.
         */
        final boolean linearLeaves;
        long bbm, leaves, tables, raced, dcacheOps, dcacheBytes, icacheOps, icacheBytes;

        MapVisitor(long basePa, long attr, MemCache cache, boolean forcePte) {
            this.basePa = basePa;
            this.attr = attr;
            this.cache = cache;
            this.forcePte = forcePte;
            this.linearLeaves = geometry.oaFormat() == OutputAddressFormat.PA48;
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

        private boolean leafFits(VisitContext ctx) {
            return leafLevel(ctx.level()) && fitsAt(ctx.addr(), ctx.granuleSize(), ctx.start(), ctx.end());
        }

        /** The level half of {@link #leafFits}. */
        private boolean leafLevel(int level) {
            if (forcePte && level < dev.ptlab.core.arch.Granule.LAST_LEVEL) return false;
            return geometry.leafAllowed(level);
        }

        /** The address half of {@link #leafFits}: IPA and PA aligned to the span, and the span inside the range. */
        private boolean fitsAt(long addr, long span, long start, long end) {
            if (((addr | (basePa + (addr - start))) & (span - 1)) != 0) return false;
            return end - addr >= span;
        }

        /** Installs the leaf for this entry if one fits here; NO_FIT otherwise. */
        Status tryLeaf(VisitContext ctx) {
            if (!leafFits(ctx)) return Status.NO_FIT;
            int level = ctx.level();
            long phys = basePa + (ctx.addr() - ctx.start());
            long pte = Stage2Descriptor.leaf(geometry, phys, attr, level);
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
            installLeaf(ctx, pte);
            return Status.OK;
        }

        /** The make half for a leaf, after the entry was broken (or needed no break): CMO, then publish. */
        private void installLeaf(VisitContext ctx, long pte) {
            countCmo(ctx, pte, 1);
            make(ctx, pte);
            leaves++;
        }

        /**
         * What {@link #installLeaf} counts, for {@code n} leaves that {@link VisitContext#fillRun}
         * installed (it did their make: reference and release store). The CMO decisions depend
         * only on attribute bits, which are the same for every leaf of a run.
         */
        private void installedLeaves(VisitContext ctx, long pte, int n) {
            countCmo(ctx, pte, n);
            leaves += n;
        }

        private void countCmo(VisitContext ctx, long pte, int n) {
            if ((ctx.flags() & WalkFlags.SKIP_CMO) == 0) {
                long span = ctx.granuleSize();
                if (!fwb && Stage2Descriptor.isCacheable(pte, false)) {
                    dcacheOps += n;
                    dcacheBytes += span * n;
                }
                if (Stage2Descriptor.isExecutable(pte)) {
                    icacheOps += n;
                    icacheBytes += span * n;
                }
            }
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
            long span = ctx.granuleSize();
            long start = ctx.start();
            long end = ctx.end();
            do {
                long addr = ctx.addr();
                if (ctx.old() != 0 || !fitsAt(addr, span, start, end)) return;
                long pte = Stage2Descriptor.leaf(geometry, basePa + (addr - start), attr, level);
                int n = linearLeaves
                        ? ctx.fillRun(pte, span, (int) Math.min((end - addr) / span, Integer.MAX_VALUE)) : 0;
                if (n > 0) {
                    installedLeaves(ctx, pte, n);
                } else {
                    installLeaf(ctx, pte);
                }
            } while (ctx.nextInRun());
        }

        /** TABLE_PRE: replace the whole table by one block when a block fits its span. */
        private Status coalesce(VisitContext ctx) {
            if (!leafFits(ctx)) return Status.OK;
            long child = ctx.childTable();
            long base = ctx.entryBase();
            int level = ctx.level();
            Status s = tryLeaf(ctx);
            if (s == Status.OK) {
                // Install-first order: the block is live before the old subtree is torn down. The
                // subtree is unreachable now (entry replaced, its span invalidated by the break).
                freeSubtree(child, level, base);
            } else if (s == Status.RACED) {
                raced++;
            }
            return s == Status.NO_FIT ? Status.OK : s;
        }

        /** LEAF that cannot hold a leaf here: install an empty table and let the walker descend. */
        private Status installTable(VisitContext ctx) {
            int level = ctx.level();
            if (level == dev.ptlab.core.arch.Granule.LAST_LEVEL) {
                throw new PageTableException(Errno.EINVAL, ctx.addr(), level, "no leaf fits at the last level");
            }
            if (cache == null) {
                throw new PageTableException(Errno.ENOMEM, ctx.addr(), level, "a table is needed and no memory cache was given");
            }
            long child;
            try {
                child = cache.allocate();
            } catch (PageTableException e) {
                throw new PageTableException(Errno.ENOMEM, ctx.addr(), level, "a table is needed and the memory cache is empty");
            }
            // A valid block here is being shrunk: the rest of its range is unmapped and refaults later.
            if (!breakForMap(ctx)) {
                cache.giveBack(child);
                raced++;
                return Status.RACED;
            }
            make(ctx, Stage2Descriptor.table(geometry, child));
            tables++;
            return Status.OK;
        }

        /**
         * Break for map. In an exclusive walk an invalid entry needs no break (no TLB or other
         * walker can hold it), which keeps mapping into empty tables at one store per entry.
         */
        boolean breakForMap(VisitContext ctx) {
            long old = ctx.old();
            if (!ctx.shared() && !Pte.isValid(old)) {
                // Exclusive and nothing live: no other walker or TLB can hold it, nothing to break.
                if (Pte.isLocked(old)) throw new IllegalStateException("exclusive walk met a LOCKED entry: " + ctx);
                if (counted(old)) ctx.putRef();
                return true;
            }
            if (!Stage2PageTable.this.breakEntry(ctx, vmid)) return false;
            if (Pte.isValid(old)) bbm++;
            return true;
        }

        void flushCounts() {
            counters.breakBeforeMake.add(bbm);
            counters.leavesInstalled.add(leaves);
            counters.tablesInstalled.add(tables);
            counters.raced.add(raced);
            recordCmo(dcacheOps, dcacheBytes, icacheOps, icacheBytes);
        }
    }

    private void recordCmo(long dOps, long dBytes, long iOps, long iBytes) {
        cmo.record(dOps, dBytes, iOps, iBytes);
    }

    /**
     * The break half of break-before-make: swap {@code old} for LOCKED (CAS in a shared walk),
     * invalidate what the old entry may have put in TLBs, and drop its table reference.
     *
     * @return false if another walker owns the entry (LOCKED) or changed it first
     */
    boolean breakEntry(VisitContext ctx, int vmid) {
        long old = ctx.old();
        if (Pte.isLocked(old)) {
            if (!ctx.shared()) throw new IllegalStateException("exclusive walk met a LOCKED entry: " + ctx);
            return false;
        }
        if (!ctx.trySet(Pte.LOCKED)) return false;
        if ((ctx.flags() & WalkFlags.SKIP_BBM_TLBI) == 0) {
            int level = ctx.level();
            if (Pte.isTable(old, level)) {
                // Every leaf under the table may be cached: invalidate its whole span.
                if ((tableFlags & RANGE_TLBI) != 0) {
                    tlbi.flushVmidRange(vmid, ctx.entryBase(), ctx.granuleSize());
                } else {
                    tlbi.flushVmid(vmid);
                }
            } else if (Pte.isValid(old)) {
                tlbi.flushVmidIpa(vmid, ctx.entryBase(), level);
            }
        }
        if (counted(old)) ctx.putRef();
        return true;
    }

    /** The make half: take the reference the new entry holds, then publish it with release order. */
    void make(VisitContext ctx, long pte) {
        if (counted(pte)) ctx.getRef();
        ctx.publish(pte);
    }

    // ------------------------------------------------------------------------------------------
    // unmap

    /**
     * Removes every mapping and annotation in {@code [ipa, ipa + size)}; blocks that overlap the
     * range are removed whole (the rest refaults). Tables that become empty are freed. Each leaf
     * is invalidated by IPA (or, with FWB and RANGE_TLBI, by one range TLBI after the walk), and
     * cacheable leaves get D-cache maintenance after their TLBI when FWB is off.
     */
    public void unmap(long ipa, long size) {
        checkLive();
        checkAligned("ipa", ipa);
        checkSize(size);
        boolean defer = fwb && (tableFlags & RANGE_TLBI) != 0;
        UnmapVisitor v = new UnmapVisitor(defer);
        try {
            walk(ipa, size, v, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        } finally {
            counters.leavesRemoved.add(v.leaves);
            counters.tablesFreed.add(v.tables);
            recordCmo(v.dcacheOps, v.dcacheBytes, 0, 0);
        }
        if (defer && v.leaves > 0) {
            tlbi.flushVmidRange(vmid, ipa & -geometry.granule().pageSize(), size);
        }
    }

    final class UnmapVisitor implements LeafRunVisitor {
        final boolean deferTlbi;
        long leaves, tables, dcacheOps, dcacheBytes;

        UnmapVisitor(boolean deferTlbi) {
            this.deferTlbi = deferTlbi;
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            long old = ctx.old();
            if (visit == Visit.TABLE_POST) {
                long child = ctx.childTable();
                if (ctx.count(child) != 1) return Status.OK;
                ctx.trySet(0);
                tlbi.flushVmidIpa(vmid, ctx.entryBase(), TlbMaintenance.LEVEL_UNKNOWN);
                ctx.putRef();
                ctx.put(child);
                tables++;
                return Status.OK;
            }
            leaf(ctx);
            return Status.OK;
        }

        /**
         * Run of leaves (exclusive walks): every leaf is handled exactly as {@link #visit} does.
         * With the TLBI deferred (which implies FWB, so no D-cache maintenance either), what
         * {@link #leaf} does to a valid leaf is clear it and drop its reference: consecutive
         * valid leaves go through {@link VisitContext#clearRun} in one loop.
         */
        @Override
        public void visitLeafRun(VisitContext ctx) {
            boolean bulk = deferTlbi && fwb;
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
                if (counted(old)) {
                    ctx.trySet(0);
                    ctx.putRef();
                }
                return;
            }
            int level = ctx.level();
            boolean needFlush = !fwb && Stage2Descriptor.isCacheable(old, false);
            ctx.trySet(0);
            if (!deferTlbi) tlbi.flushVmidIpa(vmid, ctx.entryBase(), level);
            ctx.putRef();
            if (needFlush) {
                // After the TLBI, so no line can be allocated through the dying mapping.
                dcacheOps++;
                dcacheBytes += ctx.granuleSize();
            }
            leaves++;
        }
    }

    /**
     * Identity-maps the largest single leaf around {@code addr} that lies inside {@code range} and
     * covers no incompatible existing mapping (other permissions, memory type or software bits)
     * and no annotation; compatible mappings under it are coalesced into it. pKVM's greedy host
     * idmap (kvm-pgtable.md §9.4). Exclusive; only for {@link #IDMAP} tables. A compatible block
     * larger than the result is shrunk by {@link #map} as usual (the rest of it refaults).
     *
     * @param addr the address to cover (need not be page-aligned)
     * @param range the most that may be mapped; whole pages inside it only
     * @return the range actually mapped: one aligned block (or page) containing {@code addr}
     * @throws PageTableException EINVAL for bad arguments, ERANGE if {@code range} leaves the IPA
     *     space, EPERM if {@code addr}'s own page is covered by an incompatible mapping or an
     *     annotation, ENOMEM if a table is needed and {@code cache} is empty
     */
    public AddressRange idmapGreedy(long addr, Prot prot, AddressRange range, MemCache cache) {
        return GreedyIdmap.map(this, addr, prot, range, cache);
    }
}
