package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Two vCPUs fault on the same 2M span at once, both wanting the table there replaced by a block
 * (shared walks): exactly one of them installs it and gets OK; the other, however its walk met
 * the first one's (table entry swapped under its compare-and-swap, LOCKED, or the block already
 * there), gets RACED and re-faults. Whoever reports OK for a span another vCPU changed could
 * skip work the kernel does only for the installer (counting, the free of the old table).
 */
class ConcurrentCoalesceTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long A = G1 + 4 * M2, P = 0x8000_0000L;
    static final int FAULT = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;

    @Test
    void exactlyOneOfTwoConcurrentCoalescingFaultsInstallsTheBlock() throws Exception {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        MemCache c1 = new MemCache(f.mem), c2 = new MemCache(f.mem);
        c1.topUp(4);
        c2.topUp(4);
        CyclicBarrier go = new CyclicBarrier(2);
        Status[] second = new Status[1];
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
        int rounds = 0;
        while (rounds < 200 || (System.nanoTime() < until && rounds < 20_000)) {
            f.map(A, K4, P, Prot.RW); // an L3 table under the span (exclusive)
            Thread other = new Thread(() -> {
                try {
                    go.await();
                    second[0] = f.table.map(A, M2, P, Prot.RW, c2, FAULT);
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
            other.start();
            go.await();
            Status first = f.table.map(A, M2, P, Prot.RW, c1, FAULT);
            other.join();
            int ok = (first == Status.OK ? 1 : 0) + (second[0] == Status.OK ? 1 : 0);
            assertThat(ok).as("round %d: %s and %s", rounds, first, second[0]).isEqualTo(1);
            assertThat(first == Status.OK ? second[0] : first).isEqualTo(Status.RACED);
            assertThat(f.table.getLeaf(A).level()).isEqualTo(2);
            // Each round: one block installed, and one RACED visit (the loser's; a fault walk
            // stops at it), counted whether the loser lost the table entry's compare-and-swap,
            // met it LOCKED, or found the block.
            assertThat(f.table.counters().coalesced()).as("round %d", rounds).isEqualTo(rounds + 1);
            assertThat(f.table.counters().raced()).as("round %d", rounds).isEqualTo(rounds + 1);
            f.table.unmap(A, M2);
            rounds++;
        }
        f.table.reclaimer().barrier();
        f.table.checkRefcounts();
        c1.release();
        c2.release();
        f.destroyAndCheck();
    }
}
