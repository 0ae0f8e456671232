package dev.ptlab.core.walk;

import dev.ptlab.core.InvariantViolation;
import dev.ptlab.core.arch.BreakBeforeMake;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.FrameAccessException;
import dev.ptlab.core.mem.Frames;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.mem.Reclaimer;

/**
 * The visitor's view of the entry being visited. One context exists per walk and is updated in
 * place as the walk moves (no allocation per entry). It is the only way a visitor reads or
 * changes an entry, and it refuses to do so once its walk has ended.
 *
 * <p>Updates follow the walk's mode. In an exclusive walk {@link #trySet} is a single-copy-atomic
 * store that always succeeds. In a {@link WalkFlags#SHARED} walk it is a compare-and-swap against
 * {@link #old()}: the visitor that wins owns the change, a loser reports {@link Status#RACED}.
 *
 * <p>One piece on purpose: the walker's table loop writes the position fields directly and the
 * run operations ({@link #fillRun}, {@link #clearRun}, {@link #updateRun}) share the batched
 * reference counting with {@link #getRef}/{@link #putRef}; splitting it would put a call or an
 * extra object between the walker and every entry it visits.
 */
public final class VisitContext {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    /** Per granule (by ordinal), {@code levelShift(level)} at index {@code level + 1}, levels -1..3. */
    private static final int[][] SHIFTS = new int[Granule.values().length][];

    static {
        for (Granule g : Granule.values()) {
            int[] s = new int[Granule.LAST_LEVEL - Granule.FIRST_LEVEL + 1];
            for (int level = Granule.FIRST_LEVEL; level <= Granule.LAST_LEVEL; level++) {
                s[level - Granule.FIRST_LEVEL] = g.levelShift(level);
            }
            SHIFTS[g.ordinal()] = s;
        }
    }

    final Geometry geometry;
    final PhysicalMemory memory;
    final int flags;
    final boolean shared;
    final long start;
    final long end;
    final boolean stage2;
    /** Checking mode: every store is checked against the break-before-make rule. */
    final boolean checking;
    /** The geometry's level shifts, indexed by {@code level + 1} (shared, never written). */
    final int[] shifts;
    /** Protects a shared walk's reads of frames another shared walker may unlink (null if exclusive). */
    final Reclaimer reclaimer;

    long[] frame;
    /** Checking mode: the generation {@link #frame} had when the walk entered it. */
    int frameGen;
    int index;
    long tablePa;
    int level;
    /** Bytes one entry at {@link #level} maps; kept in step with {@link #level} by the walker. */
    long span;
    long addr;
    long old;
    boolean active;

    // Leaf runs (LeafRunVisitor; exclusive walks only): getRef/putRef on the run's own table
    // are summed here and applied in one update when the run ends. Only while the table's
    // count cannot reach 0 (so nothing is freed earlier or later than one call at a time would
    // free it), and flushed before anything reads a count through this context.
    private boolean inRun;
    private boolean batching;
    private int runBase;
    private int runDelta;
    /** Entries the last {@link #updateRun} changed. */
    private int runChanged;

    VisitContext(Geometry geometry, PhysicalMemory memory, int flags, long start, long end, Reclaimer reclaimer) {
        this.reclaimer = reclaimer;
        this.geometry = geometry;
        this.memory = memory;
        this.flags = flags;
        this.shared = (flags & WalkFlags.SHARED) != 0;
        this.start = start;
        this.end = end;
        this.stage2 = geometry.stage() == Stage.STAGE2;
        this.checking = memory.checking();
        this.shifts = SHIFTS[geometry.granule().ordinal()];
    }

    void beginRun() {
        inRun = true;
    }

    void endRun() {
        inRun = false;
        if (batching) flushRun();
    }

    /** Whether this run sums reference changes now (starting to if the table's count allows). */
    private boolean batch() {
        if (!batching) {
            int c = memory.count(tablePa);
            if (c <= 0) return false; // a free table: the per-call path reports it as before
            batching = true;
            runBase = c;
            runDelta = 0;
        }
        return true;
    }

    private void flushRun() {
        batching = false;
        int d = runDelta;
        runDelta = 0;
        if (d > 0) memory.getExclusive(tablePa, d);
        else if (d < 0) memory.putExclusive(tablePa, -d);
    }

    /** Points the context at one entry, as the walker does before each visit of it. */
    void position(long[] frame, int gen, int index, long tablePa, int level, long addr, long old) {
        this.frame = frame;
        this.frameGen = gen;
        this.index = index;
        this.tablePa = tablePa;
        this.level = level;
        this.span = 1L << shifts[level + 1];
        this.addr = addr;
        this.old = old;
    }

