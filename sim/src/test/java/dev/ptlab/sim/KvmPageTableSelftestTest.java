package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.mm.notify.NotifierEvent;
import java.util.EnumSet;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * kvm_page_table_test as the selftest (Linux 7.1-rc4) runs it, checked against counts worked out
 * by hand from the selftest's guest code and KVM's fault handling (4K host pages; the guest mode
 * P40V48_4K unless said: a 40-bit IPA, stage-2 levels 1..3 with two concatenated level-1 tables,
 * so level-1 entry k covers [k GiB, k+1 GiB)). Multi-vCPU runs use the serial schedule so that
 * every count is exact; the concurrent one is checked for what no interleaving changes.
 *
 * <p>Notation in the derivations: Tn / Pn a translation / permission fault reported at level n;
 * "2M region" the span of one level-3 table.
 */
class KvmPageTableSelftestTest {
    static final long M = 1L << 20;
    static final long G = 1L << 30;

    private static KvmPageTableSelftest.Options options(String backing, long memory, int vcpus) {
        return KvmPageTableSelftest.Options.defaults().memory(memory).backing(Backing.parse(backing)).vcpus(vcpus)
                .schedule(KvmPageTableSelftest.Schedule.SERIAL);
    }

    private static KvmPageTableSelftest.Result run(String backing, long memory, int vcpus) {
        return KvmPageTableSelftest.run(VmConfig.defaults(), options(backing, memory, vcpus));
    }

    private static long f(PhaseReport p, FaultType t, int level) {
        return p.vcpus().faults(t, level);
    }

