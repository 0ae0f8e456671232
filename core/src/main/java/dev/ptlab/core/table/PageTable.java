package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.mem.Reclaimer;
import dev.ptlab.core.walk.LeafRunVisitor;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.core.walk.Walk;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import dev.ptlab.core.walk.Walker;

/**
 * What stage-2 and hyp tables share: a geometry, the physical memory their frames come from, a
 * root (one frame, or up to 16 contiguous frames for a concatenated stage-2 root), the TLB
 * maintenance they issue, the table's {@link MmuLock} and {@link Reclaimer}, and the walks common
 * to both (get-leaf, teardown).
 *
 * <p>Locking: every operation takes the MMU lock itself. A {@link WalkFlags#SHARED} walk holds it
 * for reading and runs inside a read section of the table's reclaimer; any other walk holds it
 * for writing. So exclusive walks never meet a shared one, and a table unlinked by a shared walk
 * is freed only after a grace period ({@link Reclaimer#defer}), never under another shared walker.
 */
public abstract class PageTable {
    protected final Geometry geometry;
    protected final PhysicalMemory memory;
    protected final TlbMaintenance tlbi;
    protected final TableCounters counters = new TableCounters();
    protected final long rootPa;
    protected final MmuLock mmuLock = new MmuLock();
    protected final Reclaimer reclaimer = new Reclaimer();
    private volatile boolean destroyed;
    /**
     * The thread running an exclusive walk of this table, else null. Written only under the
     * write lock; read by every operation to refuse re-entry from a visitor (a thread always
     * sees its own writes, and no other thread's value can equal it).
     */
    private Thread exclusiveWalker;

    protected PageTable(Geometry geometry, PhysicalMemory memory, TlbMaintenance tlbi) {
        if (geometry == null) throw new IllegalArgumentException("geometry: null");
        if (memory == null) throw new IllegalArgumentException("memory: null");
        if (tlbi == null) throw new IllegalArgumentException("tlbi: null");
        if (memory.granule() != geometry.granule()) {
            throw new IllegalArgumentException("memory: granule " + memory.granule().label()
                    + " does not match the table's " + geometry.granule().label());
        }
        if (geometry.paBits() < 63 && memory.base() + memory.size() > 1L << geometry.paBits()) {
            // A descriptor holds only paBits of output address: a table frame above that would be
            // linked truncated, and the first walk through it would read another frame.
            throw dev.ptlab.core.PageTableException.invalidArgument("memory", "0x" + Long.toHexString(memory.base()) + "..0x"
                    + Long.toHexString(memory.base() + memory.size() - 1), "reaches above the table format's "
                    + geometry.paBits() + "-bit output address space");
        }
        this.geometry = geometry;
        this.memory = memory;
        this.tlbi = tlbi;
        this.rootPa = memory.allocateContiguous(geometry.rootPages());
    }

    /**
     * For subclass constructors: {@code g} itself if it is null (the constructor reports that) or
     * of {@code stage}; else an IllegalArgumentException saying it is not a {@code what} geometry.
     */
    protected static Geometry requireStage(Geometry g, Stage stage, String what) {
        if (g != null && g.stage() != stage) {
            throw new IllegalArgumentException("geometry: " + g + " is not a " + what + " geometry");
        }
        return g;
    }

    public Geometry geometry() { return geometry; }
    public PhysicalMemory memory() { return memory; }
    public TableCounters counters() { return counters; }
    public TlbMaintenance tlbMaintenance() { return tlbi; }
    /** The table's MMU lock (taken by every operation; callers may hold it around several). */
    public MmuLock mmuLock() { return mmuLock; }
    /** Grace periods for tables unlinked by shared walks. */
    public Reclaimer reclaimer() { return reclaimer; }

    /** Takes the MMU lock as a walk with {@code flags} needs it: read for SHARED, else write. */
    protected final void lockFor(int flags) {
        if ((flags & WalkFlags.SHARED) != 0) mmuLock.readLock(); else mmuLock.writeLock();
    }

