package dev.ptlab.core.table;

import java.util.concurrent.atomic.LongAdder;

/**
 * Software-side counts of one table's operations. Visitors count into local fields and add their
 * totals once per walk, so counting costs nothing per entry.
 */
public final class TableCounters {
    /**
     * A {@link LongAdder} whose {@code add(0)} does nothing. A walk adds each of its totals once,
     * most of them 0 for a fault (one leaf, no BBM, no coalescing, ...); a plain LongAdder still
     * does a compare-and-swap for 0, so every fault wrote half a dozen cache lines shared by
     * every thread that faults on the table.
     */
    static final class Counter extends LongAdder {
        @Override
        public void add(long x) {
            if (x != 0) super.add(x);
        }
    }

    final Counter breakBeforeMake = new Counter();
    final Counter leavesInstalled = new Counter();
    final Counter leavesRemoved = new Counter();
    final Counter tablesInstalled = new Counter();
    final Counter tablesFreed = new Counter();
    final Counter raced = new Counter();
    final Counter coalesced = new Counter();
    final Counter invalidWindowSteps = new Counter();
    final Counter splits = new Counter();
    final Counter attrUpdates = new Counter();

    /** Valid or LOCKED entries replaced through break-before-make. */
    public long breakBeforeMake() { return breakBeforeMake.sum(); }
    public long leavesInstalled() { return leavesInstalled.sum(); }
    public long leavesRemoved() { return leavesRemoved.sum(); }
    public long tablesInstalled() { return tablesInstalled.sum(); }
    public long tablesFreed() { return tablesFreed.sum(); }
    /** Visits that reported RACED (lost a race, met LOCKED, or found nothing to change). */
    public long raced() { return raced.sum(); }

    /** Tables replaced by one block (map's coalescing path). */
    public long coalesced() { return coalesced.sum(); }
    /**
     * Walker steps (entries visited) during which a coalesced entry was invalid: 0 for the
     * install-first order, the whole old subtree's teardown for the unmap-first order.
     */
    public long invalidWindowSteps() { return invalidWindowSteps.sum(); }
    /** Blocks replaced by a pre-built subtree (eager split). */
    public long splits() { return splits.sum(); }
    /** Leaf entries whose attributes (permissions, AF) an update changed. */
    public long attrUpdates() { return attrUpdates.sum(); }

    public void reset() {
        coalesced.reset();
        invalidWindowSteps.reset();
        splits.reset();
        attrUpdates.reset();
        breakBeforeMake.reset();
        leavesInstalled.reset();
        leavesRemoved.reset();
        tablesInstalled.reset();
        tablesFreed.reset();
        raced.reset();
    }

    @Override
    public String toString() {
        return "bbm=" + breakBeforeMake() + " leaves+=" + leavesInstalled() + " leaves-=" + leavesRemoved()
                + " tables+=" + tablesInstalled() + " tables-=" + tablesFreed() + " raced=" + raced()
                + " coalesced=" + coalesced() + " invalidWindowSteps=" + invalidWindowSteps() + " splits=" + splits()
                + " attrUpdates=" + attrUpdates();
    }
}