    /**
     * Every backing at 64 MiB, one vCPU and two (serial: vCPU 0's walk, then vCPU 1's). Derivations:
     * <ul>
     *   <li><b>anonymous</b>: aligned 4K, so base = (2^28 - 1 - 16384) * 4K = 2^40 - 64M - 4K =
     *       0xff_fbff_f000, all in level-1 entry 511 and page 511 of its 2M region: 1 + 31 full +
     *       1 of 511 pages = 33 regions. create writes every page: the first T1 (L1 511 empty: L2
     *       and L3 tables), each further region's first page T2 (32), the rest T3 (16384 - 33 =
     *       16351); 1 + 33 = 34 tables. update (logging: everything write-protected) writes every
     *       page: 16384 x P3, each relaxed in place; 16384 dirty. adjust reads mapped pages: 0.</li>
     *   <li><b>shmem</b>: granularity 4K, placed and created as anonymous. update is not the
     *       anonymous branch: per large page it writes at addr, then steps large/2 = 2K and reads
     *       (1 / 2 = 0) pages, so the 16384 writes land 2K apart on pages 0..8191, each twice:
     *       8192 x P3 (the second write hits), 8192 dirty. adjust: 0.</li>
     *   <li><b>anonymous_thp, anonymous_hugetlb (2M), shared_hugetlb</b>: aligned 2M, base =
     *       align_down(2^40 - 64M - 4K, 2M) = 0xff_fbe0_0000: 32 blocks in L1 511. create: T1
     *       then 31 x T2, one L2 table. update per block: the write P2 on the read-only block,
     *       logging maps 4K, so the block is broken (BBM) for an empty L3 table; then the 256
     *       pages of the second half T3 each: P2 32, T3 8192, 32 BBMs, 32 tables, 32 dirty.
     *       adjust: page 1 of each block T3, mapped as a 2M block over the table (coalesced):
     *       T3 32, 32 coalesced.</li>
     *   <li><b>anonymous_hugetlb_32mb</b> (CONT_PMD, mapped as 2M blocks): aligned 32M, base =
     *       align_down(2^40 - 64M - 4K, 32M) = 0xff_fa00_0000: two large pages of 16 2M regions.
     *       create touches one address per large page: T1, T2, two 2M blocks. update per large
     *       page: P2 on region 0's block (BBM, one table), then reads from +16M: regions 8..15,
     *       each T2 (table) then 511 x T3: P2 2, T2 16, T3 2 * 8 * 511 = 8176, 18 tables, 2 BBMs,
     *       2 dirty. adjust per large page: region 0's page 1 T3 and coalesced, regions 1..7 T2
     *       (2M blocks), regions 8..15 all mapped (read-only pages) so no fault: T3 2, T2 14, 2
     *       coalesced.</li>
     *   <li><b>anonymous_hugetlb_64kb</b> (CONT_PTE, mapped as pages): aligned 64K, base = 2^40 -
     *       64M - 64K = 0xff_fbff_0000, 16 pages before the first 2M boundary, so 1 + 31 + 1 = 33
     *       regions. create writes page 0 of each 64K: 1024 accesses, T1 1, T2 32, T3 991; 34
     *       tables. update per 64K: P3 on page 0 (relaxed), then pages 8..15 T3: P3 1024, T3
     *       8192, 1024 dirty. adjust: pages 1..7 of each 64K T3 (7168), mapped as pages.</li>
     * </ul>
     * vCPU 1 (odd: reads in create) then finds everything it touches already mapped as it needs
     * it, in every phase: two vCPUs take exactly the faults of one.
     */
    @ParameterizedTest(name = "{0}, {1} vCPU(s)")
    @CsvSource({
        // backing,          vcpus, base,           cT1, cT2, cT3,   cTables, uP2, uP3,   uT2, uT3,  uBbm, uTables, dirty, aT2, aT3,  coalesced
        "anonymous,              1, 0xfffbfff000,   1,   32,  16351, 34,      0,   16384, 0,   0,    0,    0,       16384, 0,   0,    0",
        "anonymous,              2, 0xfffbfff000,   1,   32,  16351, 34,      0,   16384, 0,   0,    0,    0,       16384, 0,   0,    0",
        "shmem,                  1, 0xfffbfff000,   1,   32,  16351, 34,      0,   8192,  0,   0,    0,    0,       8192,  0,   0,    0",
        "shmem,                  2, 0xfffbfff000,   1,   32,  16351, 34,      0,   8192,  0,   0,    0,    0,       8192,  0,   0,    0",
        "anonymous_thp,          1, 0xfffbe00000,   1,   31,  0,     1,       32,  0,     0,   8192, 32,   32,      32,    0,   32,   32",
        "anonymous_thp,          2, 0xfffbe00000,   1,   31,  0,     1,       32,  0,     0,   8192, 32,   32,      32,    0,   32,   32",
        "anonymous_hugetlb,      1, 0xfffbe00000,   1,   31,  0,     1,       32,  0,     0,   8192, 32,   32,      32,    0,   32,   32",
        "anonymous_hugetlb,      2, 0xfffbe00000,   1,   31,  0,     1,       32,  0,     0,   8192, 32,   32,      32,    0,   32,   32",
        "shared_hugetlb,         1, 0xfffbe00000,   1,   31,  0,     1,       32,  0,     0,   8192, 32,   32,      32,    0,   32,   32",
        "shared_hugetlb,         2, 0xfffbe00000,   1,   31,  0,     1,       32,  0,     0,   8192, 32,   32,      32,    0,   32,   32",
        "anonymous_hugetlb_32mb, 1, 0xfffa000000,   1,   1,   0,     1,       2,   0,     16,  8176, 2,    18,      2,     14,  2,    2",
        "anonymous_hugetlb_32mb, 2, 0xfffa000000,   1,   1,   0,     1,       2,   0,     16,  8176, 2,    18,      2,     14,  2,    2",
        "anonymous_hugetlb_64kb, 1, 0xfffbff0000,   1,   32,  991,   34,      0,   1024,  0,   8192, 0,    0,       1024,  0,   7168, 0",
        "anonymous_hugetlb_64kb, 2, 0xfffbff0000,   1,   32,  991,   34,      0,   1024,  0,   8192, 0,    0,       1024,  0,   7168, 0",
    })
    void everyBackingAndPhaseAtOneAndTwoVcpus(String backing, int vcpus, String base, long cT1, long cT2, long cT3, long cTables,
            long uP2, long uP3, long uT2, long uT3, long uBbm, long uTables, long dirty, long aT2, long aT3, long coalesced) {
        KvmPageTableSelftest.Result r = run(backing, 64 * M, vcpus);
        assertThat(r.plan.gpa).as("base").isEqualTo(Long.decode(base));
        assertThat(r.phases).extracting(PhaseReport::name).containsExactly("create", "log-enable", "update", "log-disable", "adjust");

        PhaseReport create = r.phase("create");
        assertThat(f(create, FaultType.TRANSLATION, 1)).as("create T1").isEqualTo(cT1);
        assertThat(f(create, FaultType.TRANSLATION, 2)).as("create T2").isEqualTo(cT2);
        assertThat(f(create, FaultType.TRANSLATION, 3)).as("create T3").isEqualTo(cT3);
        assertThat(create.faults()).as("create: translation faults only").isEqualTo(cT1 + cT2 + cT3);
        assertThat(create.counter("tables-installed")).as("create tables").isEqualTo(cTables);
        assertThat(create.counter("bbm")).isZero();

        PhaseReport enable = r.phase("log-enable");
        assertThat(enable.counter("tlbi-range")).as("one range TLBI over the slot").isEqualTo(1);
        assertThat(enable.faults()).isZero();

        PhaseReport update = r.phase("update");
        assertThat(f(update, FaultType.PERMISSION, 2)).as("update P2").isEqualTo(uP2);
        assertThat(f(update, FaultType.PERMISSION, 3)).as("update P3").isEqualTo(uP3);
        assertThat(f(update, FaultType.TRANSLATION, 2)).as("update T2").isEqualTo(uT2);
        assertThat(f(update, FaultType.TRANSLATION, 3)).as("update T3").isEqualTo(uT3);
        assertThat(update.faults()).as("update: nothing else").isEqualTo(uP2 + uP3 + uT2 + uT3);
        assertThat(update.counter("bbm")).as("blocks broken for a page").isEqualTo(uBbm);
        assertThat(update.counter("tables-installed")).as("update tables").isEqualTo(uTables);
        assertThat(update.counter("splits")).as("no eager split").isZero();
        assertThat(update.counter("tlbi-local")).as("one local TLBI per relaxed page").isEqualTo(uP3);
        assertThat(r.written.cardinality()).as("dirty").isEqualTo(dirty);
        assertThat(r.dirtyLogExact()).isTrue();

        PhaseReport adjust = r.phase("adjust");
        assertThat(f(adjust, FaultType.TRANSLATION, 2)).as("adjust T2").isEqualTo(aT2);
        assertThat(f(adjust, FaultType.TRANSLATION, 3)).as("adjust T3").isEqualTo(aT3);
        assertThat(adjust.faults()).isEqualTo(aT2 + aT3);
        assertThat(adjust.counter("coalesced")).as("coalesced").isEqualTo(coalesced);
        assertThat(r.memoryReturned()).isTrue();
        assertThat(r.passed()).isTrue();
    }

