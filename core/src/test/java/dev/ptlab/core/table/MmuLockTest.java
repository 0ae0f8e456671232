package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * {@link MmuLock}: readers share it, a writer excludes everyone (it waits for readers inside, and
 * readers wait while it holds the lock), nesting rules, and a small bounded stress run in which a
 * non-atomic update under the write lock is never seen half done under the read lock.
 */
class MmuLockTest {
    final MmuLock lock = new MmuLock();

    /** Runs {@code body} in a new started thread; failures are kept in {@code errors}. */
    static Thread spawn(String name, ConcurrentLinkedQueue<Throwable> errors, ThrowingRunnable body) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } catch (Throwable e) {
                errors.add(e);
            }
        }, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }

    static void join(Thread t) throws InterruptedException {
        t.join(10_000);
        assertThat(t.isAlive()).as(t.getName() + " finished").isFalse();
    }

    @Test
    void aWriterWaitsUntilTheReaderInsideLeaves() throws Exception {
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        AtomicInteger clock = new AtomicInteger();
        AtomicInteger readerLeft = new AtomicInteger(-1), writerEntered = new AtomicInteger(-1);
        CountDownLatch readerIn = new CountDownLatch(1), letReaderGo = new CountDownLatch(1), writerTrying = new CountDownLatch(1);
        Thread reader = spawn("reader", errors, () -> {
            lock.readLock();
            readerIn.countDown();
            letReaderGo.await();
            readerLeft.set(clock.incrementAndGet());
            lock.readUnlock();
        });
        assertThat(readerIn.await(10, TimeUnit.SECONDS)).isTrue();
        Thread writer = spawn("writer", errors, () -> {
            writerTrying.countDown();
            lock.writeLock();
            writerEntered.set(clock.incrementAndGet());
            lock.writeUnlock();
        });
        assertThat(writerTrying.await(10, TimeUnit.SECONDS)).isTrue();
        Thread.sleep(100);
        assertThat(writerEntered.get()).as("the writer is still waiting while the reader is inside").isEqualTo(-1);
        assertThat(writer.isAlive()).isTrue();
        letReaderGo.countDown();
        join(reader);
        join(writer);
        assertThat(errors).isEmpty();
        assertThat(writerEntered.get()).as("the writer got in only after the reader left").isGreaterThan(readerLeft.get());
    }

    @Test
    void aReaderWaitsUntilTheWriterLeaves() throws Exception {
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        AtomicInteger clock = new AtomicInteger();
        AtomicInteger writerLeft = new AtomicInteger(-1), readerEntered = new AtomicInteger(-1);
        CountDownLatch writerIn = new CountDownLatch(1), letWriterGo = new CountDownLatch(1), readerTrying = new CountDownLatch(1);
        Thread writer = spawn("writer", errors, () -> {
            lock.writeLock();
            writerIn.countDown();
            letWriterGo.await();
            writerLeft.set(clock.incrementAndGet());
            lock.writeUnlock();
        });
        assertThat(writerIn.await(10, TimeUnit.SECONDS)).isTrue();
        Thread reader = spawn("reader", errors, () -> {
            readerTrying.countDown();
            lock.readLock();
            readerEntered.set(clock.incrementAndGet());
            assertThat(lock.heldForRead()).isTrue();
            lock.readUnlock();
        });
        assertThat(readerTrying.await(10, TimeUnit.SECONDS)).isTrue();
        Thread.sleep(100);
        assertThat(readerEntered.get()).as("the reader is still waiting while the writer is inside").isEqualTo(-1);
        letWriterGo.countDown();
        join(writer);
        join(reader);
        assertThat(errors).isEmpty();
        assertThat(readerEntered.get()).isGreaterThan(writerLeft.get());
    }

    @Test
    void readersShareTheLock() throws Exception {
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        CountDownLatch bothIn = new CountDownLatch(2), done = new CountDownLatch(1);
        List<Thread> readers = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            readers.add(spawn("reader" + i, errors, () -> {
                lock.readLock();
                try {
                    bothIn.countDown();
                    // Both must be inside at once, or this times out.
                    assertThat(bothIn.await(10, TimeUnit.SECONDS)).as("the other reader got in too").isTrue();
                    done.await(10, TimeUnit.SECONDS);
                } finally {
                    lock.readUnlock();
                }
            }));
        }
        assertThat(bothIn.await(10, TimeUnit.SECONDS)).isTrue();
        done.countDown();
        for (Thread t : readers) join(t);
        assertThat(errors).isEmpty();
    }

    @Test
    void writeInsideReadThrowsAndLeavesTheReadLockHeld() {
        lock.readLock();
        assertThatThrownBy(lock::writeLock).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("while it holds the read lock");
        assertThat(lock.heldForRead()).isTrue();
        assertThat(lock.heldForWrite()).isFalse();
        lock.readUnlock();
        assertThat(lock.heldForRead()).isFalse();
        lock.writeLock();
        assertThat(lock.heldForWrite()).isTrue();
        lock.writeUnlock();
    }

    @Test
    void nestingReadInReadWriteInWriteReadInWrite() throws Exception {
        lock.readLock();
        lock.readLock();
        lock.readUnlock();
        assertThat(lock.heldForRead()).as("one level still held").isTrue();
        lock.readUnlock();
        assertThat(lock.heldForRead()).isFalse();

        lock.writeLock();
        lock.writeLock();
        lock.readLock(); // read inside write: allowed
        assertThat(lock.heldForRead()).isTrue();
        assertThat(lock.heldForWrite()).isTrue();
        lock.readUnlock();
        lock.writeUnlock();
        assertThat(lock.heldForWrite()).as("one write level still held").isTrue();
        assertThat(otherThreadCanTakeWriteLock(200)).as("another writer is still kept out").isFalse();
        lock.writeUnlock();
        assertThat(lock.heldForWrite()).isFalse();
        assertThat(lock.heldForRead()).isFalse();
        assertThat(otherThreadCanTakeWriteLock(10_000)).as("released completely").isTrue();
    }

    @Test
    void aReadTakenInsideTheWriteLockDoesNotOutliveIt() throws Exception {
        lock.writeLock();
        lock.readLock();
        lock.writeUnlock(); // still reading, announced under the write lock only
        assertThat(lock.heldForRead()).isTrue();
        lock.readUnlock();
        assertThat(otherThreadCanTakeWriteLock(10_000)).as("no read announcement left behind").isTrue();
    }

    /**
     * Regression: a read taken inside the write lock and still held after the write lock is
     * released (a downgrade) must keep writers out. Before the fix the read was never announced,
     * so once the write lock was gone another writer got in beside this reader.
     */
    @Test
    void aReadStillHeldAfterTheWriteLockIsReleasedKeepsWritersOut() throws Exception {
        lock.writeLock();
        lock.readLock();
        lock.writeUnlock();
        assertThat(lock.heldForRead()).isTrue();
        assertThat(lock.heldForWrite()).isFalse();
        assertThat(otherThreadCanTakeWriteLock(200)).as("a writer while the downgraded read is held").isFalse();
        lock.readUnlock();
        assertThat(otherThreadCanTakeWriteLock(10_000)).isTrue();
        // Nested reads across the downgrade: the outermost unlock ends the announcement.
        lock.writeLock();
        lock.readLock();
        lock.readLock();
        lock.writeUnlock();
        lock.readUnlock();
        assertThat(otherThreadCanTakeWriteLock(200)).as("one read level still held").isFalse();
        lock.readUnlock();
        assertThat(otherThreadCanTakeWriteLock(10_000)).isTrue();
    }

    @Test
    void unlockingWhatIsNotHeldThrows() throws Exception {
        assertThatThrownBy(lock::readUnlock).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(lock::writeUnlock).isInstanceOf(IllegalStateException.class);
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        lock.writeLock();
        Thread t = spawn("not-the-owner", errors, lock::writeUnlock);
        join(t);
        assertThat(errors).singleElement().isInstanceOf(IllegalStateException.class);
        assertThat(lock.heldForWrite()).isTrue();
        lock.writeUnlock();
    }

    private boolean otherThreadCanTakeWriteLock(long waitMillis) throws InterruptedException {
        AtomicBoolean got = new AtomicBoolean();
        Thread t = new Thread(() -> {
            lock.writeLock();
            got.set(true);
            lock.writeUnlock();
        });
        t.setDaemon(true);
        t.start();
        t.join(waitMillis);
        return got.get();
    }

    // ---- a small bounded stress run ----------------------------------------------------------

    /** Guarded by {@link #lock}: written under the write lock in two steps, read under the read lock. */
    long a, b;

    @Test
    void writersExcludeEachOtherAndReadersNeverSeeAHalfDoneUpdate() throws Exception {
        int writers = 2, readers = 2, perWriter = 20_000;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        AtomicBoolean writersDone = new AtomicBoolean();
        AtomicLong reads = new AtomicLong(), torn = new AtomicLong();
        List<Thread> ws = new ArrayList<>(), rs = new ArrayList<>();
        for (int i = 0; i < readers; i++) {
            rs.add(spawn("reader" + i, errors, () -> {
                while (!writersDone.get() && System.nanoTime() < deadline) {
                    lock.readLock();
                    try {
                        long x = a;
                        Thread.onSpinWait();
                        long y = b;
                        if (x != y) torn.incrementAndGet();
                    } finally {
                        lock.readUnlock();
                    }
                    reads.incrementAndGet();
                }
            }));
        }
        for (int i = 0; i < writers; i++) {
            ws.add(spawn("writer" + i, errors, () -> {
                for (int k = 0; k < perWriter && System.nanoTime() < deadline; k++) {
                    lock.writeLock();
                    try {
                        a = a + 1; // plain read-modify-write: only mutual exclusion keeps it exact
                        if ((k & 63) == 0) Thread.yield(); // let a reader try to get in half-way
                        b = b + 1;
                    } finally {
                        lock.writeUnlock();
                    }
                }
            }));
        }
        for (Thread t : ws) t.join(30_000);
        writersDone.set(true);
        for (Thread t : rs) t.join(30_000);
        assertThat(errors).isEmpty();
        assertThat(ws).noneMatch(Thread::isAlive);
        assertThat(rs).noneMatch(Thread::isAlive);
        lock.readLock();
        try {
            assertThat(a).as("every increment under the write lock counted (writers not starved by readers)")
                    .isEqualTo((long) writers * perWriter);
            assertThat(b).isEqualTo(a);
        } finally {
            lock.readUnlock();
        }
        assertThat(torn.get()).as("reads that saw a half-done update").isZero();
        assertThat(reads.get()).as("readers ran beside the writers").isPositive();
    }
}
