package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.mm.notify.NotifierEvent;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The selftest's phases on small VMs with one vCPU (so every count is exact), checked against
 * counts worked out by hand from KVM's fault handling.
 */
class KvmPageTableSelftestTest {
    static final long M = 1L << 20;

    private static KvmPageTableSelftest.Result run(VmConfig c, long memory, Backing b, int vcpus) {
        return KvmPageTableSelftest.run(c, KvmPageTableSelftest.Options.defaults().memory(memory).backing(b).vcpus(vcpus));
    }

    @Test
    void thpBackingSplitsOnWriteFaultsAndAdjustRestoresTheBlocks() {
        // 64 MiB of 2M THP = 32 blocks, at the top of a 40-bit IPA space (4K granule: walk starts at level 1).
        KvmPageTableSelftest.Result r = run(VmConfig.defaults(), 64 * M, Backing.THP, 1);

        PhaseReport create = r.phase("create");
        assertThat(create.faults()).isEqualTo(32);
        assertThat(create.vcpus().faults(FaultType.TRANSLATION, 1)).as("first fault: empty level-1 entry").isEqualTo(1);
        assertThat(create.vcpus().faults(FaultType.TRANSLATION, 2)).isEqualTo(31);
        assertThat(create.counter("leaves-installed")).isEqualTo(32);
        assertThat(create.counter("tables-installed")).as("one level-2 table").isEqualTo(1);
        assertThat(r.afterCreate.entriesAt(2)).isEqualTo(32);
        assertThat(r.afterCreate.entriesAt(3)).as("no table below level 2").isZero();
        assertThat(create.counter("bbm")).isZero();

        PhaseReport enable = r.phase("log-enable");
        assertThat(enable.counter("attr-updates")).as("32 blocks write-protected").isEqualTo(32);
        assertThat(enable.counter("tlbi-range")).isEqualTo(1);

        PhaseReport update = r.phase("update");
        // Per block: the write permission-faults on the block and replaces it by an empty table
        // with one writable page (BBM); then the 256 pages of the second half fault one by one.
        assertThat(update.vcpus().faults(FaultType.PERMISSION, 2)).isEqualTo(32);
        assertThat(update.vcpus().faults(FaultType.TRANSLATION, 3)).isEqualTo(32 * 256);
        assertThat(update.faults()).isEqualTo(32 + 32 * 256);
        assertThat(update.counter("bbm")).isEqualTo(32);
        assertThat(update.counter("tlbi-ipa")).as("one TLBI per broken block").isEqualTo(32);
        assertThat(update.counter("tables-installed")).isEqualTo(32);
        assertThat(update.counter("leaves-installed")).isEqualTo(32 + 32 * 256);
        assertThat(r.written.cardinality()).isEqualTo(32);
        assertThat(r.dirtyLogExact()).isTrue();

        PhaseReport adjust = r.phase("adjust");
        // Per block: the first unmapped page (page 1) faults and maps the whole 2M block again,
        // coalescing the level-3 table away; every other read hits.
        assertThat(adjust.faults()).isEqualTo(32);
        assertThat(adjust.vcpus().faults(FaultType.TRANSLATION, 3)).isEqualTo(32);
        assertThat(adjust.counter("coalesced")).isEqualTo(32);
        assertThat(adjust.counter("tables-freed")).isEqualTo(32);
        assertThat(r.adjustDifference).as("the table after adjust equals the table after create").isNull();
        assertThat(r.framesInUseAtEnd).isZero();
    }

    @Test
    void pageBackingRelaxesPermissionsPageByPage() {
        // 8 MiB of 4K pages = 2048 pages in 4 level-3 tables.
        KvmPageTableSelftest.Result r = run(VmConfig.defaults(), 8 * M, Backing.PAGE, 1);
        PhaseReport create = r.phase("create");
        assertThat(create.vcpus().faults(FaultType.TRANSLATION, 1)).isEqualTo(1);
        assertThat(create.vcpus().faults(FaultType.TRANSLATION, 2)).isEqualTo(3);
        assertThat(create.vcpus().faults(FaultType.TRANSLATION, 3)).isEqualTo(2044);
        assertThat(create.counter("tables-installed")).isEqualTo(1 + 4);

        PhaseReport update = r.phase("update");
        assertThat(update.faults()).isEqualTo(2048);
        assertThat(update.vcpus().faults(FaultType.PERMISSION, 3)).isEqualTo(2048);
        assertThat(update.counter("attr-updates")).isEqualTo(2048);
        assertThat(update.counter("tlbi-local")).as("relaxPerms invalidates only the faulting CPU's TLB").isEqualTo(2048);
        assertThat(update.counter("bbm")).isZero();
        assertThat(r.written.cardinality()).isEqualTo(2048);
        assertThat(r.dirtyLogExact()).isTrue();

        assertThat(r.phase("adjust").faults()).as("every page is mapped").isZero();
        assertThat(r.adjustDifference).isNull();
    }