    @Test
    void theDefaultRunIsTheSelftestsDefault() {
        // 1 vCPU, 1 GiB, anonymous, P40V48_4K. Base = 2^40 - 1G - 4K = 0xff_bfff_f000: the last
        // page of L1 510 and all but the last page of L1 511. create writes every page: page 0
        // T1 (L1 510 empty), page 1 (0xff_c000_0000) T1 (L1 511 empty), each further 2M
        // region's first page T2 (513 regions: 1 page, 511 full, 511 pages; 513 - 2 = 511), the
        // rest T3 (262144 - 513 = 261631); tables 2 L2 + 513 L3. update: 262144 x P3, all dirty.
        KvmPageTableSelftest.Options o = KvmPageTableSelftest.Options.defaults();
        assertThat(o.vcpus()).isEqualTo(1);
        assertThat(o.memory()).isEqualTo(G);
        assertThat(o.backing()).isEqualTo(Backing.parse("anonymous"));
        assertThat(o.mode()).isEqualTo(GuestMode.P40V48_4K);
        assertThat(o.schedule()).isEqualTo(KvmPageTableSelftest.Schedule.CONCURRENT);
        KvmPageTableSelftest.Result r = KvmPageTableSelftest.run(VmConfig.defaults(), o);
        assertThat(r.plan.gpa).isEqualTo(0xff_bfff_f000L);
        PhaseReport create = r.phase("create");
        assertThat(f(create, FaultType.TRANSLATION, 1)).isEqualTo(2);
        assertThat(f(create, FaultType.TRANSLATION, 2)).isEqualTo(511);
        assertThat(f(create, FaultType.TRANSLATION, 3)).isEqualTo(261_631);
        assertThat(create.counter("tables-installed")).isEqualTo(515);
        assertThat(r.phase("update").faults()).isEqualTo(f(r.phase("update"), FaultType.PERMISSION, 3)).isEqualTo(262_144);
        assertThat(r.phase("adjust").faults()).isZero();
        assertThat(r.written.cardinality()).isEqualTo(262_144);
        assertThat(r.passed()).isTrue();
    }

