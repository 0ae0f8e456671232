package dev.ptlab.sim;

import dev.ptlab.mm.notify.NotifierRange;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * KVM's {@code mmu_invalidate_*} state of one VM: how many MMU-notifier invalidations that hit a
 * memslot are in progress, the merged guest-physical range they cover, and the sequence bumped
 * when each ends. The notifier bridge writes it; the abort handler checks it before mapping and
 * a vCPU whose fault lost to an invalidation in progress waits here for it to end.
 *
 * <p>Locks: {@link #begin}, {@link #cover} and {@link #end} are called under the MMU write lock;
 * {@link #retry} under the MMU lock (either side), so no invalidation starts or ends while it
 * looks; {@link #seq()}, {@link #inProgress()} and {@link #awaitEnd} take no lock (volatile
 * reads; the wait uses this object's monitor, which nothing else locks).
 */
final class MmuInvalidations {
    /** {@link #retry}: no invalidation got in the way; the fault may map. */
    static final int CLEAR = 0;
    /** {@link #retry}: an invalidation ended since the fault read the sequence; fault again at once. */
    static final int ENDED = 1;
    /** {@link #retry}: an invalidation covering the address is in progress; wait for it to end. */
    static final int IN_PROGRESS = 2;

    /**
     * Bumped when an invalidation that hit a memslot ends. Volatile: the fault path reads it
     * before GUP with acquire order, so any invalidation that ends after that read, even one
     * whose host change GUP saw half of, is visible as a changed value under the lock.
     */
    private volatile long seq;
    /** Invalidations hitting a memslot that have started and not ended. */
    private volatile int inProgress;
    /**
     * Guest-physical range covering every invalidation in progress (merged, as KVM merges
     * mmu_invalidate_range_start/end); empty (start > end) until one adds to it.
     */
    private long gpaStart = Long.MAX_VALUE;
    private long gpaEnd = Long.MIN_VALUE;
    /** Ranges whose start counted as in progress: their end must undo exactly that. */
    private final Set<NotifierRange> counted = ConcurrentHashMap.newKeySet();
    /** Set when the VM is destroyed: an invalidation that will never end here must not hold a vCPU. */
    private volatile boolean closed;

    /**
     * Counts {@code range} as in progress (under the MMU write lock, before its stage-2 unmap):
     * a fault that GUPs after this may still see the old host entry and must find it when it
     * checks under the lock.
     */
    void begin(NotifierRange range) {
        counted.add(range);
        if (inProgress++ == 0) {
            gpaStart = Long.MAX_VALUE;
            gpaEnd = Long.MIN_VALUE;
        }
    }

    /** Adds guest-physical {@code [start, end)} to the range of the invalidations in progress (under the MMU write lock). */
    void cover(long start, long end) {
        gpaStart = Math.min(gpaStart, start);
        gpaEnd = Math.max(gpaEnd, end);
    }

    /** Whether {@code range}'s start was counted; if so it no longer is, and {@link #end()} must follow. */
    boolean uncount(NotifierRange range) {
        return counted.remove(range);
    }

    /** Ends one counted invalidation (under the MMU write lock); call {@link #wakeWaiters()} after unlocking. */
    void end() {
        // Seq before in-progress drops: a fault that checks after this sees one or the other.
        seq++;
        inProgress--;
    }

    /** Wakes the vCPUs waiting in {@link #awaitEnd} (no lock needed; call after the MMU lock is dropped). */
    synchronized void wakeWaiters() {
        notifyAll();
    }

    /**
     * KVM's mmu_invalidate_retry_gfn, under the MMU lock: {@link #IN_PROGRESS} if an
     * invalidation covering {@code gpa} is in progress (its host change may not have happened
     * when GUP looked), {@link #ENDED} if one ended since the fault read {@code faultSeq},
     * else {@link #CLEAR}.
     */
    int retry(long faultSeq, long gpa) {
        if (inProgress > 0 && gpa >= gpaStart && gpa < gpaEnd) return IN_PROGRESS;
        return seq != faultSeq ? ENDED : CLEAR;
    }

    /** KVM's mmu_invalidate_seq: invalidations hitting a memslot that have ended. */
    long seq() {
        return seq;
    }

    /** KVM's mmu_invalidate_in_progress. */
    int inProgress() {
        return inProgress;
    }

    /**
     * Waits, holding no lock, until an invalidation ends after the sequence was {@code seenSeq}
     * (or none is in progress, or the VM is destroyed). A vCPU whose fault found an invalidation
     * over its address in progress waits here instead of re-faulting: the invalidating thread may
     * be descheduled for as long as the scheduler likes, and spinning would only take CPU from
     * it. Any invalidation's end wakes every waiter, which then faults again and, if another one
     * still covers its address, waits again. Interrupts are kept for the caller, not acted on
     * (as {@code IntervalSubscription.readBegin}).
     */
    void awaitEnd(long seenSeq) {
        if (!blocked(seenSeq)) return;
        boolean interrupted = false;
        synchronized (this) {
            while (blocked(seenSeq)) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }

    private boolean blocked(long seenSeq) {
        return seq == seenSeq && inProgress > 0 && !closed;
    }

    /** The VM is destroyed: releases every waiter for good. */
    void close() {
        closed = true;
        wakeWaiters();
    }
}
