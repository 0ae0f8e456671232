package dev.ptlab.core.table;

import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A table's MMU lock: the analogue of KVM's {@code kvm->mmu_lock} rwlock. vCPU faults (map from
 * a fault, relaxPerms, mkyoung) hold it for reading and run as shared walks; everything that
 * rewrites many entries or frees tables at once (unmap, wrprotect, split, flush, aging, destroy)
 * holds it for writing and runs as an exclusive walk. {@link Stage2PageTable} takes it itself
 * for every operation, according to the walk flags; a caller that must keep a decision and the
 * operation atomic (the fault path's invalidation-sequence check) may hold it around the call.
 *
 * <p>Design: readers do not share a counter. Each thread has its own padded slot; a reader
 * announces itself in its slot (a volatile store) and then checks the writer field (a volatile
 * load); a writer publishes itself in the writer field and then waits until every slot is
 * quiet. The two store-then-load pairs are Dekker's: in the single total order of volatile
 * accesses at least one side sees the other, so a reader and a writer are never inside at once,
 * and read acquisition by threads faulting on distinct pages touches no shared cache line that
 * is written. A reader that sees a writer withdraws and waits, so writers are not starved.
 *
 * <p>Reentrancy: read inside read nests; write inside write nests; read inside write is allowed
 * (the writer excludes everyone anyway), and if the write lock is released first the read is
 * announced then, so it keeps excluding writers until its own release (a downgrade). Write inside read would deadlock (there is no upgrade),
 * so it throws {@link IllegalStateException} instead.
 *
 * <p>Waiting spins briefly, then yields, then parks for short intervals: critical sections are
 * short, and on a machine with fewer cores than threads spinning alone would starve the holder.
 */
public final class MmuLock {
    /**
     * One thread's read state, written by its owner on every read lock and unlock. Padded so that
     * nothing another thread writes shares a cache line with it: 64 bytes of padding on either
     * side of the three fields. Every field is a {@code long} on purpose: HotSpot lays fields out
     * by size and, for equal sizes, in declaration order, but moves a 4-byte or smaller field into
     * the gap right after the 12-byte object header, which would put it before the padding.
     */
    static final class Slot {
        long p0, p1, p2, p3, p4, p5, p6, p7;
        /** 1 while the owner is inside a read section it announced; written by the owner only. */
        volatile long reading;
        /** Read nesting depth (owner only). */
        long depth;
        /** 1 if the outermost read was taken while this thread held the write lock (not announced). */
        long underWrite;
        long q0, q1, q2, q3, q4, q5, q6, q7;
    }

    private volatile Slot[] slots = new Slot[0];
    private final ThreadLocal<Slot> mine = ThreadLocal.withInitial(this::register);
    private final ReentrantLock writers = new ReentrantLock();
    private volatile Thread writer;
    private int writeDepth;

    private synchronized Slot register() {
        Slot s = new Slot();
        Slot[] old = slots;
        Slot[] n = java.util.Arrays.copyOf(old, old.length + 1);
        n[old.length] = s;
        slots = n;
        return s;
    }

    /** Takes the lock for reading (nestable; allowed while holding the write lock). */
    public void readLock() {
        Slot s = mine.get();
        if (s.depth++ > 0) return;
        Thread me = Thread.currentThread();
        if (writer == me) {
            s.underWrite = 1;
            return;
        }
        s.underWrite = 0;
        for (int spins = 0; ; spins++) {
            s.reading = 1;
            if (writer == null) return;
            // A writer is in or arriving: step back so it can proceed, wait until it is gone.
            s.reading = 0;
            while (writer != null) backoff(spins++);
        }
    }

    /** Releases one level of read locking. */
    public void readUnlock() {
        Slot s = mine.get();
        if (s.depth <= 0) throw new IllegalStateException("readUnlock by " + Thread.currentThread().getName() + ", which holds no read lock");
        if (--s.depth == 0 && s.underWrite == 0) s.reading = 0;
    }

    /**
     * Takes the lock for writing (nestable).
     *
     * @throws IllegalStateException if the calling thread holds the read lock (no upgrade)
     */
    public void writeLock() {
        Thread me = Thread.currentThread();
        if (writer == me) {
            writeDepth++;
            return;
        }
        Slot s = mine.get();
        if (s.depth > 0) {
            throw new IllegalStateException("write lock requested by " + me.getName()
                    + " while it holds the read lock: an exclusive operation cannot run inside a shared one");
        }
        writers.lock();
        writer = me;
        writeDepth = 1;
        for (Slot r : slots) {
            for (int spins = 0; r.reading != 0; spins++) backoff(spins);
        }
    }

    /** Releases one level of write locking. */
    public void writeUnlock() {
        if (writer != Thread.currentThread()) {
            throw new IllegalStateException("writeUnlock by " + Thread.currentThread().getName() + ", which does not hold the write lock");
        }
        if (--writeDepth == 0) {
            Slot s = mine.get();
            if (s.depth > 0 && s.underWrite != 0) {
                // Downgrade: a read taken inside the write lock outlives it. Announce it while
                // still the writer, so no other writer can get in beside it.
                s.underWrite = 0;
                s.reading = 1;
            }
            writer = null;
            writers.unlock();
        }
    }

    /** Whether the calling thread holds the write lock. */
    public boolean heldForWrite() {
        return writer == Thread.currentThread();
    }

    /** Whether the calling thread holds the read lock (or the write lock, which implies it). */
    public boolean heldForRead() {
        return mine.get().depth > 0 || heldForWrite();
    }

    private static void backoff(int spins) {
        if (spins < 32) {
            Thread.onSpinWait();
        } else if (spins < 64) {
            Thread.yield();
        } else {
            LockSupport.parkNanos(20_000);
        }
    }
}