    /** Points the context at a table the walker is about to visit entries of. */
    void enterTable(long[] frame, int gen, long tablePa, int level, long span) {
        this.frame = frame;
        this.frameGen = gen;
        this.tablePa = tablePa;
        this.level = level;
        this.span = span;
    }

    private void checkActive() {
        if (!active) {
            throw new IllegalStateException("visit context used after its walk ended (entry " + index + " of table 0x"
                    + Long.toHexString(tablePa) + ")");
        }
        if (checking) checkFrame(tablePa, frameGen);
    }

    /** Checking mode: the generation of the frame at {@code pa} now (a walk remembers it on entry). */
    int generationOf(long pa) {
        return checking ? FRAMES.generation(memory, pa) : 0;
    }

    /**
     * Checking mode, before every read of an entry: a shared walk must be inside a read section
     * of its reclaimer (else the frame could be freed under it), and the frame must still be the
     * live frame the walk entered (not freed, not freed and reused).
     */
    void checkFrame(long pa, int gen) {
        if (shared && !reclaimer.inReadSection()) {
            throw new FrameAccessException("shared walk read table frame 0x" + Long.toHexString(pa) + " outside a read section (thread "
                    + Thread.currentThread().getName() + "): an unlinked table could be freed under it");
        }
        if (!memory.isLive(pa)) {
            throw new FrameAccessException("walk read table frame 0x" + Long.toHexString(pa) + " after it was freed (use after free)");
        }
        int now = FRAMES.generation(memory, pa);
        if (now != gen) {
            throw new FrameAccessException("walk read table frame 0x" + Long.toHexString(pa) + " after it was freed and reused (generation "
                    + gen + " when entered, " + now + " now)");
        }
    }

    /** The entry's value read when it was visited (re-read after PRE/LEAF visits). */
    public long old() { return old; }
    public int level() { return level; }
    /** Walk address when this entry was reached; not necessarily aligned to the entry's size. */
    public long addr() { return addr; }
    /** Page-aligned start of the whole walk. */
    public long start() { return start; }
    /** End (exclusive) of the whole walk. */
    public long end() { return end; }
    public int flags() { return flags; }
    public boolean shared() { return shared; }
    public Geometry geometry() { return geometry; }
    public PhysicalMemory memory() { return memory; }

    /** Bytes one entry at this level maps. */
    public long entrySpan() {
        return span;
    }

    /** First address the entry maps. */
    public long entryBase() {
        return addr & -span;
    }

    /** PA of the table frame holding this entry (the frame whose refcount the entry affects). */
    public long tablePa() { return tablePa; }
    /** Index of the entry in its table frame. */
    public int index() { return index; }

    /** True if {@link #old()} is a table descriptor at this level. */
    public boolean isTable() {
        return Pte.isTable(old, level);
    }

    /** The next-level table {@link #old()} points at (only meaningful for table entries). */
    public long childTable() {
        return geometry.outputAddress(old);
    }

    /** Whether {@code pte} holds a reference on its containing table in this kind of table. */
    public boolean isCounted(long pte) {
        return stage2 ? Pte.isCountedStage2(pte) : Pte.isCounted(geometry.stage(), pte);
    }

    /**
     * For a {@link LeafRunVisitor}: moves to the next entry of the current table, as the walker
     * would after a LEAF visit (the address advances to the end of the entry's span), and reads it
     * into {@link #old()}. Returns true if it is a non-table entry inside the walk's range, ready to
     * be handled as a leaf; false if the table or the range ended, or the entry is a table, in
     * which case the visitor must return and the walker carries on from there.
     */
    public boolean nextInRun() {
        checkActive();
        long next = (addr & -span) + span;
        int i = index + 1;
        addr = next;
        index = i;
        if (i >= frame.length || next >= end) return false;
        long v = shared ? Frames.getAcquire(frame, i) : Frames.getOpaque(frame, i);
        old = v;
        return !Pte.isTable(v, level);
    }

    /**
     * For a {@link LeafRunVisitor} that leaves every entry of the run as it is: moves past the
     * current entry and every following non-table entry inside the walk's range, exactly as
     * calling {@link #nextInRun()} until it returns false would, and returns how many entries
     * were passed (the current one included). The visitor must then return: the context is on
     * the first entry not passed, and {@link #old()} is not meaningful. At the last level no
     * entry can be a table, so the run ends at the end of the table or of the range and no
     * entry is read; at other levels the entries are read one by one.
     */
    public int skipRun() {
        checkActive();
        int first = index;
        if (level == Granule.LAST_LEVEL) {
            long stop = Math.min(frame.length, (long) first + entriesBeforeEnd());
            int n = (int) (stop - first);
            index = (int) stop;
            addr = (addr & -span) + (long) n * span;
            return n;
        }
        while (nextInRun()) {
            // nothing: a table or the end of the table or range stops the run
        }
        return index - first;
    }