    /**
     * Releases what {@link #lockFor} took. After a shared operation, runs deferred frees whose
     * grace period has passed (the walk's own read section is closed by now), so a table
     * unlinked by a fault is not kept for longer than the readers that could see it.
     */
    protected final void unlockFor(int flags) {
        if ((flags & WalkFlags.SHARED) != 0) {
            mmuLock.readUnlock();
            if (reclaimer.pending() > 0 && !reclaimer.inReadSection()) reclaimer.reclaim();
        } else {
            mmuLock.writeUnlock();
        }
    }

    /** Physical address of the (first) root frame: what TTBR/VTTBR's BADDR holds. */
    public long rootPa() {
        return rootPa;
    }

    public boolean destroyed() {
        return destroyed;
    }

    protected void checkLive() {
        if (destroyed) throw new IllegalStateException("table was destroyed");
    }

    /**
     * Refuses {@code operation} when the calling thread is inside a visitor of an exclusive walk
     * of this table: the operation would change or free entries and frames under the running
     * walk, which assumes no other walker. One field read.
     *
     * <p>Inside a shared walk's visitor, exclusive operations are refused by the lock (the write
     * lock cannot be taken inside a read section) and {@link #destroy} by its own check; a nested
     * shared operation is allowed, being no different from another CPU's shared walk running
     * beside this one. {@link #getLeaf} only reads and is allowed from any visitor.
     *
     * @throws IllegalStateException naming the operation
     */
    protected final void checkNotInWalk(String operation) {
        if (exclusiveWalker == Thread.currentThread()) {
            throw new IllegalStateException(operation + " called from a visitor of a running walk of this table"
                    + " (re-entry): it would change entries and frames under the walk");
        }
    }

    /**
     * The checks every operation starts with: the table is live and the caller is not a visitor
     * of a walk of it ({@link #checkNotInWalk}).
     */
    protected final void checkUsable(String operation) {
        checkLive();
        checkNotInWalk(operation);
    }

    /**
     * Refuses a memory cache of another {@link PhysicalMemory} (null is allowed: the operation
     * then fails with ENOMEM when it needs a table). Its frames would be linked into this table
     * although this table's memory never handed them out.
     */
    protected final void checkCache(MemCache cache) {
        if (cache != null && cache.memory() != memory) {
            throw PageTableException.invalidArgument("cache", "of memory " + cache.memory(),
                    "is not of this table's memory " + memory + ": its frames cannot be linked into this table");
        }
    }

    /**
     * Runs {@code visitor} over {@code [addr, addr + size)} with the one walker, holding the MMU
     * lock as {@code flags} require (read for SHARED, else write). A null {@code policy} is the
     * default for the flags ({@link Walk#policy()}).
     */
    public Status walk(long addr, long size, Visitor visitor, int flags, WalkPolicy policy) {
        return walk(Walk.range(addr, size).flags(flags).policy(policy), visitor);
    }

    /**
     * Runs {@code visitor} over the walk described by {@code walk} (its reclaimer is set to this
     * table's), holding the MMU lock as its flags require (read for SHARED, else write).
     *
     * <p>Any {@link WalkFlags} may be given (other bits: EINVAL naming "flags"); a null visitor, or
     * one returning null, is EINVAL naming "visitor". A visitor of an exclusive walk must not start
     * another walk or operation on this table, and one of a shared walk no exclusive one: that is
     * refused with an IllegalStateException (re-entry) before anything is changed. {@link #getLeaf}
     * is allowed from any visitor ({@link #checkNotInWalk}).
     */
    public Status walk(Walk walk, Visitor visitor) {
        if (walk == null) throw PageTableException.invalidArgument("walk", "null", "is required");
        checkUsable("walk");
        return walkLocked(walk, visitor);
    }

    /** {@link #walk(Walk, Visitor)} without the re-entry check (for {@link #getLeaf}, which only reads). */
    private Status walkLocked(Walk walk, Visitor visitor) {
        checkLive();
        int flags = walk.flags();
        checkWalkFlags(flags);
        lockFor(flags);
        if ((flags & WalkFlags.SHARED) != 0) {
            try {
                checkLive();
                return Walker.walk(geometry, memory, rootPa, walk.reclaimer(reclaimer), visitor);
            } finally {
                unlockFor(flags);
            }
        }
        // Restored, not cleared: a getLeaf inside an exclusive visitor of the hyp table nests.
        Thread outer = exclusiveWalker;
        exclusiveWalker = Thread.currentThread();
        try {
            checkLive();
            return Walker.walk(geometry, memory, rootPa, walk.reclaimer(reclaimer), visitor);
        } finally {
            exclusiveWalker = outer;
            unlockFor(flags);
        }
    }

