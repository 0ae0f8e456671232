package dev.ptlab.core.table;

import java.util.concurrent.atomic.LongAdder;

/**
 * Software-side counts of one table's operations, one adder per {@link TableCounter}. Visitors
 * count into local fields and add their totals once per walk, so counting costs nothing per entry.
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

    /** By {@link TableCounter} ordinal; the named fields below are the same adders, for the visitors' totals. */
    private final Counter[] byCounter = new Counter[TableCounter.values().length];

    final Counter breakBeforeMake = adder(TableCounter.BREAK_BEFORE_MAKE);
    final Counter leavesInstalled = adder(TableCounter.LEAVES_INSTALLED);
    final Counter leavesRemoved = adder(TableCounter.LEAVES_REMOVED);
    final Counter tablesInstalled = adder(TableCounter.TABLES_INSTALLED);
    final Counter tablesFreed = adder(TableCounter.TABLES_FREED);
    final Counter raced = adder(TableCounter.RACED);
    final Counter coalesced = adder(TableCounter.COALESCED);
    final Counter invalidWindowSteps = adder(TableCounter.INVALID_WINDOW_STEPS);
    final Counter splits = adder(TableCounter.SPLITS);
    final Counter attrUpdates = adder(TableCounter.ATTR_UPDATES);

    public TableCounters() {
        // A counter with no named field yet still has its adder (reached through add/get).
        for (int i = 0; i < byCounter.length; i++) if (byCounter[i] == null) byCounter[i] = new Counter();
    }

    private Counter adder(TableCounter c) {
        return byCounter[c.ordinal()] = new Counter();
    }

    /** Adds {@code n} to {@code c} (nothing when 0): a walk's total, once per walk. */
    void add(TableCounter c, long n) {
        byCounter[c.ordinal()].add(n);
    }

    /** The count of {@code c} so far. */
    public long get(TableCounter c) {
        return byCounter[c.ordinal()].sum();
    }

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
        for (Counter c : byCounter) c.reset();
    }

    /** The bench's differential check digests this text: keep its form. */
    @Override
    public String toString() {
        return "bbm=" + breakBeforeMake() + " leaves+=" + leavesInstalled() + " leaves-=" + leavesRemoved()
                + " tables+=" + tablesInstalled() + " tables-=" + tablesFreed() + " raced=" + raced()
                + " coalesced=" + coalesced() + " invalidWindowSteps=" + invalidWindowSteps() + " splits=" + splits()
                + " attrUpdates=" + attrUpdates();
    }
}
