package dev.ptlab.core.conc;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.table.Stage2PageTable;
import org.junit.jupiter.api.Test;

/**
 * Bounded stress runs of parallel (shared, read-locked) stage-2 faults against an exclusive
 * writer ({@link StressRun}): zero exceptions, zero wrong translations, zero TLB conflicts, zero
 * stale grants at every quiescent point, exact refcounts, and every frame back after destroy.
 * Each run also has to show that it exercised the races it is about (raced faults, coalescing
 * by shared walks with deferred frees, invalidation-sequence retries), or it proves nothing.
 *
 * <p>A run lasts its time budget, stretched up to twice that until it has shown raced faults,
 * deferred frees and five quiescent checks (the machine may be loaded). The seed is fixed per test so a failure reproduces as far as thread scheduling allows; set
 * {@code -Dptlab.stress.seed=N} to try another, and {@code -Dptlab.stress.scale=K} to run K times
 * longer. The seed is in every failure message.
 */
class Stage2StressTest {
    static long seed(long fallback) {
        return Long.getLong("ptlab.stress.seed", fallback);
    }

    /** A run's budget, scaled by {@code -Dptlab.stress.scale=K} for soak runs outside the suite. */
    static long budget(long millis) {
        return millis * Long.getLong("ptlab.stress.scale", 1L);
    }

    static void assertCleanAndBusy(StressRun.Report r) {
        System.out.println(r);
        r.vcpuStats.forEach(s -> System.out.println("  " + s));
        assertThat(r.failures()).as("violations in %s", r).isEmpty();
        assertThat(r.framesLeft).as("frames in use after destroy and cache release (%s)", r.config).isZero();
        // The run must have exercised what it is about.
        assertThat(r.quiescentChecks).as("quiescent checks (%s)", r.config).isGreaterThanOrEqualTo(5);
        assertThat(r.faults).as("faults (%s)", r.config).isGreaterThan(1000);
        assertThat(r.readerWalks).as("reader walks (%s)", r.config).isGreaterThan(1000);
        assertThat(r.vcpuRaced).as("faults that raced another walker (%s)", r.config).isPositive();
        assertThat(r.coalesced).as("tables coalesced into blocks (%s)", r.config).isPositive();
        assertThat(r.deferred).as("subtree frees deferred by shared walks (%s)", r.config).isPositive();
        assertThat(r.reclaimed).as("every deferred free ran (%s)", r.config).isEqualTo(r.deferred);
        assertThat(r.permissionFaults).as("permission faults (%s)", r.config).isPositive();
        if (r.config.hardwareAf) {
            assertThat(r.accessFlagFaults).as("no access-flag faults with hardware AF (%s)", r.config).isZero();
        } else {
            assertThat(r.accessFlagFaults).as("access-flag faults (%s)", r.config).isPositive();
        }
        assertThat(r.splits).as("blocks split (%s)", r.config).isPositive();
        assertThat(r.writerOpsTotal()).as("writer operations (%s)", r.config).isGreaterThan(40);
    }

    @Test
    void fourVcpusOn4kGranule() {
        assertCleanAndBusy(StressRun.run(new StressRun.Config().seed(seed(0x4B1D)).granule(Granule.G4K).vcpus(4).budgetMillis(budget(5000))));
    }

    /** 16K granule (32M blocks), FWB with range TLBI (table breaks invalidate their span; unmap defers its TLBIs), hardware AF. */
    @Test
    void twoVcpusOn16kGranuleWithFwbRangeTlbiAndHardwareAf() {
        assertCleanAndBusy(StressRun.run(new StressRun.Config().seed(seed(0x16C0)).granule(Granule.G16K).vcpus(2).regions(8)
                .tableFlags(Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI).hardwareAf(true).budgetMillis(budget(3000))));
    }
}