    @Test
    void hugetlbOneGigabyteMapsALevelOneBlockThatUpdateBreaksAndAdjustRestores() {
        // aligned 1G: base = align_down(2^40 - 1G - 4K, 1G) = 0xff_8000_0000 (L1 510). create:
        // one T1, one 1G block. update: the write P1; logging maps 4K, so the block is broken for
        // an L2 table with an L3 table under it (page 0); then the second half, pages 131072..
        // 262143 = 2M regions 256..511: each first page T2 (256, one L3 table each), the rest T3
        // (131072 - 256 = 130816); 1 dirty. adjust: page 1 T3, mapped as the 1G block over the
        // L2 table (coalesced, 1 + 257 tables freed); everything else hits.
        KvmPageTableSelftest.Result r = run("anonymous_hugetlb_1gb", G, 1);
        assertThat(r.plan.gpa).isEqualTo(0xff_8000_0000L);
        assertThat(r.plan.mappingSize).isEqualTo(G);
        assertThat(r.phase("create").faults()).isEqualTo(f(r.phase("create"), FaultType.TRANSLATION, 1)).isEqualTo(1);
        assertThat(r.afterCreate.entriesAt(1)).isEqualTo(1);
        PhaseReport update = r.phase("update");
        assertThat(f(update, FaultType.PERMISSION, 1)).isEqualTo(1);
        assertThat(f(update, FaultType.TRANSLATION, 2)).isEqualTo(256);
        assertThat(f(update, FaultType.TRANSLATION, 3)).isEqualTo(130_816);
        assertThat(update.faults()).isEqualTo(1 + 256 + 130_816);
        assertThat(update.counter("bbm")).isEqualTo(1);
        assertThat(update.counter("tables-installed")).isEqualTo(2 + 256);
        assertThat(r.written.cardinality()).isEqualTo(1);
        PhaseReport adjust = r.phase("adjust");
        assertThat(adjust.faults()).isEqualTo(f(adjust, FaultType.TRANSLATION, 3)).isEqualTo(1);
        assertThat(adjust.counter("coalesced")).isEqualTo(1);
        assertThat(r.adjustDifference).isNull();
        assertThat(r.passed()).isTrue();
    }