    /**
     * For a {@link LeafRunVisitor}: installs {@code first}, {@code first + step}, {@code first +
     * 2 * step}, ... into consecutive all-zero entries from the current one on, and returns how
     * many. For each it does exactly what {@code getRef(); publish(value);} followed by a
     * successful {@link #nextInRun()} does, in one tight loop; it stops before the first entry
     * that is not zero, at the end of the table or of the walk's range, or after {@code max}
     * entries. The context is left on the last entry filled, as after its {@code publish}; the
     * visitor goes on with {@code nextInRun()}. Returns 0 (and changes nothing) outside a run or
     * if the current entry is not zero.
     *
     * <p>The caller is responsible for {@code first + k * step} being the value the per-entry code
     * would store in the k-th entry.
     */
    public int fillRun(long first, long step, int max) {
        checkActive();
        if (!inRun || max <= 0 || !batch()) return 0; // no batch: a free table, the per-entry path reports it
        long[] f = frame;
        int i = index;
        int stop = (int) Math.min(f.length, (long) i + Math.min(max, entriesBeforeEnd())); // int: a counted loop
        long v = first;
        while (i < stop && Frames.getOpaque(f, i) == 0) {
            Frames.setRelease(f, i, v);
            v += step;
            i++;
        }
        int n = i - index;
        if (n > 0) {
            runDelta += n;
            index = i - 1;
            if (n > 1) addr = (addr & -span) + (long) (n - 1) * span;
            old = v - step;
        }
        return n;
    }

    /**
     * For a {@link LeafRunVisitor}: clears consecutive valid leaf entries (valid, not tables)
     * from the current one on, and returns how many. For each it does exactly what {@code
     * trySet(0); putRef();} followed by a successful {@link #nextInRun()} does, in one tight
     * loop; it stops before the first entry that is not a valid leaf, at the end of the table or
     * of the walk's range, or where dropping one more reference could free the table (that drop
     * is left to the per-entry path). The context is left on the last entry cleared. Returns 0
     * (and changes nothing) outside a run.
     */
    public int clearRun() {
        checkActive();
        if (!inRun || !batch()) return 0;
        long[] f = frame;
        int i = index;
        long budget = (long) runBase + runDelta - 1; // drops that leave the count at 1 or more
        int stop = (int) Math.max(i, Math.min(f.length, (long) i + Math.min(budget, entriesBeforeEnd()))); // int: a counted loop
        int lvl = level;
        while (i < stop) {
            long v = Frames.getOpaque(f, i);
            if (!Pte.isValid(v) || Pte.isTable(v, lvl)) break;
            Frames.setOpaque(f, i, 0L);
            i++;
        }
        int n = i - index;
        if (n > 0) {
            runDelta -= n;
            index = i - 1;
            if (n > 1) addr = (addr & -span) + (long) (n - 1) * span;
            old = 0L;
        }
        return n;
    }

    /** Entries from the current one (inclusive) whose span starts before the walk's end. */
    private long entriesBeforeEnd() {
        long base = addr & -span;
        return base >= end ? 0 : (end - base + span - 1) / span;
    }

    /** Reads the entry again (acquire in shared walks). Does not change {@link #old()}. */
    public long read() {
        checkActive();
        return shared ? Frames.getAcquire(frame, index) : Frames.getOpaque(frame, index);
    }

    /**
     * Replaces the entry if it still holds {@link #old()} (always, in an exclusive walk). On
     * success {@link #old()} becomes {@code value}.
     */
    public boolean trySet(long value) {
        checkActive();
        if (!shared) {
            if (checking) checkStore(Frames.getAcquire(frame, index), value);
            Frames.setOpaque(frame, index, value);
            old = value;
            return true;
        }
        // The CAS can store only over old(): old() -> value is the one transition to check. The
        // entry may hold another walker's value by now; then the CAS fails and nothing is stored
        // (checking the current value instead reported that lost race as a BBM violation).
        if (checking) checkStore(old, value);
        long witness = Frames.compareAndExchange(frame, index, old, value);
        if (witness != old) {
            return false;
        }
        old = value;
        return true;
    }

    /**
     * Publishes {@code value} with a store-release: everything written before (a new child
     * table's contents, cache maintenance) is visible to any walker that reads the new entry.
     * Used for the make half of break-before-make, on an entry this walker owns (LOCKED or, in an
     * exclusive walk, any).
     */
    public void publish(long value) {
        checkActive();
        if (checking) checkStore(Frames.getAcquire(frame, index), value);
        Frames.setRelease(frame, index, value);
        old = value;
    }

