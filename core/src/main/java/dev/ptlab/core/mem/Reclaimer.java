package dev.ptlab.core.mem;

import java.util.Iterator;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Epoch-based reclamation: the JVM analogue of the RCU that protects stage-2 table frames from
 * shared walkers.
 *
 * <p>A reader enters a read section ({@link #enter}, used with try-with-resources) before it
 * follows table descriptors and leaves it when done. An object unlinked from every place a
 * reader could find it is handed to {@link #defer}; the action runs only once every read section
 * that could have seen the object has ended.
 *
 * <p>Ordering contract. A global epoch only grows. {@code defer} tags its action with the epoch
 * it then increments past; an action with tag {@code t} may run once no reader is inside a
 * section it announced at an epoch {@code <= t}. A reader announces by storing the global epoch
 * in its slot (a volatile write) and re-reading the global epoch until the two agree; so either
 * the reclaimer's scan sees the announcement, or the reader's re-read sees the increment the
 * deferral made after unlinking — and then (the increment and the re-read being volatile) every
 * descriptor the reader loads afterwards shows the object already unlinked.
 *
 * <p>Sections nest per thread. Each thread gets one slot for life; slots are never removed, so
 * the scan is a walk over a small array.
 */
public final class Reclaimer {
    private static final long IDLE = Long.MAX_VALUE;

    /**
     * One thread's announcement, written by its owner twice per read section. Padded (64 bytes on
     * either side of {@code epoch} and {@code depth}) so that two threads' slots, which the
     * garbage collector may well copy next to each other, never share a cache line. The hot
     * fields are {@code long}s: HotSpot moves a 4-byte field into the gap after the object header,
     * before the padding (here that gap takes {@code owner}, which is only read).
     */
    static final class Slot {
        long p0, p1, p2, p3, p4, p5, p6, p7;
        volatile long epoch = IDLE;
        long depth;
        long q0, q1, q2, q3, q4, q5, q6, q7;
        final Thread owner = Thread.currentThread();
    }

    /** An open read section; closing it leaves the section. Not shareable between threads. */
    public final class ReadSection implements AutoCloseable {
        private final Slot slot;
        private boolean closed;

        ReadSection(Slot slot) {
            this.slot = slot;
        }

        @Override
        public void close() {
            if (closed) return;
            if (Thread.currentThread() != slot.owner) {
                throw new IllegalStateException("read section closed by " + Thread.currentThread().getName()
                        + ", opened by " + slot.owner.getName());
            }
            closed = true;
            if (--slot.depth == 0) slot.epoch = IDLE;
        }
    }

    private static final class Deferred {
        final long tag;
        final Runnable action;

        Deferred(long tag, Runnable action) {
            this.tag = tag;
            this.action = action;
        }
    }

    private final AtomicLong epoch = new AtomicLong(1);
    private final CopyOnWriteArrayList<Slot> slots = new CopyOnWriteArrayList<>();
    private final ThreadLocal<Slot> mySlot = ThreadLocal.withInitial(() -> {
        Slot s = new Slot();
        slots.add(s);
        return s;
    });
    private final ConcurrentLinkedQueue<Deferred> deferred = new ConcurrentLinkedQueue<>();
    private final AtomicLong deferredCount = new AtomicLong();
    private final AtomicLong reclaimedCount = new AtomicLong();

    /** Enters a read section (nestable). */
    public ReadSection enter() {
        Slot s = mySlot.get();
        if (s.depth++ == 0) {
            long e;
            do {
                e = epoch.get();
                s.epoch = e;
            } while (epoch.get() != e);
        }
        return new ReadSection(s);
    }

    /** Whether the calling thread is inside a read section. */
    public boolean inReadSection() {
        return mySlot.get().depth > 0;
    }

    /**
     * Runs {@code action} after every read section that might have seen the object it frees has
     * ended. The object must already be unreachable for new readers.
     */
    public void defer(Runnable action) {
        if (action == null) throw new IllegalArgumentException("action: null");
        long tag = epoch.getAndIncrement();
        deferred.add(new Deferred(tag, action));
        deferredCount.incrementAndGet();
        reclaim();
    }

    /** Smallest epoch announced by a reader inside a section, or IDLE. */
    private long oldestReader() {
        long min = IDLE;
        for (Slot s : slots) {
            long e = s.epoch;
            if (e < min) min = e;
        }
        return min;
    }

    /**
     * Runs every deferred action whose readers have all left. Called by {@link #defer}; callable
     * at any time. Returns how many ran.
     */
    public int reclaim() {
        long oldest = oldestReader();
        int ran = 0;
        for (Iterator<Deferred> it = deferred.iterator(); it.hasNext(); ) {
            Deferred d = it.next();
            if (d.tag < oldest && deferred.remove(d)) {
                d.action.run();
                reclaimedCount.incrementAndGet();
                ran++;
            }
        }
        return ran;
    }

    /**
     * Waits for a grace period: returns once every read section that was open when it was called
     * has ended. Must not be called inside a read section (it would wait for itself).
     */
    public void synchronize() {
        if (inReadSection()) {
            throw new IllegalStateException("synchronize() inside a read section would wait for itself");
        }
        long tag = epoch.getAndIncrement();
        while (oldestReader() <= tag) {
            Thread.onSpinWait();
            Thread.yield();
        }
    }

    /** Waits until every action deferred so far has run. Must not be called inside a read section. */
    public void barrier() {
        if (inReadSection()) {
            throw new IllegalStateException("barrier() inside a read section would wait for itself");
        }
        while (!deferred.isEmpty()) {
            synchronize();
            reclaim();
        }
    }

    /** Actions handed to {@link #defer} so far. */
    public long deferred() {
        return deferredCount.get();
    }

    /** Deferred actions that have run. */
    public long reclaimed() {
        return reclaimedCount.get();
    }

    /** Deferred actions still waiting for a grace period. */
    public long pending() {
        return deferredCount.get() - reclaimedCount.get();
    }
}