    @Test
    void sizesRoundUpToTheLargerOfBackingAndGuestPage() {
        VmConfig c = VmConfig.defaults();
        // 3M of THP: up to 4M, two blocks (aligned 2M: base = align_down(2^40 - 4M - 4K, 2M)).
        KvmPageTableSelftest.Plan thp = KvmPageTableSelftest.plan(c, options("anonymous_thp", 3 * M, 1));
        assertThat(thp.size).isEqualTo(4 * M);
        assertThat(thp.gpa).isEqualTo((1L << 40) - 6 * M);
        assertThat(run("anonymous_thp", 3 * M, 1).phase("create").faults()).isEqualTo(2);
        // One byte of 1G hugetlb is 1G; 100K of anonymous memory in a 64K-page guest is 128K.
        assertThat(KvmPageTableSelftest.plan(c, options("anonymous_hugetlb_1gb", 1, 1)).size).isEqualTo(G);
        KvmPageTableSelftest.Plan guest64k = KvmPageTableSelftest.plan(c, options("anonymous", 100 << 10, 1).mode(GuestMode.P40V48_64K));
        assertThat(guest64k.size).isEqualTo(128 << 10);
        assertThat(guest64k.alignment).isEqualTo(64 << 10);
    }

    @Test
    void theBaseFollowsTheModeAndDashP() {
        VmConfig c = VmConfig.defaults();
        // -p 0x40000000: 64M of 4K pages from 1G, which is 2M-aligned: 32 full regions, so
        // create is T1 (L1 entry 1 empty), 31 x T2, 16384 - 32 = 16352 x T3.
        KvmPageTableSelftest.Result p = KvmPageTableSelftest.run(c, options("anonymous", 64 * M, 1).physOffset(0x4000_0000L));
        assertThat(p.plan.gpa).isEqualTo(0x4000_0000L);
        PhaseReport create = p.phase("create");
        assertThat(f(create, FaultType.TRANSLATION, 1)).isEqualTo(1);
        assertThat(f(create, FaultType.TRANSLATION, 2)).isEqualTo(31);
        assertThat(f(create, FaultType.TRANSLATION, 3)).isEqualTo(16_352);
        // -p is aligned down to the backing's granularity.
        assertThat(KvmPageTableSelftest.plan(c, options("anonymous_thp", 64 * M, 1).physOffset(0x4012_3456L)).gpa).isEqualTo(0x4000_0000L);
        // A 64K-page guest aligns to 64K: (2^40 / 64K - 1 - 1024) * 64K = 2^40 - 64M - 64K.
        assertThat(KvmPageTableSelftest.plan(c, options("anonymous", 64 * M, 1).mode(GuestMode.P40V48_64K)).gpa).isEqualTo(0xff_fbff_0000L);
        // P36V48_4K: 2^36 - 64M - 4K, with the counts of P40 (a 3-level table again).
        KvmPageTableSelftest.Result p36 = KvmPageTableSelftest.run(c, options("anonymous", 64 * M, 1).mode(GuestMode.P36V48_4K));
        assertThat(p36.plan.gpa).isEqualTo(0xf_fbff_f000L);
        assertThat(f(p36.phase("create"), FaultType.TRANSLATION, 3)).isEqualTo(16_351);
        // P48V48_4K: 2^48 - 64M - 4K under a 4-level table: the first fault is T0.
        KvmPageTableSelftest.Result p48 = KvmPageTableSelftest.run(c, options("anonymous", 64 * M, 1).mode(GuestMode.P48V48_4K));
        assertThat(p48.plan.gpa).isEqualTo(0xffff_fbff_f000L);
        assertThat(f(p48.phase("create"), FaultType.TRANSLATION, 0)).isEqualTo(1);
        assertThat(f(p48.phase("create"), FaultType.TRANSLATION, 2)).isEqualTo(32);
        assertThat(f(p48.phase("create"), FaultType.TRANSLATION, 3)).isEqualTo(16_351);
    }