    /**
     * Checking mode: the entry's value {@code current} may become {@code value} only if the
     * change is BBM-exempt (invalid on either side, or only permission/AF/software bits differ).
     */
    private void checkStore(long current, long value) {
        if (!BreakBeforeMake.storeAllowed(geometry.stage(), level, current, value)) {
            throw new InvariantViolation("break-before-make violated at 0x" + Long.toHexString(addr & -span) + " level "
                    + level + ": valid 0x" + Long.toHexString(current) + " replaced by valid 0x" + Long.toHexString(value)
                    + " without an invalid entry in between");
        }
    }

    /**
     * For a {@link LeafRunVisitor} in an exclusive walk: applies {@code (v & ~clear) | set} to
     * consecutive valid leaf entries from the current one on, in one tight loop, and returns how
     * many it passed (changed or already equal). For each it does what {@code trySet((old() &
     * ~clear) | set)} followed by a successful {@link #nextInRun()} does; it stops before the first
     * entry that is not a valid leaf and at the end of the table or range. Only for changes the
     * break-before-make rule exempts (permission, AF, software bits); the context is left on the
     * last entry passed. Returns 0 outside a run.
     */
    public int updateRun(long set, long clear) {
        checkActive();
        runChanged = 0;
        if (!inRun || shared) return 0;
        BreakBeforeMake.checkExemptUpdate(geometry.stage(), set, clear);
        long[] f = frame;
        int i = index;
        int stop = (int) Math.min(f.length, (long) i + entriesBeforeEnd()); // int: a counted loop
        int lvl = level;
        long last = old;
        int changed = 0;
        while (i < stop) {
            long v = Frames.getOpaque(f, i);
            if (!Pte.isValid(v) || Pte.isTable(v, lvl)) break;
            long nv = (v & ~clear) | set;
            if (nv != v) {
                Frames.setOpaque(f, i, nv);
                changed++;
            }
            last = nv;
            i++;
        }
        runChanged = changed;
        int n = i - index;
        if (n > 0) {
            index = i - 1;
            if (n > 1) addr = (addr & -span) + (long) (n - 1) * span;
            old = last;
        }
        return n;
    }

    /** How many of the entries the last {@link #updateRun} passed it actually changed (the rest already had the value). */
    public int updatedInRun() {
        return runChanged;
    }

    /** Takes a reference on the containing table frame. */
    public void getRef() {
        checkActive();
        if (shared) {
            memory.get(tablePa);
        } else if (inRun && batch()) {
            runDelta++;
        } else {
            memory.getExclusive(tablePa);
        }
    }

    /** Drops a reference on the containing table frame. */
    public void putRef() {
        checkActive();
        if (shared) {
            memory.put(tablePa);
        } else if (inRun && batch() && runBase + runDelta > 1) {
            runDelta--;
        } else {
            // Outside a run, or this drop may free the table: apply what is pending, then drop.
            if (batching) flushRun();
            memory.putExclusive(tablePa);
        }
    }

    /** TLB maintenance after {@link #freeChildIfEmpty} unlinked a child table, before the table is freed. */
    @FunctionalInterface
    public interface UnlinkFlush {
        /** Invalidates what TLBs may hold for the span of the level-{@code level} entry at {@code entryBase}. */
        void afterUnlink(long entryBase, int level);
    }

    /**
     * For a TABLE_POST visit: if the child table has emptied (its count is back to 1, only its
     * allocation reference), unlinks and frees it: clears the entry (so nothing, a retried or
     * chunked walk included, can follow a freed table), lets {@code flush} invalidate the TLBs
     * (null when no hardware can reach the table), drops the entry's reference on this table
     * and frees the child. Returns whether it did. If {@code flush} throws, the entry is restored
     * (the child stays linked, empty) and the exception rethrown.
     */
    public boolean freeChildIfEmpty(UnlinkFlush flush) {
        long child = childTable();
        if (count(child) != 1) return false;
        long entry = old;
        trySet(0);
        if (flush != null) {
            try {
                flush.afterUnlink(entryBase(), level);
            } catch (Throwable e) {
                // The TLBI failed: link the (empty) child again, so nothing leaks and the counts hold.
                publish(entry);
                throw e;
            }
        }
        putRef();
        put(child);
        return true;
    }

    /** Reference count of a table frame (e.g. a child in a POST visit: 1 means empty). */
    public int count(long framePa) {
        checkActive();
        if (batching) flushRun();
        return memory.count(framePa);
    }

    /** Drops a reference on another frame (a child table being released). */
    public void put(long framePa) {
        checkActive();
        if (batching) flushRun();
        if (shared) memory.put(framePa); else memory.putExclusive(framePa);
    }

    @Override
    public String toString() {
        return "VisitContext[addr=0x" + Long.toHexString(addr) + ", level=" + level + ", old=0x" + Long.toHexString(old)
                + ", table=0x" + Long.toHexString(tablePa) + "[" + index + "], flags=" + WalkFlags.toString(flags) + "]";
    }
}
