package dev.ptlab.core.table;

import java.util.concurrent.atomic.LongAdder;

/**
 * Software-side counts of one table's operations. Visitors count into local fields and add their
 * totals once per walk, so counting costs nothing per entry.
 */
public final class TableCounters {
    final LongAdder breakBeforeMake = new LongAdder();
    final LongAdder leavesInstalled = new LongAdder();
    final LongAdder leavesRemoved = new LongAdder();
    final LongAdder tablesInstalled = new LongAdder();
    final LongAdder tablesFreed = new LongAdder();
    final LongAdder raced = new LongAdder();
    final LongAdder coalesced = new LongAdder();
    final LongAdder invalidWindowSteps = new LongAdder();
    final LongAdder splits = new LongAdder();
    final LongAdder attrUpdates = new LongAdder();

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
