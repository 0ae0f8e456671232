package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.mem.Reclaimer;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * destroy() with a subtree still in its grace period (unlinked by a shared coalescing map while
 * another reader was inside): it waits for the grace period and frees that subtree too, so when
 * it returns every frame of the table is back.
 */
class DestroyAfterSharedCoalesceTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long A = G1 + 4 * M2, P = 0x8000_0000L;

    @Test
    void destroyWaitsForAPendingFreeAndReturnsEveryFrame() throws Exception {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.RW); // an L3 table under the 2M span
        f.topUpFor(M2);

        CountDownLatch inside = new CountDownLatch(1);
        CountDownLatch leave = new CountDownLatch(1);
        Thread reader = new Thread(() -> {
            try (Reclaimer.ReadSection s = f.table.reclaimer().enter()) {
                inside.countDown();
                leave.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        reader.start();
        inside.await();
        assertThat(f.table.map(A, M2, P, Prot.RW, f.cache, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT)).isEqualTo(Status.OK);
        assertThat(f.table.reclaimer().pending()).as("the old L3 table waits for the reader").isEqualTo(1);
        f.cache.release();

        AtomicBoolean destroyed = new AtomicBoolean();
        Thread destroyer = new Thread(() -> {
            f.table.destroy();
            destroyed.set(true);
        });
        destroyer.start();
        Thread.sleep(100);
        assertThat(destroyed).as("destroy returned inside a reader's grace period").isFalse();
        leave.countDown();
        destroyer.join(TimeUnit.SECONDS.toMillis(10));
        reader.join(TimeUnit.SECONDS.toMillis(10));
        assertThat(destroyed).isTrue();
        assertThat(f.table.reclaimer().pending()).isZero();
        assertThat(f.mem.framesInUse()).as("every table frame freed").isEqualTo(f.baseline);
    }
}
