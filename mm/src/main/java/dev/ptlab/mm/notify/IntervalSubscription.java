package dev.ptlab.mm.notify;

/**
 * A subscription to invalidations of {@code [start, end)} of one address space (the kernel's
 * {@code struct mmu_interval_notifier}), with the sequence protocol a subscriber uses to detect
 * an invalidation that raced with its own work:
 * <pre>
 *   for (;;) {
 *       long seq = sub.readBegin();          // waits out an invalidation in progress
 *       ... look up / fault in pages, no subscriber lock held ...
 *       lock(subscriberLock);
 *       if (sub.readRetry(seq)) { unlock; continue; }   // an invalidation ran: start again
 *       ... install the mapping ...
 *       unlock(subscriberLock); break;
 *   }
 * </pre>
 * and in the {@link IntervalInvalidator}: lock(subscriberLock); {@code setSeq(currentSeq)};
 * drop mappings; unlock.
 */
public final class IntervalSubscription {
    private final MmuNotifiers owner;
    private final long start;
    private final long end;
    private final IntervalInvalidator invalidator;
    /** The address-space sequence of the last invalidation that hit this interval (set by the invalidator). */
    private volatile long seq;
    private volatile boolean removed;

    IntervalSubscription(MmuNotifiers owner, long start, long end, IntervalInvalidator invalidator, long seq) {
        this.owner = owner;
        this.start = start;
        this.end = end;
        this.invalidator = invalidator;
        this.seq = seq;
    }

    public long start() { return start; }
    public long end() { return end; }
    public boolean removed() { return removed; }

    IntervalInvalidator invalidator() { return invalidator; }

    /**
     * Begins a read-side critical section: returns a sequence number to pass to
     * {@link #readRetry(long)}. If an invalidation that hit this interval is still in progress,
     * waits until it ends (the kernel's mmu_interval_read_begin sleeps the same way), so the
     * returned value is stable unless a new invalidation starts.
     */
    public long readBegin() {
        long s = seq;
        owner.awaitInvalidationEnd(s);
        return s;
    }

    /** True if an invalidation hit this interval since {@link #readBegin()} returned {@code seq}. */
    public boolean readRetry(long seq) {
        return this.seq != seq;
    }

    /** Called by the invalidator, under the subscriber's lock, with the sequence it was given. */
    public void setSeq(long currentSeq) {
        this.seq = currentSeq;
    }

    /** Stops notifications; waits for an invalidation in progress on this subscription to end. */
    public void remove() {
        owner.remove(this);
        removed = true;
    }

    @Override
    public String toString() {
        return "interval [0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end) + ")";
    }
}
