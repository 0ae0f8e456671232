package dev.ptlab.core.walk;

/**
 * What a visitor reports about one entry. These are outcomes, not errors: the walk's
 * {@link WalkPolicy} decides whether to continue, retry or stop. Real errors (no memory, bad
 * arguments) are thrown as {@link dev.ptlab.core.PageTableException}.
 */
public enum Status {
    /** Done with this entry. */
    OK,
    /** The entry changed under the visitor, or another walker holds it LOCKED (the kernel's -EAGAIN). */
    RACED,
    /** The operation needed a valid entry and found none. */
    NOT_MAPPED,
    /** A leaf cannot be placed at this level. Internal to map; never reaches the walker. */
    NO_FIT
}
