package dev.ptlab.mm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class FolioTest {
    private final HostMemory mem = new HostMemory(1L << 40, 16 * 4096, Granule.G4K, 4);

    @Test
    void lockSleepsUntilAnotherThreadUnlocksIt() throws Exception {
        Folio f = mem.allocate(0, Folio.ANON);
        assertThat(f.tryLock()).isTrue();
        assertThat(f.tryLock()).isFalse();
        CountDownLatch got = new CountDownLatch(1);
        Thread waiter = new Thread(() -> {
            f.lock();
            got.countDown();
        });
        waiter.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (waiter.getState() != Thread.State.WAITING && System.nanoTime() < deadline) Thread.onSpinWait();
        assertThat(waiter.getState()).isEqualTo(Thread.State.WAITING);
        assertThat(got.getCount()).isEqualTo(1);
        f.unlock(); // not the owner thread's job in the kernel either: the lock is not owned
        assertThat(got.await(10, TimeUnit.SECONDS)).isTrue();
        waiter.join();
        assertThat(f.isLocked()).as("the waiter holds it now").isTrue();
        f.unlock();
        assertThatThrownBy(f::unlock).hasMessageContaining("unlock of an unlocked folio");
    }

    @Test
    void concurrentAddsToOneIntAreNotLost() throws Exception {
        Folio f = mem.allocate(0, Folio.ANON);
        f.writeInt(4, -7); // the neighbouring int in the same word must survive
        Thread[] ts = new Thread[2];
        for (int t = 0; t < ts.length; t++) {
            ts[t] = new Thread(() -> {
                for (int i = 0; i < 50_000; i++) f.getAndAddInt(0, 1);
            });
            ts[t].start();
        }
        for (Thread t : ts) t.join();
        assertThat(f.readInt(0)).isEqualTo(100_000);
        assertThat(f.readInt(4)).isEqualTo(-7);
    }

    @Test
    void copyIsIndependentAndANewFolioReadsZero() {
        Folio a = mem.allocate(0, Folio.ANON);
        assertThat(a.readLong(0)).isZero();
        a.writeLong(16, 99);
        Folio b = mem.allocate(0, Folio.ANON);
        b.copyFrom(a);
        b.writeLong(16, 100);
        assertThat(a.readLong(16)).isEqualTo(99);
        assertThat(b.readLong(16)).isEqualTo(100);
        assertThatThrownBy(() -> a.readLong(4096)).hasMessageContaining("offset: 0x1000");
    }

    @Test
    void tryGetFailsOnceTheLastReferenceIsGone() {
        Folio f = mem.allocate(0, Folio.ANON);
        assertThat(f.tryGet()).isTrue();
        f.put();
        f.put();
        assertThat(f.isFree()).isTrue();
        assertThat(f.tryGet()).isFalse();
        assertThat(mem.pagesInUse()).isZero();
    }
}
