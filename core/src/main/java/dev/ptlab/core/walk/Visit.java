package dev.ptlab.core.walk;

/** Why a visitor is being called for an entry. */
public enum Visit {
    /** A leaf: a block, a page, or any invalid entry. */
    LEAF,
    /** A table entry, before the walker descends into it. */
    TABLE_PRE,
    /** A table entry, after its subtree was walked. */
    TABLE_POST
}