    /** Hook for tables that restrict walk modes (the hyp table refuses shared walks). */
    protected void checkWalkFlags(int flags) {
    }

    /**
     * The entry that translates {@code addr}: the valid leaf, or the invalid entry where the walk
     * stopped. A read-only shared walk (read lock), so it can run beside faults; it may also be
     * called from a visitor of a walk of this table (it changes nothing).
     */
    public Leaf getLeaf(long addr) {
        long[] found = new long[2];
        int flags = WalkFlags.LEAF | (sharedWalksAllowed() ? WalkFlags.SHARED : 0);
        walkLocked(Walk.range(addr, 1).flags(flags).policy(WalkPolicy.RANGE), (ctx, visit) -> {
            found[0] = ctx.old();
            found[1] = ctx.level();
            return Status.OK;
        });
        return new Leaf(found[0], (int) found[1]);
    }

    /** Whether this kind of table allows {@link WalkFlags#SHARED} walks. */
    protected boolean sharedWalksAllowed() {
        return true;
    }

    /** Whether {@code pte} holds a reference on its table in this kind of table. */
    protected abstract boolean counted(long pte);

    /** Whether {@code pte} holds a reference on its containing table frame in this kind of table. */
    public final boolean isCounted(long pte) {
        return counted(pte);
    }

    /**
     * Teardown visitor: every counted leaf drops its reference on its table; a table whose count
     * is back to 1 (only its allocation reference) is unlinked and freed on the way up.
     */
    final class FreeVisitor implements LeafRunVisitor {
        long tablesFreed;
        /** Entries visited: the walker steps a teardown takes. */
        long visits;

        /**
         * Runs of leaves: each entry handled exactly as a LEAF {@link #visit} does (and counted
         * as a visit). Consecutive valid leaves, which are always counted, are cleared with
         * their references dropped by {@link VisitContext#clearRun} in one loop; anything else
         * (zero, an annotation, LOCKED) takes the per-entry code.
         */
        @Override
        public void visitLeafRun(VisitContext ctx) {
            do {
                int n = ctx.clearRun();
                if (n > 0) {
                    visits += n;
                    continue;
                }
                visits++;
                if (counted(ctx.old())) {
                    ctx.trySet(0);
                    ctx.putRef();
                }
            } while (ctx.nextInRun());
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            visits++;
            if (visit == Visit.TABLE_POST) {
                // No TLB maintenance: hardware can no longer reach a table being torn down.
                if (ctx.freeChildIfEmpty(null)) tablesFreed++;
                return Status.OK;
            }
            if (counted(ctx.old())) {
                ctx.trySet(0);
                ctx.putRef();
            }
            return Status.OK;
        }
    }

    /**
     * Frees every frame: walks the whole input range dropping references, then frees the roots.
     * No TLB maintenance: the table must no longer be reachable by hardware (the caller switched
     * VTTBR/TTBR away or invalidated the VMID).
     */
    public void destroy() {
        checkUsable("destroy");
        if (mmuLock.heldForRead() && !mmuLock.heldForWrite()) {
            // Inside a shared walk's visitor (or any read section): the teardown would free frames
            // that walk is reading, and waiting for pending frees would wait for ourselves.
            throw new IllegalStateException("destroy called while this thread holds the table's MMU lock for reading"
                    + " (from a visitor of a shared walk?): a table cannot be torn down under its own walk");
        }
        // Subtrees unlinked by shared walks and still in their grace period are freed first, so
        // every frame is back when destroy returns.
        reclaimer.barrier();
        mmuLock.writeLock();
        try {
            checkLive();
            destroyLocked();
        } finally {
            mmuLock.writeUnlock();
        }
    }