    @Test
    void guestModesAreTheSelftestsWithTheirIds() {
        assertThat(GuestMode.P40V48_4K.id()).isEqualTo(6);
        assertThat(GuestMode.P36V48_4K.id()).isEqualTo(12);
        assertThat(GuestMode.P36V47_16K.id()).isEqualTo(16);
        assertThat(GuestMode.P40V48_4K.description()).isEqualTo("PA-bits:40, VA-bits:48, 4K pages");
        assertThat(GuestMode.parse("6")).isEqualTo(GuestMode.P40V48_4K);
        assertThat(GuestMode.parse("p36v48_64k")).isEqualTo(GuestMode.P36V48_64K);
        assertThatThrownBy(() -> GuestMode.parse("9")).hasMessageContaining("not an arm64 mode");
        assertThatThrownBy(() -> GuestMode.parse("99")).hasMessageStartingWith("-m: 99");
        // guest_modes_append_default: a 40-bit 4K-only host runs P40V48_4K then P36V48_4K; a
        // 48-bit host with all three granules runs 9 modes (every P48/P40/P36 and P36V47_16K).
        assertThat(GuestMode.supported(40, EnumSet.of(Granule.G4K))).containsExactly(GuestMode.P40V48_4K, GuestMode.P36V48_4K);
        List<GuestMode> all = GuestMode.supported(48, EnumSet.allOf(Granule.class));
        assertThat(all).hasSize(10).startsWith(GuestMode.P48V48_4K).endsWith(GuestMode.P36V47_16K);
    }

    @Test
    void backingsAreNamedAsTheSelftestNamesThem() {
        Granule g = Granule.G4K;
        assertThat(Backing.parse("hugetlb")).as("the host default, no longer 1G").isEqualTo(Backing.parse("anonymous_hugetlb"))
                .isEqualTo(Backing.HUGETLB);
        assertThat(Backing.HUGETLB.size(g)).isEqualTo(2 * M);
        assertThat(Backing.parse("anonymous_hugetlb_1gb").mappingSize(g)).isEqualTo(G);
        assertThat(Backing.parse("anonymous_hugetlb_32mb").mappingSize(g)).as("CONT_PMD: PMD blocks").isEqualTo(2 * M);
        assertThat(Backing.parse("anonymous_hugetlb_64kb").mappingSize(g)).as("CONT_PTE: pages").isEqualTo(4096);
        assertThat(Backing.parse("anonymous_hugetlb_1gb").mappingSize(Granule.G16K)).as("CONT_PMD with 16K").isEqualTo(32 * M);
        assertThat(Backing.parse("anonymous_thp").size(Granule.G64K)).isEqualTo(512 * M);
        assertThat(Backing.parse("shmem").selftestName()).isEqualTo("shmem");
        assertThat(Backing.parse("page").selftestName()).isEqualTo("anonymous");
        assertThatThrownBy(() -> Backing.parse("shared")).hasMessageStartingWith("backing: shared is not one of anonymous");
        assertThatThrownBy(() -> Backing.parse("anonymous_hugetlb_16gb").check(g)).hasMessageContaining("anonymous_hugetlb_1gb");
        Backing.parse("anonymous_hugetlb_16gb").check(Granule.G64K);
    }

    @ParameterizedTest
    @ValueSource(strings = {"anonymous", "anonymous_thp"})
    void twoConcurrentVcpusKeepWhatNoInterleavingChanges(String backing) {
        // 16M; checking mode. Whatever the order, each page (or block) is installed once, every
        // page is dirty once (anonymous: 4096; thp: 8 blocks' first pages), each block is broken
        // once and coalesced once, and a vCPU faults at most as often as it would alone.
        VmConfig c = VmConfig.defaults().withChecking(true);
        KvmPageTableSelftest.Result serial = KvmPageTableSelftest.run(c, options(backing, 16 * M, 1));
        KvmPageTableSelftest.Result r = KvmPageTableSelftest.run(c, options(backing, 16 * M, 2).schedule(KvmPageTableSelftest.Schedule.CONCURRENT));
        for (String name : List.of("create", "update", "adjust")) {
            PhaseReport one = serial.phase(name), p = r.phase(name);
            assertThat(p.faults() - p.vcpus().raced()).as(name + " faults").isBetween(one.faults(), 2 * one.faults());
            assertThat(p.counter("tables-installed")).as(name + " tables").isEqualTo(one.counter("tables-installed"));
            assertThat(p.counter("coalesced")).as(name + " coalesced").isEqualTo(one.counter("coalesced"));
            assertThat(p.counter("tlb-conflicts")).as(name).isZero();
        }
        assertThat(r.phase("update").counter("bbm")).isEqualTo(serial.phase("update").counter("bbm"));
        assertThat(r.written).isEqualTo(serial.written);
        assertThat(r.dirtyLogExact()).isTrue();
        assertThat(r.adjustDifference).isNull();
        assertThat(r.memoryReturned()).isTrue();
    }

