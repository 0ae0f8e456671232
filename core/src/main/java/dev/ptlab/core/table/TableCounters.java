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

    /** Valid or LOCKED entries replaced through break-before-make. */
    public long breakBeforeMake() { return breakBeforeMake.sum(); }
    public long leavesInstalled() { return leavesInstalled.sum(); }
    public long leavesRemoved() { return leavesRemoved.sum(); }
    public long tablesInstalled() { return tablesInstalled.sum(); }
    public long tablesFreed() { return tablesFreed.sum(); }
    /** Visits that reported RACED (lost a race, met LOCKED, or found nothing to change). */
    public long raced() { return raced.sum(); }

    public void reset() {
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
                + " tables+=" + tablesInstalled() + " tables-=" + tablesFreed() + " raced=" + raced();
    }
}
