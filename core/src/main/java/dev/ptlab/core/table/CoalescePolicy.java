package dev.ptlab.core.table;

/**
 * How map replaces a table by a block when the block covers the table's whole span (seed 001).
 * Both orders leave the same table and refcounts; they differ in how long the span is unmapped.
 */
public enum CoalescePolicy {
    /**
     * Since v5.13/v6.2: break the table entry (TLBI over the table's span), install the block,
     * and only then tear down the old subtree through the free-unlinked hook. The span is
     * invalid for no walker steps at all.
     */
    INSTALL_FIRST,
    /**
     * The original order: invalidate the table entry, TLBI the whole VMID, free the old subtree,
     * then install the block. The span stays invalid (so vCPUs fault on it) for the whole
     * teardown walk.
     */
    UNMAP_FIRST
}
