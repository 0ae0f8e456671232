package dev.ptlab.core.mem;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class ReclaimerTest {
    final Reclaimer r = new Reclaimer();

    @Test
    void deferredActionRunsAtOnceWithNoReaders() {
        AtomicInteger ran = new AtomicInteger();
        r.defer(ran::incrementAndGet);
        assertThat(ran).hasValue(1);
        assertThat(r.pending()).isZero();
    }

    @Test
    void deferredActionWaitsForAReaderThatWasInside() throws Exception {
        AtomicInteger ran = new AtomicInteger();
        CountDownLatch entered = new CountDownLatch(1), release = new CountDownLatch(1);
        Thread reader = new Thread(() -> {
            try (Reclaimer.ReadSection s = r.enter()) {
                entered.countDown();
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        reader.start();
        entered.await();
        r.defer(ran::incrementAndGet);
        assertThat(ran).hasValue(0);
        assertThat(r.reclaim()).isZero();
        release.countDown();
        reader.join();
        r.barrier();
        assertThat(ran).hasValue(1);
    }

    @Test
    void aReaderEnteringAfterTheDeferDoesNotHoldItBack() throws Exception {
        AtomicInteger ran = new AtomicInteger();
        try (Reclaimer.ReadSection outer = r.enter()) {
            // our own section holds it back...
            r.defer(ran::incrementAndGet);
            assertThat(ran).hasValue(0);
        }
        // ...until it ends; a new section opened afterwards does not
        try (Reclaimer.ReadSection later = r.enter()) {
            assertThat(r.reclaim()).isEqualTo(1);
        }
        assertThat(ran).hasValue(1);
    }

    @Test
    void sectionsNest() {
        AtomicInteger ran = new AtomicInteger();
        Reclaimer.ReadSection a = r.enter();
        Reclaimer.ReadSection b = r.enter();
        r.defer(ran::incrementAndGet);
        b.close();
        assertThat(r.inReadSection()).isTrue();
        assertThat(r.reclaim()).isZero();
        a.close();
        assertThat(r.inReadSection()).isFalse();
        assertThat(r.reclaim()).isEqualTo(1);
    }

    @Test
    void synchronizeInsideASectionIsRefused() {
        try (Reclaimer.ReadSection s = r.enter()) {
            assertThatThrownBy(r::synchronize).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("inside a read section");
            assertThatThrownBy(r::barrier).isInstanceOf(IllegalStateException.class);
        }
    }

    /**
     * Stress: readers repeatedly pick up the current object and use it inside a section; a
     * writer swaps in a new object and defers "freeing" the old one. No reader may ever use an
     * object after it was freed.
     */
    @Test
    void noReaderEverSeesAFreedObject() throws Exception {
        final class Box {
            volatile boolean freed;
        }
        AtomicReference<Box> current = new AtomicReference<>(new Box());
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger violations = new AtomicInteger();
        Thread[] readers = new Thread[2];
        for (int i = 0; i < readers.length; i++) {
            readers[i] = new Thread(() -> {
                while (!stop.get()) {
                    try (Reclaimer.ReadSection s = r.enter()) {
                        Box b = current.get();
                        for (int k = 0; k < 20; k++) {
                            if (b.freed) violations.incrementAndGet();
                            Thread.onSpinWait();
                        }
                    }
                }
            });
            readers[i].start();
        }
        long deadline = System.nanoTime() + 300_000_000L;
        int swaps = 0;
        while (System.nanoTime() < deadline) {
            Box old = current.getAndSet(new Box());
            r.defer(() -> old.freed = true);
            swaps++;
        }
        stop.set(true);
        for (Thread t : readers) t.join();
        r.barrier();
        assertThat(violations).hasValue(0);
        assertThat(r.reclaimed()).isEqualTo(swaps);
    }
}
