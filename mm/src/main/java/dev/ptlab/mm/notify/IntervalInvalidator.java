package dev.ptlab.mm.notify;

/**
 * The callback of an interval subscription (the kernel's {@code mmu_interval_notifier_ops}).
 * Called at the start of an invalidation that overlaps the subscription's interval, with no
 * page-table lock held. The implementation must take the lock that also guards its own mapping
 * updates, call {@link IntervalSubscription#setSeq(long)} with {@code currentSeq}, drop its
 * mappings of the range, and release the lock: a concurrent {@code readBegin ... lock ...
 * readRetry} in the subscriber then sees the invalidation.
 */
@FunctionalInterface
public interface IntervalInvalidator {
    /** @return false if it could not block (never happens here: every invalidation may sleep) */
    boolean invalidate(IntervalSubscription subscription, NotifierRange range, long currentSeq);
}