    @Test
    void partitionGivesEachVcpuItsShare() {
        // 64M THP, 2 vCPUs partitioned: vCPU 0 creates blocks 0..15 (T1, 15 x T2), vCPU 1 reads
        // blocks 16..31 (16 x T2; no zero page in ptlab's host, so they map writable). update: each
        // writes its own blocks' first pages (32 x P2, 32 dirty).
        KvmPageTableSelftest.Result r = KvmPageTableSelftest.run(VmConfig.defaults(), options("anonymous_thp", 64 * M, 2).partition(true));
        assertThat(f(r.phase("create"), FaultType.TRANSLATION, 1)).isEqualTo(1);
        assertThat(f(r.phase("create"), FaultType.TRANSLATION, 2)).isEqualTo(31);
        assertThat(f(r.phase("update"), FaultType.PERMISSION, 2)).isEqualTo(32);
        assertThat(r.written.cardinality()).isEqualTo(32);
        assertThat(r.dirtyLogExact()).isTrue();
    }

    @Test
    void eagerSplitMovesTheSplittingIntoLogEnableAndLeavesOnlyPermissionFaults() {
        // 64M THP, chunk 2M: log-enable splits the 32 blocks into pages (read-only, as the blocks
        // were), so update takes one P3 per written page and its reads hit; adjust reads mapped
        // pages only and cannot bring blocks back (KVM coalesces only on faults).
        KvmPageTableSelftest.Result r = KvmPageTableSelftest.run(VmConfig.defaults().withEagerSplitChunk(2 * M),
                options("anonymous_thp", 64 * M, 1));
        PhaseReport enable = r.phase("log-enable");
        assertThat(enable.counter("splits")).isEqualTo(32);
        assertThat(enable.counter("tables-installed")).isEqualTo(32);
        PhaseReport update = r.phase("update");
        assertThat(update.faults()).isEqualTo(f(update, FaultType.PERMISSION, 3)).isEqualTo(32);
        assertThat(update.counter("bbm")).isZero();
        assertThat(r.dirtyLogExact()).isTrue();
        assertThat(r.phase("adjust").faults()).isZero();
        assertThat(r.afterAdjust.entriesAt(3)).isEqualTo(32 * 512);
        assertThat(r.framesInUseAtEnd).isZero();
    }

