package dev.ptlab.core.table;

import java.util.Locale;

/**
 * What a table counts ({@link TableCounters#get}): one constant per counter, with the name
 * reports and JSON give it. {@link TableCounters} keeps one adder per constant, so a counter added
 * here is stored, reset and reported without another list to keep in step.
 */
public enum TableCounter {
    /** Valid or LOCKED entries replaced through break-before-make. */
    BREAK_BEFORE_MAKE("bbm"),
    LEAVES_INSTALLED,
    LEAVES_REMOVED,
    TABLES_INSTALLED,
    TABLES_FREED,
    /** Tables replaced by one block (map's coalescing path). */
    COALESCED,
    /** Blocks replaced by a pre-built subtree (eager split). */
    SPLITS,
    /** Visits that reported RACED (lost a race, met LOCKED, or found nothing to change). */
    RACED("table-raced"),
    /** Leaf entries whose attributes (permissions, AF) an update changed. */
    ATTR_UPDATES,
    /**
     * Walker steps (entries visited) during which a coalesced entry was invalid: 0 for the
     * install-first order, the whole old subtree's teardown for the unmap-first order.
     */
    INVALID_WINDOW_STEPS;

    private final String key;

    TableCounter() {
        this.key = name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    TableCounter(String key) {
        this.key = key;
    }

    /** The counter's name in reports and JSON ({@code bbm}, {@code leaves-installed}, ...). */
    public String key() {
        return key;
    }
}
