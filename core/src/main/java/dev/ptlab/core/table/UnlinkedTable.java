package dev.ptlab.core.table;

/**
 * A subtree not linked into any table: built by {@link Stage2PageTable#createUnlinked} (and not
 * yet installed), or detached by an operation and waiting to be freed. An opaque handle: its
 * frames are reachable only through the table's own walks.
 */
public final class UnlinkedTable {
    /** The table whose memory and geometry the subtree was built with: the only one that may free it. */
    final PageTable owner;
    final long pa;
    final int level;
    final long base;
    boolean freed;

    UnlinkedTable(PageTable owner, long pa, int level, long base) {
        this.owner = owner;
        this.pa = pa;
        this.level = level;
        this.base = base;
    }

    /** Level of the entry this subtree hangs (or would hang) under; its root table is at level + 1. */
    public int level() {
        return level;
    }

    /** First input address the subtree maps (0 for one built by createUnlinked). */
    public long base() {
        return base;
    }

    public boolean freed() {
        return freed;
    }

    @Override
    public String toString() {
        return "UnlinkedTable[level " + level + " entry, base 0x" + Long.toHexString(base) + (freed ? ", freed" : "") + "]";
    }
}