    @Test
    void eagerSplitMovesTheSplittingIntoLogEnableAndLeavesOnlyPermissionFaults() {
        KvmPageTableSelftest.Result r = run(VmConfig.defaults().withEagerSplitChunk(2 * M), 64 * M, Backing.THP, 1);
        PhaseReport enable = r.phase("log-enable");
        assertThat(enable.counter("splits")).isEqualTo(32);
        assertThat(enable.counter("tables-installed")).isEqualTo(32);
        PhaseReport update = r.phase("update");
        assertThat(update.faults()).as("one permission fault per written page, the reads hit").isEqualTo(32);
        assertThat(update.vcpus().faults(FaultType.PERMISSION, 3)).isEqualTo(32);
        assertThat(update.counter("bbm")).isZero();
        assertThat(r.dirtyLogExact()).isTrue();
        // Reads do not fault on pages that are still mapped: with eager split, adjust's reads
        // cannot bring blocks back (KVM coalesces only on faults).
        assertThat(r.phase("adjust").faults()).isZero();
        assertThat(r.afterAdjust.entriesAt(3)).isEqualTo(32 * 512);
        assertThat(r.framesInUseAtEnd).isZero();
    }

    @Test
    void hugetlbBackingMapsLevelOneBlocks() {
        KvmPageTableSelftest.Result r = run(VmConfig.defaults(), 2L << 30, Backing.HUGETLB, 1);
        assertThat(r.phase("create").faults()).isEqualTo(2);
        assertThat(r.afterCreate.entriesAt(1)).isEqualTo(2);
        assertThat(r.dirtyLogExact()).isTrue();
        assertThat(r.adjustDifference).isNull();
    }

    @Test
    void twoVcpusUnderCheckingModeRaceWithoutAViolation() {
        VmConfig c = VmConfig.defaults().withChecking(true);
        for (Backing b : new Backing[] {Backing.THP, Backing.PAGE}) {
            KvmPageTableSelftest.Result r = run(c, 16 * M, b, 2);
            assertThat(r.dirtyLogExact()).as(b + ": dirty log equals the writes").isTrue();
            // The odd vCPU only read in update, so its share stays write-protected: same table but for S2AP_W.
            assertThat(r.afterAdjust.differenceFrom(r.afterCreate, Stage2Descriptor.S2AP_W)).as(b.toString()).isNull();
            for (PhaseReport p : r.phases) assertThat(p.counter("tlb-conflicts")).as(p.name()).isZero();
            assertThat(r.framesInUseAtEnd).isZero();
        }
        KvmPageTableSelftest.Result r = run(c.withGranule(Granule.G16K), 64 * M, Backing.THP, 2);
        assertThat(r.dirtyLogExact()).isTrue();
    }

    @ParameterizedTest
    @EnumSource(value = Backing.class, names = {"PAGE", "THP"})
    void processMemoryGivesTheSameStage2CountsAsAFixedHostRange(Backing b) {
        // One vCPU, so every count is exact. Faulting through GUP must change nothing stage-2 sees:
        // the host hands out pages (or 2M THPs, congruent with the IPA) and no notifier fires.
        long memory = b == Backing.THP ? 64 * M : 8 * M;
        VmConfig c = VmConfig.defaults().withChecking(true);
        KvmPageTableSelftest.Result process = run(c, memory, b, 1);
        KvmPageTableSelftest.Result fixed = run(c.withHostMemory(HostMemoryModel.FIXED), memory, b, 1);
        assertThat(process.phases).hasSameSizeAs(fixed.phases);
        for (int i = 0; i < fixed.phases.size(); i++) {
            PhaseReport p = process.phases.get(i), f = fixed.phases.get(i);
            for (FaultType t : FaultType.values()) assertThat(p.faults(t)).as(p.name() + " " + t.label()).isEqualTo(f.faults(t));
            for (VmCounter k : VmCounter.values()) if (!k.level()) assertThat(p.get(k)).as(p.name() + " " + k).isEqualTo(f.get(k));
            assertThat(p.vcpus().seqRetries()).as(p.name()).isZero();
            for (NotifierEvent e : NotifierEvent.values()) assertThat(p.get(HostCounter.notifier(e))).as(p.name() + " " + e).isZero();
            for (HostCounter k : HostCounter.ALL) assertThat(f.get(k)).as("fixed " + k).isZero();
        }
        PhaseReport create = process.phase("create");
        if (b == Backing.THP) {
            assertThat(create.counter("host-thp-page")).as("one host THP per guest block").isEqualTo(32);
            assertThat(create.counter("host-anon-page")).isZero();
        } else {
            assertThat(create.counter("host-anon-page")).as("one host page per guest page").isEqualTo(2048);
        }
        // The same leaves with the same attributes; only the output addresses (bits 47:12) may differ.
        assertThat(process.afterCreate.differenceFrom(fixed.afterCreate, 0x0000_FFFF_FFFF_F000L)).isNull();
        assertThat(process.memoryReturned()).as("stage-2 frames, host pages and host table frames all back").isTrue();
        assertThat(process.hostPagesInUseAtEnd).isZero();
    }

    @Test
    void impossibleConfigurationsAreRefusedNamingTheOption() {
        assertThatThrownBy(() -> run(VmConfig.defaults(), 3 * M, Backing.THP, 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("memory: 3M is not a positive multiple of the thp");
        assertThatThrownBy(() -> run(VmConfig.defaults().withIpaBits(32), 8L << 30, Backing.PAGE, 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("more than the 32-bit IPA space");
        assertThatThrownBy(() -> run(VmConfig.defaults(), 4 * M, Backing.THP, 3))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("vcpus: 3");
        assertThatThrownBy(() -> new Vm(VmConfig.defaults().withEagerSplitChunk(3 * M)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("eager split chunk");
    }
}