    @ParameterizedTest
    @ValueSource(strings = {"anonymous", "anonymous_thp", "shmem", "anonymous_hugetlb_32mb", "anonymous_hugetlb_64kb"})
    void processMemoryGivesTheSameStage2CountsAsAFixedHostRange(String backing) {
        // One vCPU, so every count is exact. Faulting through GUP must change nothing stage-2 sees:
        // the host hands out pages (or 2M THPs and hugetlb pages, congruent with the IPA) and no
        // notifier fires. With a fixed range the backing's mapping size bounds the fault's mapping
        // instead (32M hugetlb as 2M blocks, 64K hugetlb as pages), as the host's page size does.
        long memory = backing.equals("anonymous") || backing.equals("shmem") ? 8 * M : 64 * M;
        VmConfig c = VmConfig.defaults().withChecking(true);
        KvmPageTableSelftest.Result process = KvmPageTableSelftest.run(c, options(backing, memory, 1));
        KvmPageTableSelftest.Result fixed = KvmPageTableSelftest.run(c.withHostMemory(HostMemoryModel.FIXED), options(backing, memory, 1));
        assertThat(process.phases).hasSameSizeAs(fixed.phases);
        for (int i = 0; i < fixed.phases.size(); i++) {
            PhaseReport p = process.phases.get(i), f = fixed.phases.get(i);
            for (FaultType t : FaultType.values()) assertThat(p.faults(t)).as(p.name() + " " + t.label()).isEqualTo(f.faults(t));
            for (VmCounter k : VmCounter.values()) {
                if (!k.level() && k != VmCounter.MEMCACHE_REFILLS) assertThat(p.get(k)).as(p.name() + " " + k).isEqualTo(f.get(k));
            }
            assertThat(p.vcpus().seqRetries()).as(p.name()).isZero();
            for (NotifierEvent e : NotifierEvent.values()) assertThat(p.get(HostCounter.notifier(e))).as(p.name() + " " + e).isZero();
            for (HostCounter k : HostCounter.ALL) assertThat(f.get(k)).as("fixed " + k).isZero();
        }
        // The host pages create's touches fault in: one per touch. (The kernel's host would fault a
        // whole 32M or 64K hugetlb folio at once; ptlab's host mm holds those as 2M hugetlb pages
        // and base pages, which stage-2 maps the same way.)
        PhaseReport create = process.phase("create");
        switch (backing) {
            case "anonymous_thp": assertThat(create.counter("host-thp-page")).as("one THP per 2M block").isEqualTo(32); break;
            case "anonymous_hugetlb_32mb": assertThat(create.counter("host-hugetlb-page")).as("one 2M page per 32M touched").isEqualTo(2); break;
            case "anonymous_hugetlb_64kb": assertThat(create.counter("host-anon-page")).as("one page per 64K touched").isEqualTo(1024); break;
            case "shmem": assertThat(create.counter("host-shmem-page")).as("one shared page per page").isEqualTo(2048); break;
            default: assertThat(create.counter("host-anon-page")).as("one host page per guest page").isEqualTo(2048); break;
        }
        // The same leaves with the same attributes; only the output addresses (bits 47:12) may differ.
        assertThat(process.afterCreate.differenceFrom(fixed.afterCreate, 0x0000_FFFF_FFFF_F000L)).isNull();
        assertThat(process.memoryReturned()).as("stage-2 frames, host pages and host table frames all back").isTrue();
    }

    @Test
    void impossibleConfigurationsAreRefusedNamingTheOption() {
        VmConfig c = VmConfig.defaults();
        assertThatThrownBy(() -> KvmPageTableSelftest.plan(c, options("anonymous", 64 * G, 1).mode(GuestMode.P36V48_4K)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("memory: 64G does not fit below the top of the 36-bit");
        assertThatThrownBy(() -> KvmPageTableSelftest.plan(c, options("anonymous", 64 * M, 1).physOffset(0xff_ff00_0000L)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("-p: 0xffff000000 puts the 64M region beyond");
        assertThatThrownBy(() -> KvmPageTableSelftest.plan(c, options("anonymous_thp", 4 * M, 3).partition(true)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("vcpus: 3 is more than the 2 large pages");
        assertThatThrownBy(() -> KvmPageTableSelftest.plan(c, options("anonymous", 4 * M, 513)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("vcpus: 513");
        assertThatThrownBy(() -> KvmPageTableSelftest.plan(c, options("anonymous_hugetlb_512mb", 4 * M, 1)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a hugetlb size of a 4k-page arm64 host");
        assertThatThrownBy(() -> new Vm(VmConfig.defaults().withEagerSplitChunk(3 * M)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("eager split chunk");
    }
}
