package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * Every broadcast TLBI, not only the by-IPA and by-VMID forms, completes only after the MMU walks
 * in flight when it began (TLBI + DSB): a range or hyp invalidation that returned earlier would
 * let a table be freed under a walk still reading it.
 */
class TlbiBroadcastCompletionTest {
    static final long M2 = 0x20_0000;

    @Test
    void aRangeInvalidationWaitsForAnInFlightWalk() throws Exception {
        assertWaitsForInFlightWalk(tlbs -> tlbs.flushVmidRange(1, 0, M2));
    }

    @Test
    void aHypVaInvalidationWaitsForAnInFlightWalk() throws Exception {
        assertWaitsForInFlightWalk(tlbs -> tlbs.flushHypVa(0, TlbMaintenance.LEVEL_UNKNOWN));
    }

    @Test
    void anIpaInvalidationWaitsForAnInFlightWalk() throws Exception {
        assertWaitsForInFlightWalk(tlbs -> tlbs.flushVmidIpa(1, 0, TlbMaintenance.LEVEL_UNKNOWN));
    }

    /** The walk is on the second registered CPU, so an invalidation that waits only for the first fails too. */
    private static void assertWaitsForInFlightWalk(Consumer<TlbSystem> flush) throws Exception {
        TlbSystem tlbs = new TlbSystem();
        Tlb cpu0 = new Tlb("cpu0", Granule.G4K);
        Tlb cpu1 = new Tlb("cpu1", Granule.G4K);
        tlbs.register(cpu0);
        tlbs.register(cpu1);
        cpu1.beginWalk(); // cpu1's MMU is between reading a descriptor and finishing its walk
        long generation = cpu1.generation();
        AtomicBoolean done = new AtomicBoolean();
        Thread invalidator = new Thread(() -> {
            flush.accept(tlbs);
            done.set(true);
        });
        invalidator.start();
        // Once cpu1's entries are invalidated (its generation moved) only the wait is left; a
        // TLBI that does not wait returns within this window even on a loaded machine.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (cpu1.generation() == generation && System.nanoTime() < deadline) Thread.onSpinWait();
        assertThat(cpu1.generation()).as("the invalidation reached cpu1").isNotEqualTo(generation);
        invalidator.join(500);
        assertThat(done).as("TLBI returned while a walk was in flight").isFalse();
        cpu1.endWalk();
        invalidator.join(TimeUnit.SECONDS.toMillis(10));
        assertThat(done).as("TLBI still waiting after the walk ended").isTrue();
    }
}
