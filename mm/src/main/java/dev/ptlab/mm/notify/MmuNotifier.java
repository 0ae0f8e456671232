package dev.ptlab.mm.notify;

/**
 * A whole-address-space subscriber (the kernel's {@code struct mmu_notifier_ops}), as KVM
 * registers one per VM. Every method may block; none is called with a page-table lock held.
 *
 * <p>Ordering contract: {@link #invalidateRangeStart} is called before any entry of the range
 * changes and {@link #invalidateRangeEnd} after the change is complete. Between the two a
 * subscriber must not establish new mappings of the range from what it reads of the page
 * table: it tracks "an invalidation is in progress" from start to end (KVM's
 * mmu_invalidate_in_progress and mmu_invalidate_seq).
 */
public interface MmuNotifier {
    default void invalidateRangeStart(NotifierRange range) {}

    default void invalidateRangeEnd(NotifierRange range) {}

    /** Clears the subscriber's accessed state for {@code [start, end)} and flushes; true if any was young. */
    default boolean clearFlushYoung(long start, long end) { return false; }

    /** Clears the accessed state without a flush; true if any was young. */
    default boolean clearYoung(long start, long end) { return clearFlushYoung(start, end); }

    /** True if any page of {@code [start, end)} is young for the subscriber (nothing changes). */
    default boolean testYoung(long start, long end) { return false; }

    /** The address space is going away: drop every mapping derived from it. */
    default void release() {}
}