    private void destroyLocked() {
        FreeVisitor v = new FreeVisitor();
        walk(0, geometry.iaLimit(), v, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        counters.tablesFreed.add(v.tablesFreed);
        long page = geometry.granule().pageSize();
        for (int i = 0; i < geometry.rootPages(); i++) {
            long pa = rootPa + i * page;
            int c = memory.count(pa);
            if (c != 1) {
                throw new IllegalStateException("root frame 0x" + Long.toHexString(pa) + " has refcount " + c
                        + " after teardown (expected 1)");
            }
        }
        memory.freeContiguous(rootPa, geometry.rootPages());
        destroyed = true;
    }

    /**
     * Frees a subtree that hardware and software walkers can no longer reach: {@code childPa} was
     * the table of a level-{@code parentLevel} entry mapping {@code base}.
     *
     * @return the number of entries the teardown walk visited
     */
    protected long freeSubtree(long childPa, int parentLevel, long base) {
        FreeVisitor v = new FreeVisitor();
        Walker.walkSubtree(geometry, memory, childPa, parentLevel + 1, base & -geometry.granule().levelSize(parentLevel),
                WalkFlags.LEAF | WalkFlags.TABLE_POST, v);
        int c = memory.count(childPa);
        if (c != 1) {
            throw new IllegalStateException("unlinked table 0x" + Long.toHexString(childPa) + " has refcount " + c
                    + " after teardown (expected 1)");
        }
        memory.put(childPa);
        counters.tablesFreed.add(v.tablesFreed + 1);
        return v.visits;
    }

    // ---- pieces shared by the operations ----

    /**
     * Whether a leaf of {@code span} bytes can map input address {@code ia} to output address
     * {@code oa} within a range ending at {@code end}: both addresses aligned to the span and the
     * span inside the range. (Whether the level may hold a leaf at all is the caller's half:
     * {@link Geometry#leafAllowed} and any rule of its own.)
     */
    static boolean leafFitsAt(long ia, long oa, long span, long end) {
        return ((ia | oa) & (span - 1)) == 0 && end - ia >= span;
    }

    /**
     * A zeroed table frame from {@code cache} for the entry at {@code addr}, level {@code level}.
     *
     * @throws PageTableException ENOMEM at that address and level when there is no cache or it
     *     is empty (nothing was changed)
     */
    static long allocateTable(MemCache cache, long addr, int level) {
        if (cache == null) {
            throw new PageTableException(Errno.ENOMEM, addr, level, "a table is needed and no memory cache was given");
        }
        try {
            return cache.allocate();
        } catch (PageTableException e) {
            throw new PageTableException(Errno.ENOMEM, addr, level, "a table is needed and the memory cache is empty");
        }
    }

    // ---- argument checks shared by the operations ----

    /**
     * The checks every range operation starts with, in this order: the table is live,
     * {@code addr} (called {@code name}) is page-aligned, {@code size} is positive and aligned.
     */
    protected void checkRange(String name, long addr, long size) {
        checkLive();
        checkAligned(name, addr);
        checkSize(size);
    }

    protected void checkAligned(String name, long value) {
        Granule g = geometry.granule();
        if ((value & g.pageMask()) != 0) {
            throw PageTableException.invalidArgument(name, value, "is not aligned to the " + g.label() + " granule");
        }
    }

    protected void checkSize(long size) {
        if (size <= 0) throw PageTableException.invalidArgument("size", size, "is not positive");
        checkAligned("size", size);
    }

    protected void checkPa(long pa, long size) {
        checkAligned("pa", pa);
        long limit = 1L << geometry.paBits();
        if (pa < 0 || pa >= limit || pa + size > limit || pa + size < pa) {
            throw PageTableException.invalidArgument("pa", pa, "+ size 0x" + Long.toHexString(size) + " exceeds the "
                    + geometry.paBits() + "-bit physical address space");
        }
    }

    /**
     * Checking aid: every reachable table frame is live and its count equals 1 + its counted
     * entries. Throws {@link dev.ptlab.core.InvariantViolation} on the first mismatch.
     */
    public void checkRefcounts() {
        checkUsable("checkRefcounts");
        mmuLock.writeLock();
        try {
            dev.ptlab.core.check.InvariantChecker.check(this);
        } finally {
            mmuLock.writeUnlock();
        }
    }
}
