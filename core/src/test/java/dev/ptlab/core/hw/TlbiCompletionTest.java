package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * A broadcast TLBI completes only after the MMU walks in flight when it began (TLBI + DSB), and
 * TLB conflicts are reported with both entries.
 */
class TlbiCompletionTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long PAGE = 0x4000_0000_0743L, BLOCK = 0x4000_0000_0741L; // valid, AF set; page / block

    @Test
    void broadcastInvalidationWaitsForAnInFlightWalkAndNotForAFinishedOne() throws Exception {
        TlbSystem tlbs = new TlbSystem();
        Tlb cpu1 = new Tlb("cpu1", Granule.G4K);
        tlbs.register(cpu1);
        cpu1.beginWalk(); // cpu1's MMU is between reading a descriptor and finishing its walk
        AtomicBoolean done = new AtomicBoolean();
        CountDownLatch started = new CountDownLatch(1);
        Thread invalidator = new Thread(() -> {
            started.countDown();
            tlbs.flushVmid(1);
            done.set(true);
        });
        invalidator.start();
        started.await();
        Thread.sleep(100);
        assertThat(done).as("TLBI returned while a walk was in flight").isFalse();
        cpu1.endWalk();
        invalidator.join(TimeUnit.SECONDS.toMillis(10));
        assertThat(done).isTrue();

        // No walk in flight: returns at once, for every broadcast kind.
        tlbs.flushVmidIpa(1, 0, TlbMaintenance.LEVEL_UNKNOWN);
        tlbs.flushVmidRange(1, 0, M2);
        tlbs.flushHypVa(0, TlbMaintenance.LEVEL_UNKNOWN);
        assertThat(tlbs.totalFlushes()).isEqualTo(4);
    }

    @Test
    void aBlockFillOverSmallerCachedPagesIsAConflictWhenScanning() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        List<String> seen = new ArrayList<>();
        tlb.setConflictListener((t, vmid, addr, level, pte, otherLevel, otherBase, otherPte) ->
                seen.add(t.name() + " vmid " + vmid + " L" + level + "@" + Long.toHexString(addr) + " vs L" + otherLevel + "@"
                        + Long.toHexString(otherBase)));
        tlb.fill(1, M2 + 7 * K4, 3, PAGE, tlb.generation()); // a page left over from before a coalesce
        tlb.fill(1, M2, 2, BLOCK, tlb.generation());         // the block filled at another address of the span
        assertThat(seen).as("without the scan only entries covering the filled address are compared").isEmpty();

        Tlb scanning = new Tlb("cpu1", Granule.G4K);
        scanning.setScanConflicts(true);
        scanning.setConflictListener((t, vmid, addr, level, pte, otherLevel, otherBase, otherPte) ->
                seen.add(t.name() + " vmid " + vmid + " L" + level + "@" + Long.toHexString(addr) + " vs L" + otherLevel + "@"
                        + Long.toHexString(otherBase)));
        scanning.fill(1, M2 + 7 * K4, 3, PAGE, scanning.generation());
        scanning.fill(2, M2 + 9 * K4, 3, PAGE, scanning.generation()); // another VMID: never a conflict
        scanning.fill(1, M2, 2, BLOCK, scanning.generation());
        assertThat(seen).containsExactly("cpu1 vmid 1 L2@200000 vs L3@207000");
        assertThat(scanning.conflicts()).isEqualTo(1);
    }

    @Test
    void forEachEntryReportsEveryValidEntryWithItsBaseAndLevel() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        tlb.fill(1, M2 + 7 * K4 + 0x123, 3, PAGE, tlb.generation());
        tlb.fill(2, 3 * M2 + 0x456, 2, BLOCK, tlb.generation());
        List<String> entries = new ArrayList<>();
        tlb.forEachEntry((vmid, level, base, pte) -> entries.add(vmid + ":L" + level + "@" + Long.toHexString(base)));
        assertThat(entries).containsExactlyInAnyOrder("1:L3@207000", "2:L2@600000");
        tlb.invalidateVmid(1);
        entries.clear();
        tlb.forEachEntry((vmid, level, base, pte) -> entries.add(vmid + ":L" + level + "@" + Long.toHexString(base)));
        assertThat(entries).containsExactly("2:L2@600000");
    }
}
