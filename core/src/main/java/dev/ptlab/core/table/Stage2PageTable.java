package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Tlb;
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
import dev.ptlab.core.walk.Walker;

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
    private volatile CoalescePolicy coalescePolicy = CoalescePolicy.INSTALL_FIRST;
    private volatile FreeUnlinkedHook freeUnlinkedHook = FreeUnlinkedHook.DEFAULT;
    private volatile ForcePteCallback forcePteCallback;

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

    public CoalescePolicy coalescePolicy() { return coalescePolicy; }

    /** Chooses the order in which map replaces a table by a block (see {@link CoalescePolicy}). */
    public void setCoalescePolicy(CoalescePolicy policy) {
        if (policy == null) throw new IllegalArgumentException("policy: null");
        this.coalescePolicy = policy;
    }

    /** Where subtrees detached by map's coalescing go; {@link FreeUnlinkedHook#DEFAULT} by default. */
    public void setFreeUnlinkedHook(FreeUnlinkedHook hook) {
        if (hook == null) throw new IllegalArgumentException("hook: null");
        this.freeUnlinkedHook = hook;
    }

    /** Installs (or removes, with null) the callback that can force page-sized leaves for a map. */
    public void setForcePteCallback(ForcePteCallback callback) {
        this.forcePteCallback = callback;
    }

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
        ForcePteCallback cb = forcePteCallback;
        boolean forcePte = cb != null && cb.forcePages(ipa, ipa + size, prot);
        MapVisitor v = new MapVisitor(pa, attr, cache, forcePte);
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
        /** Annotation mode: every page becomes {@link #annotationPte} (an invalid entry). */
        final boolean annotation;
        final long annotationPte;
        final CoalescePolicy policy;
        long bbm, leaves, tables, raced, coalesced, invalidSteps, dcacheOps, dcacheBytes, icacheOps, icacheBytes;

        MapVisitor(long basePa, long attr, MemCache cache, boolean forcePte) {
            this(basePa, attr, cache, forcePte, false, 0);
        }

        MapVisitor(long basePa, long attr, MemCache cache, boolean forcePte, boolean annotation, long annotationPte) {
            this.basePa = basePa;
            this.attr = attr;
            this.cache = cache;
            this.forcePte = forcePte;
            this.linearLeaves = geometry.oaFormat() == OutputAddressFormat.PA48;
            this.annotation = annotation;
            this.annotationPte = annotationPte;
            this.policy = coalescePolicy;
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
            if (forcePte && level < Granule.LAST_LEVEL) return false;
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
            long pte = annotation ? annotationPte
                    : Stage2Descriptor.leaf(geometry, basePa + (ctx.addr() - ctx.start()), attr, level);
            long old = ctx.old();
            if (annotation && old == pte) return Status.OK;
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

        /**
         * Cache maintenance of the new target, between the break's TLBI and the install: D-cache
         * clean+invalidate when the mapping is cacheable and FWB is off (the guest may access it
         * with caches off), I-cache invalidate when it is executable.
         */
        private void countCmo(VisitContext ctx, long pte, int n) {
            if ((ctx.flags() & WalkFlags.SKIP_CMO) == 0) {
                long span = ctx.granuleSize();
                if (!fwb && Stage2Descriptor.isCacheable(pte, false)) {
                    dcacheOps += n;
                    dcacheBytes += span * n;
                    CacheMaintenance.Listener l = cmo.listener();
                    if (l != null) l.dcacheCleanInvalPoc(geometry.outputAddress(pte), span);
                }
                if (Stage2Descriptor.isExecutable(pte)) {
                    icacheOps += n;
                    icacheBytes += span * n;
                    CacheMaintenance.Listener l = cmo.listener();
                    if (l != null) l.icacheInvalPou(geometry.outputAddress(pte), span);
                }
            }
        }

        /** Whether installing {@code pte} needs cache maintenance in this walk. */
        private boolean needsCmo(VisitContext ctx, long pte) {
            return (ctx.flags() & WalkFlags.SKIP_CMO) == 0
                    && ((!fwb && Stage2Descriptor.isCacheable(pte, false)) || Stage2Descriptor.isExecutable(pte));
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
            if (annotation || !leafLevel(level)) return;
            long span = ctx.granuleSize();
            long start = ctx.start();
            long end = ctx.end();
            do {
                long addr = ctx.addr();
                if (ctx.old() != 0 || !fitsAt(addr, span, start, end)) return;
                long pte = Stage2Descriptor.leaf(geometry, basePa + (addr - start), attr, level);
                // Bulk fill only when no cache maintenance is due: it must precede each install.
                int n = linearLeaves && !needsCmo(ctx, pte)
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
            if (annotation || !leafFits(ctx)) return Status.OK;
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
                freeUnlinkedHook.free(Stage2PageTable.this, new UnlinkedTable(child, level, base));
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
            long pte = Stage2Descriptor.leaf(geometry, basePa + (ctx.addr() - ctx.start()), attr, level);
            ctx.trySet(Pte.LOCKED);
            if ((ctx.flags() & WalkFlags.SKIP_BBM_TLBI) == 0) tlbi.flushVmid(vmid);
            ctx.putRef();
            bbm++;
            invalidSteps += freeSubtree(child, level, base);
            installLeaf(ctx, pte);
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
            long pte = Stage2Descriptor.leaf(geometry, basePa + (ctx.addr() - ctx.start()), attr, level);
            if (!breakEntry(ctx, vmid)) {
                raced++;
                return Status.RACED;
            }
            bbm++;
            long[] steps = {0};
            Walker.walkSubtree(geometry, memory, child, level + 1, base, (c, v) -> {
                steps[0]++;
                return Status.OK;
            }, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
            invalidSteps += steps[0];
            installLeaf(ctx, pte);
            coalesced++;
            freeUnlinkedHook.free(Stage2PageTable.this, new UnlinkedTable(child, level, base));
            return Status.OK;
        }

        /** LEAF that cannot hold a leaf here: install an empty table and let the walker descend. */
        private Status installTable(VisitContext ctx) {
            int level = ctx.level();
            if (level == Granule.LAST_LEVEL) {
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
            counters.coalesced.add(coalesced);
            counters.invalidWindowSteps.add(invalidSteps);
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
        // The deferred range TLBI must complete before a fault can map the range again.
        mmuLock.writeLock();
        try {
            try {
                walk(ipa, size, v, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
            } finally {
                counters.leavesRemoved.add(v.leaves);
                counters.tablesFreed.add(v.tables);
                recordCmo(v.dcacheOps, v.dcacheBytes, 0, 0);
                if (defer && v.leaves > 0) {
                    tlbi.flushVmidRange(vmid, ipa & -geometry.granule().pageSize(), size);
                }
            }
        } finally {
            mmuLock.writeUnlock();
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
                CacheMaintenance.Listener l = cmo.listener();
                if (l != null) l.dcacheCleanInvalPoc(geometry.outputAddress(old), ctx.granuleSize());
            }
            leaves++;
        }
    }

    // ------------------------------------------------------------------------------------------
    // leaf attribute updates: one mechanism for wrprotect, mkyoung, relaxPerms

    /**
     * Sets and clears attribute bits of every valid leaf in the range. Permission, AF and
     * software bits only: those changes are break-before-make exempt, so there is no BBM and no
     * TLBI here (callers invalidate where their rule requires). Adding execute rights invalidates
     * the I-cache for the target first.
     *
     * <p>Statuses: an invalid entry is NOT_MAPPED; a LOCKED one, or a lost compare-and-swap in a
     * shared walk, is RACED. The walk's policy (from {@code flags}) decides: range updates go on,
     * fault walks (HANDLE_FAULT) stop.
     */
    final class AttrVisitor implements LeafRunVisitor {
        final long set;
        final long clear;
        Status last = Status.NOT_MAPPED;
        long lastPte;
        int lastLevel = TlbMaintenance.LEVEL_UNKNOWN;
        long updates, icacheOps, icacheBytes;

        AttrVisitor(long set, long clear) {
            this.set = set;
            this.clear = clear;
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            long old = ctx.old();
            if (!Pte.isValid(old)) {
                last = Pte.isLocked(old) ? Status.RACED : Status.NOT_MAPPED;
                return last;
            }
            int level = ctx.level();
            lastLevel = level;
            lastPte = old;
            long next = (old & ~clear) | set;
            if (next != old) {
                if (!Stage2Descriptor.isExecutable(old) && Stage2Descriptor.isExecutable(next)) {
                    // New instructions must not come from stale I-cache lines.
                    long span = ctx.granuleSize();
                    icacheOps++;
                    icacheBytes += span;
                    CacheMaintenance.Listener l = cmo.listener();
                    if (l != null) l.icacheInvalPou(geometry.outputAddress(old), span);
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

        void flushCounts() {
            counters.attrUpdates.add(updates);
            recordCmo(0, 0, icacheOps, icacheBytes);
        }
    }

    private AttrVisitor updateLeafAttrs(long addr, long size, long set, long clear, int flags) {
        AttrVisitor v = new AttrVisitor(set, clear);
        try {
            walk(addr, size, v, flags | WalkFlags.LEAF, WalkPolicy.forFlags(flags));
        } finally {
            v.flushCounts();
        }
        return v;
    }

    /**
     * Removes write permission from every valid leaf in the range (dirty logging). No TLBI: the
     * caller must invalidate afterwards (KVM flushes the memslot's range once), or a vCPU may keep
     * writing through a cached writable entry. Invalid entries are skipped.
     */
    public void wrprotect(long ipa, long size) {
        checkLive();
        checkAligned("ipa", ipa);
        checkSize(size);
        updateLeafAttrs(ipa, size, 0, Stage2Descriptor.S2AP_W, 0);
    }

    /** {@link #mkyoung(long, int)} outside a fault walk. */
    public Status mkyoung(long ipa) {
        return mkyoung(ipa, 0);
    }

    /**
     * Sets the access flag of the leaf translating {@code ipa} (the access-flag fault handler).
     * No TLBI: an entry with AF = 0 is never cached, so nothing stale can exist.
     *
     * @param flags walk flags, e.g. {@code SHARED | HANDLE_FAULT} from the fault path
     * @return OK, NOT_MAPPED if no valid leaf translates {@code ipa}, RACED if it changed under us
     */
    public Status mkyoung(long ipa, int flags) {
        checkLive();
        long page = geometry.granule().pageSize();
        return updateLeafAttrs(ipa & -page, page, Stage2Descriptor.AF, 0, flags).last;
    }

    /**
     * Whether any valid leaf in the range has its access flag set; with {@code mkold}, clears it
     * (a lost race is ignored). No TLBI: the MMU-notifier path that ages pages flushes.
     */
    public boolean testClearYoung(long ipa, long size, boolean mkold) {
        checkLive();
        checkAligned("ipa", ipa);
        checkSize(size);
        boolean[] young = {false};
        long[] cleared = {0};
        walk(ipa, size, (ctx, visit) -> {
            long old = ctx.old();
            if (!Pte.isValid(old) || (old & Stage2Descriptor.AF) == 0) return Status.OK;
            young[0] = true;
            if (mkold && ctx.trySet(old & ~Stage2Descriptor.AF)) cleared[0]++;
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        counters.attrUpdates.add(cleared[0]);
        return young[0];
    }

    /** {@link #relaxPerms(long, Prot, int, Tlb)} outside a fault walk, with no local TLB. */
    public Status relaxPerms(long ipa, Prot prot) {
        return relaxPerms(ipa, prot, 0, null);
    }

    /**
     * Adds the read/write rights in {@code prot} to the leaf translating {@code ipa}; if
     * {@code prot} has execute rights, sets the execute field to them (else leaves it alone).
     * Rights are never taken away, which is what makes the local TLBI enough. Then a local TLBI on {@code local}: only the faulting CPU can hold the stale,
     * more restrictive entry that made it fault; other CPUs fault and fix themselves.
     *
     * @param flags walk flags, e.g. {@code SHARED | HANDLE_FAULT} from the fault path
     * @param local the faulting CPU's TLB (null: none to invalidate)
     * @return OK, NOT_MAPPED (no valid leaf), or RACED (changed or locked by another walker)
     * @throws PageTableException EINVAL if {@code prot} carries anything but R/W/X rights
     */
    public Status relaxPerms(long ipa, Prot prot, int flags, Tlb local) {
        checkLive();
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
        long page = geometry.granule().pageSize();
        lockFor(flags);
        try {
            AttrVisitor v = updateLeafAttrs(ipa & -page, page, set, clear, flags);
            if (v.last == Status.OK || v.last == Status.RACED) {
                tlbi.flushVmidIpaLocal(local, vmid, ipa & -page, v.last == Status.OK ? v.lastLevel : TlbMaintenance.LEVEL_UNKNOWN);
            }
            return v.last;
        } finally {
            unlockFor(flags);
        }
    }

    /**
     * D-cache clean+invalidate of the target of every cacheable leaf in the range (set/way
     * emulation, caches being turned on or off). Nothing to do with FWB.
     */
    public void flush(long ipa, long size) {
        checkLive();
        checkAligned("ipa", ipa);
        checkSize(size);
        if (fwb) return;
        long[] tally = new long[2];
        walk(ipa, size, (ctx, visit) -> {
            long old = ctx.old();
            if (Stage2Descriptor.isCacheable(old, false)) {
                tally[0]++;
                tally[1] += ctx.granuleSize();
                CacheMaintenance.Listener l = cmo.listener();
                if (l != null) l.dcacheCleanInvalPoc(geometry.outputAddress(old), ctx.granuleSize());
            }
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        recordCmo(tally[0], tally[1], 0, 0);
    }

    // ------------------------------------------------------------------------------------------
    // annotations

    /**
     * Marks every page of the range as owned by {@code ownerId} with an invalid, counted entry
     * (owner 0, the table's owner, is the zero entry). Blocks in the range are replaced by tables
     * with break-before-make; the rest of such a block is lost and refaults.
     */
    public void setOwner(long ipa, long size, MemCache cache, int ownerId) {
        if (ownerId < 0 || ownerId > Pte.MAX_OWNER_ID) {
            throw PageTableException.invalidArgument("owner", (Object) ownerId, "is outside 0.." + Pte.MAX_OWNER_ID);
        }
        annotate(ipa, size, cache, Pte.ownerAnnotation(ownerId));
    }

    /**
     * Writes the invalid entry {@code annotation} into every page of the range (the typed form of
     * {@link #setOwner}). It must be invalid (bit 0 clear) and must not use the LOCKED bit.
     */
    public void annotate(long ipa, long size, MemCache cache, long annotation) {
        checkLive();
        checkAligned("ipa", ipa);
        checkSize(size);
        if (Pte.isValid(annotation)) {
            throw PageTableException.invalidArgument("annotation", annotation, "is a valid descriptor (bit 0 set)");
        }
        if ((annotation & Pte.LOCKED) != 0) {
            throw PageTableException.invalidArgument("annotation", annotation, "uses the LOCKED bit 10");
        }
        MapVisitor v = new MapVisitor(0, 0, cache, true, true, annotation);
        try {
            walk(ipa, size, v, WalkFlags.TABLE_PRE | WalkFlags.LEAF, WalkPolicy.RANGE);
        } finally {
            v.flushCounts();
        }
    }

    // ------------------------------------------------------------------------------------------
    // unlinked subtrees and eager split

    /**
     * Builds, off the table, a subtree mapping what one level-{@code level} block at {@code pa}
     * would map: fully down to pages with {@code forcePte}, else one level of next-size blocks.
     * Nothing can see it yet, so neither TLBI nor cache maintenance is done. On failure the
     * partial subtree is freed and the error rethrown.
     */
    public UnlinkedTable createUnlinked(long pa, int level, Prot prot, MemCache cache, boolean forcePte) {
        checkLive();
        if (prot == null) throw PageTableException.invalidArgument("prot", "null", "is required");
        checkUnlinkedLevel(level);
        long span = geometry.granule().levelSize(level);
        if ((pa & (span - 1)) != 0) {
            throw PageTableException.invalidArgument("pa", pa, "is not aligned to the level-" + level + " span 0x"
                    + Long.toHexString(span));
        }
        checkPa(pa, span);
        long attr = Stage2Descriptor.attributes(prot, fwb, geometry.oaFormat());
        return buildUnlinked(pa, level, attr, cache, forcePte, 0);
    }

    private void checkUnlinkedLevel(int level) {
        if (level < geometry.startLevel() || level >= Granule.LAST_LEVEL) {
            throw PageTableException.invalidArgument("level", (Object) level, "is outside " + geometry.startLevel() + ".."
                    + (Granule.LAST_LEVEL - 1) + " (the level of the entry the subtree hangs under)");
        }
    }

    private UnlinkedTable buildUnlinked(long pa, int level, long attr, MemCache cache, boolean forcePte, long base) {
        if (cache == null) {
            throw new PageTableException(Errno.ENOMEM, base, level, "a table is needed and no memory cache was given");
        }
        long root;
        try {
            root = cache.allocate();
        } catch (PageTableException e) {
            throw new PageTableException(Errno.ENOMEM, base, level, "a table is needed and the memory cache is empty");
        }
        MapVisitor v = new MapVisitor(pa, attr, cache, forcePte);
        try {
            Walker.walkSubtree(geometry, memory, root, level + 1, base, v,
                    WalkFlags.LEAF | WalkFlags.SKIP_BBM_TLBI | WalkFlags.SKIP_CMO, WalkPolicy.RANGE);
        } catch (RuntimeException e) {
            freeSubtree(root, level, base);
            throw e;
        } finally {
            // The subtree's own root counts too: freeSubtree counts it as freed.
            counters.tablesInstalled.add(v.tables + 1);
        }
        return new UnlinkedTable(root, level, base);
    }

    /** Frees a subtree no walker can reach any more (never installed, or detached after a grace period). */
    public void freeUnlinked(UnlinkedTable subtree) {
        if (subtree == null) throw new IllegalArgumentException("subtree: null");
        synchronized (subtree) {
            if (subtree.freed) throw new IllegalStateException(subtree + " was already freed");
            subtree.freed = true;
        }
        freeSubtree(subtree.pa, subtree.level, subtree.base);
    }

    /** Frames a full split of one level-{@code level} block to pages needs (513 for a 4K L1 block). */
    public int framesForFullSplit(int level) {
        if (level >= Granule.LAST_LEVEL) return 0;
        return 1 + (level + 1 >= Granule.LAST_LEVEL ? 0
                : geometry.granule().entriesPerTable() * framesForFullSplit(level + 1));
    }

    /**
     * Eager split: every block in the range becomes a subtree mapping exactly what it mapped
     * (same output addresses and attributes), built off-table and swapped in with
     * break-before-make. A block is split fully to pages when {@code cache} holds enough frames
     * ({@link #framesForFullSplit}), otherwise into one level of smaller blocks, which the walk
     * then visits and splits further while frames last.
     *
     * @throws PageTableException ENOMEM when not even one table can be built; the table stays
     *     valid (blocks split so far stay split)
     */
    public void split(long ipa, long size, MemCache cache) {
        checkLive();
        checkAligned("ipa", ipa);
        checkSize(size);
        if (cache == null) throw PageTableException.invalidArgument("cache", "null", "is required");
        SplitVisitor v = new SplitVisitor(cache);
        try {
            walk(ipa, size, v, WalkFlags.LEAF, WalkPolicy.RANGE);
        } finally {
            counters.splits.add(v.splits);
            counters.breakBeforeMake.add(v.splits);
        }
    }

    final class SplitVisitor implements LeafRunVisitor {
        final MemCache cache;
        long splits;

        SplitVisitor(MemCache cache) {
            this.cache = cache;
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            long old = ctx.old();
            int level = ctx.level();
            if (level == Granule.LAST_LEVEL || !Pte.isValid(old)) return Status.OK;
            int need = framesForFullSplit(level);
            if (cache.size() < 1) {
                throw new PageTableException(Errno.ENOMEM, ctx.entryBase(), level,
                        "splitting a block needs at least one table frame and the memory cache is empty");
            }
            boolean full = cache.size() >= need;
            // The block's own attribute bits (not re-derived from a prot): every page of the
            // subtree translates exactly as the block did, memory type and AF included.
            long attr = old & (Pte.ATTR_LO | Pte.ATTR_HI);
            UnlinkedTable sub = buildUnlinked(geometry.outputAddress(old), level, attr, cache, full, ctx.entryBase());
            if (!breakEntry(ctx, vmid)) {
                freeUnlinked(sub);
                return Status.RACED;
            }
            make(ctx, Stage2Descriptor.table(geometry, sub.pa));
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
        mmuLock.writeLock();
        try {
            return GreedyIdmap.map(this, addr, prot, range, cache);
        } finally {
            mmuLock.writeUnlock();
        }
    }
}

