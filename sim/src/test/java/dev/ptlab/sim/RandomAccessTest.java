package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.hw.FaultType;
import org.junit.jupiter.api.Test;

/** The random-access workload: reproducible with one vCPU, race-free under checking with several. */
class RandomAccessTest {
    static final long M = 1L << 20;

    @Test
    void oneVcpuRunsAreReproducibleAndEveryTouchedPageIsMappedOnce() {
        RandomAccess.Options o = RandomAccess.Options.defaults().memory(16 * M).vcpus(1).accesses(20_000).seed(42);
        RunResult a = RandomAccess.run(VmConfig.defaults(), o);
        RunResult b = RandomAccess.run(VmConfig.defaults(), o);
        PhaseReport pa = a.phase("random"), pb = b.phase("random");
        assertThat(pa.vcpus().accesses()).isEqualTo(20_000);
        assertThat(pa.counters()).isEqualTo(pb.counters());
        for (FaultType t : FaultType.values()) assertThat(pa.faults(t)).as(t.label()).isEqualTo(pb.faults(t));
        // Page backing: one translation fault per distinct page touched, then (first write or
        // exec to a page mapped by a read) one permission fault at most per right.
        assertThat(pa.faults(FaultType.TRANSLATION)).isEqualTo(a.tableAtEnd.entriesAt(3));
        assertThat(pa.faults(FaultType.PERMISSION)).isLessThanOrEqualTo(2L * a.tableAtEnd.entriesAt(3));
        RunResult c = RandomAccess.run(VmConfig.defaults(), o.seed(43));
        assertThat(c.phase("random").counters()).isNotEqualTo(pa.counters());
        assertThat(a.framesInUseAtEnd).isZero();
    }

    @Test
    void severalVcpusOnAHotSetOfThpBlocksUnderCheckingHaveNoViolation() {
        RandomAccess.Options o = RandomAccess.Options.defaults().memory(64 * M).backing(Backing.THP).vcpus(3).accesses(30_000)
                .hotFraction(0.02);
        RunResult r = RandomAccess.run(VmConfig.defaults().withChecking(true), o);
        PhaseReport p = r.phase("random");
        assertThat(p.vcpus().accesses()).isEqualTo(90_000);
        assertThat(p.counter("tlb-conflicts")).isZero();
        assertThat(r.framesInUseAtEnd).isZero();
        assertThatThrownBy(() -> RandomAccess.run(VmConfig.defaults(), o.hotFraction(0)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("hot fraction:");
    }
}
