package dev.ptlab.mm;

import dev.ptlab.core.arch.BreakBeforeMake;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import dev.ptlab.core.walk.Walker;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A host process's page table (arm64 EL0/EL1 stage-1, {@link Geometry#process}): the primitives
 * the address-space operations are built from, each a small visitor on ptlab's one walker.
 *
 * <p>Counting: every non-zero entry (present, or swap-style: swap slot, device-exclusive) holds
 * a reference on its table frame, so a table whose count is back to 1 is empty and can be freed.
 *
 * <p>Locking: this table's MMU lock, write side, is the address space's page-table lock (PTL).
 * Every walk here is exclusive ({@link PageTable#walk} takes the write side), and callers that
 * must keep a check and an update atomic hold {@link #lock()} around several walks (the lock is
 * reentrant). Shared walks are refused: nothing in the host walks this table without the PTL.
 *
 * <p>TLB maintenance: host CPU TLBs are not modelled (a CPU access in ptlab reads the table under
 * the PTL), so the maintenance is counted only ({@link #tlbFlushes()}): one per present entry
 * removed or changed, where the kernel would flush by VA.
 */
final class ProcessPageTable extends PageTable {
    /** The LEAF-only walk flags every primitive uses (exclusive). */
    private static final int LEAF = WalkFlags.LEAF;

    private final HostMemory data;
    private final long pageSize;
    private final CountingTlb counting;

    ProcessPageTable(Geometry geometry, PhysicalMemory tableMemory, HostMemory data) {
        this(geometry, tableMemory, data, new CountingTlb());
    }

    private ProcessPageTable(Geometry geometry, PhysicalMemory tableMemory, HostMemory data, CountingTlb tlb) {
        super(requireStage(geometry, Stage.PROCESS, "process"), tableMemory, tlb);
        this.data = data;
        this.pageSize = geometry.granule().pageSize();
        this.counting = tlb;
    }

    @Override
    protected boolean counted(long pte) {
        return Pte.isCountedProcess(pte);
    }

    @Override
    protected void checkWalkFlags(int flags) {
        if ((flags & WalkFlags.SHARED) != 0) {
            throw new IllegalArgumentException("flags: " + WalkFlags.toString(flags)
                    + " include SHARED; a process table is walked under its page-table lock only");
        }
    }

    @Override
    protected boolean sharedWalksAllowed() {
        return false;
    }

    // ---- the page-table lock ----

    void lock() {
        mmuLock.writeLock();
    }

    void unlock() {
        mmuLock.writeUnlock();
    }

    boolean locked() {
        return mmuLock.heldForWrite();
    }

    // ---- TLB maintenance (counted only) ----

    /** The TLBI by VA a kernel would issue after changing a present entry of {@code va}. */
    void flushVa(long va, int level) {
        counting.flushes.incrementAndGet();
    }

    long tlbFlushes() {
        return counting.flushes.get();
    }

    /**
     * Host CPU TLBs are not modelled: each maintenance call is counted, nothing else. The stage-2
     * and hyp forms are never issued on a process table; they are counted the same way.
     */
    static final class CountingTlb implements TlbMaintenance {
        final AtomicLong flushes = new AtomicLong();

        @Override public void flushVmidIpa(int vmid, long ipa, int levelHint) { flushes.incrementAndGet(); }
        @Override public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) { flushes.incrementAndGet(); }
        @Override public void flushVmidRange(int vmid, long ipa, long size) { flushes.incrementAndGet(); }
        @Override public void flushVmid(int vmid) { flushes.incrementAndGet(); }
        @Override public void flushHypVa(long va, int levelHint) { flushes.incrementAndGet(); }
    }

    // ---- primitives ----

    /** Code run on the leaf entry translating one address (any level; a zero entry included). */
    @FunctionalInterface
    interface LeafOp {
        void at(VisitContext ctx);
    }

    /**
     * Runs {@code op} on the leaf entry that translates {@code addr}, under the PTL. If {@code op}
     * turns that entry into a table, the walk descends and runs {@code op} again on the entry of
     * the next level (how {@link #install} builds missing tables).
     */
    void atLeaf(long addr, LeafOp op) {
        walk(addr & -pageSize, pageSize, (ctx, visit) -> {
            op.at(ctx);
            return Status.OK;
        }, LEAF, WalkPolicy.RANGE);
    }

    /** Runs {@code visitor} over {@code [start, end)} (LEAF, plus TABLE_POST if {@code post}). */
    void walkRange(long start, long end, dev.ptlab.core.walk.Visitor visitor, boolean post) {
        walk(start, end - start, visitor, LEAF | (post ? WalkFlags.TABLE_POST : 0), WalkPolicy.RANGE);
    }

    /** What a lookup found: the leaf entry translating an address and its level. */
    static final class Found {
        long pte;
        int level;
        /** First address the entry maps. */
        long base;
        /** Bytes it maps. */
        long size;

        boolean present() { return Pte.isValid(pte); }
    }

    /** The leaf entry translating {@code addr} (0 at the level where the walk stopped if none). */
    Found lookup(long addr, Found out) {
        atLeaf(addr, ctx -> {
            out.pte = ctx.old();
            out.level = ctx.level();
            out.base = ctx.entryBase();
            out.size = ctx.entrySpan();
        });
        return out;
    }

    /**
     * Installs {@code pte} at {@code level} for {@code addr} if that entry is zero, allocating
     * the tables on the way. Returns false, changing nothing but possibly leaving new empty
     * tables, if the entry (or a leaf above it) is not zero: another thread got there first.
     *
     * @throws dev.ptlab.core.PageTableException ENOMEM if a table frame cannot be allocated
     */
    boolean install(long addr, int level, long pte) {
        boolean[] done = {false};
        atLeaf(addr, ctx -> {
            if (ctx.old() != 0) return; // occupied at this level or above
            if (ctx.level() < level) {
                long child = memory.allocate();
                ctx.getRef();
                // Release: the zeroed frame is visible before the entry that links it.
                ctx.publish(HypDescriptor.table(geometry, child));
                return;
            }
            if (ctx.level() == level) {
                ctx.getRef();
                ctx.publish(pte);
                done[0] = true;
            }
        });
        return done[0];
    }

    /** Replaces the level-{@code level} entry for {@code addr} by {@code pte} if it still holds {@code expect}. */
    boolean replace(long addr, int level, long expect, long pte) {
        boolean[] done = {false};
        atLeaf(addr, ctx -> {
            if (ctx.level() == level && ctx.old() == expect) {
                set(ctx, pte);
                done[0] = true;
            }
        });
        return done[0];
    }

    /**
     * Stores {@code pte} over the visited leaf: break-before-make when both are present and the
     * change is more than permission/AF/software bits (through a zero entry, with a flush), the
     * table reference taken or dropped as the entry becomes counted or not, and a TLB flush
     * whenever a present entry changes.
     */
    void set(VisitContext ctx, long pte) {
        long old = ctx.old();
        if (old == pte) return;
        int level = ctx.level();
        boolean oldPresent = Pte.isValid(old);
        if (oldPresent && Pte.isValid(pte) && !BreakBeforeMake.storeAllowed(Stage.PROCESS, level, old, pte)) {
            ctx.trySet(0);
            flushVa(ctx.entryBase(), level);
            ctx.publish(pte);
            return;
        }
        ctx.trySet(pte);
        if (oldPresent) flushVa(ctx.entryBase(), level);
        if (old == 0) ctx.getRef();
        else if (pte == 0) ctx.putRef();
    }

    /**
     * Replaces the present block entry being visited by a table of next-level entries that map
     * the same pages with the same attributes (a PMD split), so the walk, which re-reads the
     * entry, descends into it. The block's folio stays as it is (large) and gains the map counts
     * and references of the extra entries: one block entry becomes {@code n} entries.
     *
     * @return the folio the block maps
     * @throws dev.ptlab.core.PageTableException ENOMEM if no table frame is free (nothing changed)
     */
    Folio splitBlock(VisitContext ctx) {
        long old = ctx.old();
        int level = ctx.level();
        if (!Pte.isValid(old) || level >= Granule.LAST_LEVEL) {
            throw new IllegalStateException("not a present block at level " + level + ": 0x" + Long.toHexString(old));
        }
        long base = ctx.entryBase();
        long pa = geometry.outputAddress(old);
        Folio folio = data.folioOf(pa);
        long child = memory.allocate();
        int childLevel = level + 1;
        long attrs = old & ~geometry.addressMask() & ~Pte.TYPE_MASK;
        long type = Pte.leafType(childLevel);
        int[] n = {0};
        // The new table is not linked yet: fill it completely, then swap it in.
        Walker.walkSubtree(geometry, memory, child, childLevel, base, LEAF, (c, visit) -> {
            c.getRef();
            c.publish(geometry.encodeAddress(pa + (c.entryBase() - base)) | attrs | type);
            n[0]++;
            return Status.OK;
        });
        folio.addMappings(n[0] - 1);
        // Block -> table changes the output: break-before-make through a zero entry.
        ctx.trySet(0);
        flushVa(base, level);
        ctx.publish(HypDescriptor.table(geometry, child));
        return folio;
    }

    /** Code run for each non-zero leaf entry of a range. */
    @FunctionalInterface
    interface EntryConsumer {
        void accept(long base, int level, long pte);
    }

    /** Calls {@code consumer} for every non-zero leaf entry overlapping {@code [start, end)}, under the PTL. */
    void forEachEntry(long start, long end, EntryConsumer consumer) {
        walkRange(start, end, (ctx, visit) -> {
            long pte = ctx.old();
            if (pte != 0) consumer.accept(ctx.entryBase(), ctx.level(), pte);
            return Status.OK;
        }, false);
    }

    /** Table frames reachable from the root, the root included (for tests and reports). */
    long tableFrames() {
        long[] n = {1};
        walk(0, geometry.iaLimit(), (ctx, visit) -> {
            n[0]++;
            return Status.OK;
        }, WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        return n[0];
    }
}
