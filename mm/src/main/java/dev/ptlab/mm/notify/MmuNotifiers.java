package dev.ptlab.mm.notify;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The MMU-notifier hub of one address space: whole-space subscribers ({@link MmuNotifier}, as
 * KVM uses) and interval subscriptions ({@link IntervalSubscription}, as device drivers use).
 *
 * <p>Sequence protocol (the kernel's mmu_interval notifier): the hub keeps {@code invalidateSeq}.
 * It is odd while at least one invalidation that overlaps some interval is in progress, even
 * otherwise. {@link #invalidateRangeStart} makes it odd (if it was even) and hands the odd value
 * to every overlapping interval's invalidator, which stores it in its subscription;
 * {@link #invalidateRangeEnd} of the last active such invalidation makes it even again and wakes
 * readers waiting in {@link IntervalSubscription#readBegin()}. A subscription whose stored
 * value equals the hub's current odd value is "being invalidated".
 *
 * <p>Callers (the address-space operations) call start before changing any entry of the range
 * and end after, holding no page-table lock; callbacks may block.
 */
public final class MmuNotifiers {
    private final List<MmuNotifier> notifiers = new CopyOnWriteArrayList<>();
    private final List<IntervalSubscription> intervals = new CopyOnWriteArrayList<>();
    private final AtomicLongArray eventCounts = new AtomicLongArray(NotifierEvent.values().length);
    /** Guarded by this; odd while {@link #activeInvalidations} > 0. */
    private long invalidateSeq = 2;
    private int activeInvalidations;

    public void register(MmuNotifier notifier) {
        if (notifier == null) throw new IllegalArgumentException("notifier: null");
        notifiers.add(notifier);
    }

    public void unregister(MmuNotifier notifier) {
        notifiers.remove(notifier);
    }

    /** Subscribes {@code invalidator} to invalidations overlapping {@code [start, start + length)}. */
    public IntervalSubscription insertInterval(long start, long length, IntervalInvalidator invalidator) {
        if (length <= 0 || start + length < start) {
            throw new IllegalArgumentException("length: 0x" + Long.toHexString(length) + " is not a positive size from 0x"
                    + Long.toHexString(start));
        }
        if (invalidator == null) throw new IllegalArgumentException("invalidator: null");
        IntervalSubscription sub;
        synchronized (this) {
            // A new subscription starts "not being invalidated": one less than an odd current value.
            long initial = (invalidateSeq & 1) != 0 ? invalidateSeq - 1 : invalidateSeq;
            sub = new IntervalSubscription(this, start, start + length, invalidator, initial);
        }
        intervals.add(sub);
        return sub;
    }

    void remove(IntervalSubscription sub) {
        intervals.remove(sub);
    }

    /**
     * Announces an invalidation of {@code range}: every whole-space subscriber's start callback,
     * then every overlapping interval's invalidator with the (odd) current sequence.
     */
    public void invalidateRangeStart(NotifierRange range) {
        eventCounts.incrementAndGet(range.event().ordinal());
        for (MmuNotifier n : notifiers) n.invalidateRangeStart(range);
        long cur = 0;
        boolean any = false;
        for (IntervalSubscription sub : intervals) {
            if (!range.overlaps(sub.start(), sub.end())) continue;
            if (!any) {
                any = true;
                synchronized (this) {
                    if ((invalidateSeq & 1) == 0) invalidateSeq++;
                    activeInvalidations++;
                    cur = invalidateSeq;
                }
            }
            sub.invalidator().invalidate(sub, range, cur);
        }
        range.countedActive = any;
    }

    /** Ends an invalidation begun by {@link #invalidateRangeStart} with the same range. */
    public void invalidateRangeEnd(NotifierRange range) {
        if (range.countedActive) {
            range.countedActive = false;
            synchronized (this) {
                if (--activeInvalidations == 0) {
                    invalidateSeq++;
                    notifyAll();
                }
            }
        }
        for (MmuNotifier n : notifiers) n.invalidateRangeEnd(range);
    }

    /** Waits while {@code subscriptionSeq} is the odd sequence of an invalidation in progress. */
    void awaitInvalidationEnd(long subscriptionSeq) {
        synchronized (this) {
            boolean interrupted = false;
            while (subscriptionSeq == invalidateSeq && (invalidateSeq & 1) != 0) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) Thread.currentThread().interrupt();
        }
    }

    /** Aging: clear-and-flush the young state of every whole-space subscriber; true if any was young. */
    public boolean clearFlushYoung(long start, long end) {
        boolean young = false;
        for (MmuNotifier n : notifiers) young |= n.clearFlushYoung(start, end);
        return young;
    }

    public boolean clearYoung(long start, long end) {
        boolean young = false;
        for (MmuNotifier n : notifiers) young |= n.clearYoung(start, end);
        return young;
    }

    public boolean testYoung(long start, long end) {
        for (MmuNotifier n : notifiers) if (n.testYoung(start, end)) return true;
        return false;
    }

    /** The address space is being torn down. */
    public void release() {
        for (MmuNotifier n : notifiers) n.release();
    }

    /** How many invalidations of {@code event} have started. */
    public long count(NotifierEvent event) {
        return eventCounts.get(event.ordinal());
    }

    /** Invalidations started, by event (events never sent are left out). */
    public Map<NotifierEvent, Long> counts() {
        Map<NotifierEvent, Long> m = new EnumMap<>(NotifierEvent.class);
        for (NotifierEvent e : NotifierEvent.values()) {
            long c = eventCounts.get(e.ordinal());
            if (c != 0) m.put(e, c);
        }
        return m;
    }

    /** The current sequence (odd while an invalidation hitting an interval is in progress). */
    public synchronized long sequence() {
        return invalidateSeq;
    }
}
