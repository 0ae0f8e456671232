package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** {@link Stage2PageTable#map}: leaf placement, BBM, the perms-only filter, coalescing, splitting on map, ENOMEM. */
class Stage2MapTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;

    /** Bytes one entry maps at {@code level}, from the granule's page shift alone. */
    static long span(Granule g, int level) {
        int pageShift = g == Granule.G4K ? 12 : g == Granule.G16K ? 14 : 16;
        return 1L << (pageShift + (pageShift - 3) * (3 - level));
    }

    /** Lowest level with blocks: 4K has 1G and 2M blocks, 16K and 64K only level-2 blocks. */
    static int minBlockLevel(Granule g) {
        return g == Granule.G4K ? 1 : 2;
    }

    /** Reference decomposition of a fresh mapping into the largest aligned leaves, as {addr, level, pa}. */
    static List<List<Long>> greedy(Granule g, long ipa, long size, long pa) {
        List<List<Long>> out = new ArrayList<>();
        long a = ipa, end = ipa + size;
        while (a < end) {
            for (int level = minBlockLevel(g); level <= 3; level++) {
                long s = span(g, level);
                long p = pa + (a - ipa);
                if (a % s == 0 && p % s == 0 && end - a >= s) {
                    out.add(List.of(a, (long) level, p));
                    a += s;
                    break;
                }
            }
        }
        return out;
    }

    static List<List<Long>> actual(Fixture f, long ipa, long size) {
        List<List<Long>> out = new ArrayList<>();
        for (long[] l : Fixture.leaves(f.table, ipa, size)) {
            out.add(List.of(l[0], l[1], f.table.geometry().outputAddress(l[2])));
        }
        return out;
    }

    @ParameterizedTest
    @EnumSource(Granule.class)
    void placesTheLargestLeavesWhereIpaAndPaAreAligned(Granule g) {
        Fixture f = new Fixture(g, 40, 0);
        long page = span(g, 3), block = span(g, 2), big = g == Granule.G4K ? G1 : block;
        // page, block(s), largest block, block, page: IPA and PA congruent modulo the largest block
        long ipa = 4 * big - block - page;
        long size = page + block + big + block + page;
        long pa = ipa + 8 * big;
        assertThat(f.map(ipa, size, pa, Prot.RW)).isEqualTo(Status.OK);
        List<List<Long>> expected = greedy(g, ipa, size, pa);
        assertThat(actual(f, ipa, size)).containsExactlyElementsOf(expected);
        long blocks = expected.stream().filter(l -> l.get(1) < 3).count();
        assertThat(blocks).isGreaterThanOrEqualTo(g == Granule.G4K ? 3 : 3);
        // The MMU sees the same leaves: first and last byte of each.
        for (List<Long> l : expected) {
            long a = l.get(0), s = span(g, l.get(1).intValue());
            assertThat(f.pa(a)).isEqualTo(l.get(2));
            assertThat(f.mmu.lastLevel()).isEqualTo(l.get(1).intValue());
            assertThat(f.pa(a + s - 1)).isEqualTo(l.get(2) + s - 1);
        }
        // PA congruent only modulo the page: pages only; modulo the smaller block (4K): 2M blocks.
        long ipa2 = 16 * big, size2 = 2 * block + 4 * page;
        f.map(ipa2, size2, 8 * big + page, Prot.R);
        assertThat(actual(f, ipa2, size2)).containsExactlyElementsOf(greedy(g, ipa2, size2, 8 * big + page))
                .allMatch(l -> l.get(1) == 3);
        if (g == Granule.G4K) {
            long ipa3 = 20 * G1;
            f.map(ipa3, G1 + M2, 3 * G1 + M2, Prot.R);
            assertThat(actual(f, ipa3, G1 + M2)).hasSize(513).allMatch(l -> l.get(1) == 2)
                    .containsExactlyElementsOf(greedy(g, ipa3, G1 + M2, 3 * G1 + M2));
        }
        f.destroyAndCheck();
    }

    @ParameterizedTest
    @EnumSource(Granule.class)
    void randomMappingsIntoAnEmptyTableMatchTheGreedyReference(Granule g) {
        long seed = new SplittableRandom().nextLong();
        SplittableRandom rnd = new SplittableRandom(seed);
        long page = span(g, 3), block = span(g, 2);
        for (int i = 0; i < 20; i++) {
            Fixture f = new Fixture(g, 40, 0);
            long ipa = rnd.nextLong(64) * block + rnd.nextLong(block / page) * page;
            // PA congruent to the IPA modulo a page, a block, or the largest block
            long modulus = new long[] {page, block, g == Granule.G4K ? G1 : block}[rnd.nextInt(3)];
            long pa = 0x100L * G1 + rnd.nextLong((1L << 44) / modulus) * modulus + (ipa % modulus);
            long size = page * (1 + rnd.nextLong(4 * block / page));
            if (g == Granule.G4K && modulus == G1 && rnd.nextBoolean()) {
                size += G1; // 1G blocks possible: keep the PA congruent modulo 1G
            } else if (rnd.nextBoolean() && modulus > page) {
                pa += page * (1 + rnd.nextLong(modulus / page - 1)); // congruent modulo a smaller size only
            }
            f.map(ipa, size, pa, Prot.RWX);
            assertThat(actual(f, ipa, size)).as("seed %d: ipa 0x%x size 0x%x pa 0x%x", seed, ipa, size, pa)
                    .containsExactlyElementsOf(greedy(g, ipa, size, pa));
            f.destroyAndCheck();
        }
    }

    @Test
    void replacingAMappingWithAnotherPaGoesThroughBreakBeforeMake() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(M2, M2, 0x8000_0000L, Prot.RW);
        f.map(0, K4, 0x9000_0000L, Prot.RWX);
        assertThat(f.pa(M2 + 0x10)).isEqualTo(0x8000_0010L); // cached in the TLB now
        assertThat(f.pa(0x10)).isEqualTo(0x9000_0010L);
        long bbm = f.table.counters().breakBeforeMake();
        long dOps = f.mem.cacheMaintenance().dcacheOps(), dBytes = f.mem.cacheMaintenance().dcacheBytes();
        long iOps = f.mem.cacheMaintenance().icacheOps(), iBytes = f.mem.cacheMaintenance().icacheBytes();
        f.tlbs.resetCounters();

        f.map(M2, M2, 0xA000_0000L, Prot.RWX);
        assertThat(f.table.counters().breakBeforeMake()).isEqualTo(bbm + 1);
        assertThat(f.tlbs.ipaFlushes()).isEqualTo(1);
        assertThat(f.tlbs.totalFlushes()).isEqualTo(1);
        assertThat(f.pa(M2 + 0x10)).as("no stale TLB entry").isEqualTo(0xA000_0010L);
        assertThat(f.mmu.lastLevel()).isEqualTo(2);
        // cacheable without FWB: D-cache clean of the new 2M target; executable: I-cache invalidate
        assertThat(f.mem.cacheMaintenance().dcacheOps()).isEqualTo(dOps + 1);
        assertThat(f.mem.cacheMaintenance().dcacheBytes()).isEqualTo(dBytes + M2);
        assertThat(f.mem.cacheMaintenance().icacheOps()).isEqualTo(iOps + 1);
        assertThat(f.mem.cacheMaintenance().icacheBytes()).isEqualTo(iBytes + M2);

        f.map(0, K4, 0x9000_1000L, Prot.R);
        assertThat(f.table.counters().breakBeforeMake()).isEqualTo(bbm + 2);
        assertThat(f.tlbs.ipaFlushes()).isEqualTo(2);
        assertThat(f.pa(0x10)).isEqualTo(0x9000_1010L);
        f.assertFault(0x10, Access.WRITE, FaultType.PERMISSION, 3);
        f.destroyAndCheck();
    }

    @Test
    void permissionOnlyDifferenceOrIdenticalEntryIsLeftAlone() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(0, 4 * K4, 0x8000_0000L, Prot.R);
        f.map(M2, M2, 0x8020_0000L, Prot.R);
        Map<Long, List<Long>> before = Fixture.snapshot(f.table);
        long bbm = f.table.counters().breakBeforeMake(), raced = f.table.counters().raced();
        f.tlbs.resetCounters();
        for (Prot p : new Prot[] {Prot.R, Prot.RW, Prot.RX, Prot.RWX, Prot.of(Prot.R_BIT | Prot.PX_BIT)}) {
            assertThat(f.map(0, 4 * K4, 0x8000_0000L, p)).isEqualTo(Status.OK);
            assertThat(f.map(M2, M2, 0x8020_0000L, p)).isEqualTo(Status.OK);
            assertThat(f.map(K4, K4, 0x8000_1000L, p, WalkFlags.HANDLE_FAULT)).isEqualTo(Status.RACED);
            assertThat(f.map(M2, M2, 0x8020_0000L, p, WalkFlags.HANDLE_FAULT | WalkFlags.SHARED)).isEqualTo(Status.RACED);
        }
        assertThat(Fixture.snapshot(f.table)).isEqualTo(before);
        assertThat(f.table.counters().breakBeforeMake()).isEqualTo(bbm);
        assertThat(f.table.counters().raced()).isEqualTo(raced + 5 * (4 + 1 + 1 + 1));
        assertThat(f.tlbs.totalFlushes()).isZero();
        f.assertFault(0, Access.WRITE, FaultType.PERMISSION, 3);
        f.destroyAndCheck();
    }

    @Test
    void faultWalkStopsAtTheFirstRacedEntryWhileARangeWalkGoesOn() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(2 * K4, K4, 0x8000_2000L, Prot.R);
        // fault walk: pages 0 and 1 installed, page 2 raced, page 3 never reached
        assertThat(f.map(0, 4 * K4, 0x8000_0000L, Prot.RW, WalkFlags.HANDLE_FAULT)).isEqualTo(Status.RACED);
        assertThat(f.pa(0)).isEqualTo(0x8000_0000L);
        assertThat(f.pa(K4)).isEqualTo(0x8000_1000L);
        f.assertFault(3 * K4, Access.READ, FaultType.TRANSLATION, 3);
        f.assertFault(2 * K4, Access.WRITE, FaultType.PERMISSION, 3);
        // range walk: skips the raced entry, installs the rest
        assertThat(f.map(0, 4 * K4, 0x8000_0000L, Prot.RW)).isEqualTo(Status.OK);
        assertThat(f.pa(3 * K4)).isEqualTo(0x8000_3000L);
        f.assertFault(2 * K4, Access.WRITE, FaultType.PERMISSION, 3);
        f.destroyAndCheck();
    }

    @Test
    void softwareBitOnlyChangeIsStoredWithoutBreakBeforeMake() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(M2, M2, 0x8020_0000L, Prot.RW);
        f.pa(M2);
        long old = f.table.getLeaf(M2).pte();
        long bbm = f.table.counters().breakBeforeMake();
        f.tlbs.resetCounters();
        assertThat(f.map(M2, M2, 0x8020_0000L, Prot.RW.with(Prot.SW1_BIT))).isEqualTo(Status.OK);
        assertThat(f.table.getLeaf(M2).pte()).isEqualTo(old | 1L << 56);
        assertThat(f.table.counters().breakBeforeMake()).isEqualTo(bbm);
        assertThat(f.tlbs.totalFlushes()).isZero();
        // software bits and permissions together: a real change, so BBM
        assertThat(f.map(M2, M2, 0x8020_0000L, Prot.R)).isEqualTo(Status.OK);
        assertThat(f.table.getLeaf(M2).pte()).isEqualTo(old & ~Stage2Descriptor.S2AP_W);
        assertThat(f.table.counters().breakBeforeMake()).isEqualTo(bbm + 1);
        assertThat(f.tlbs.ipaFlushes()).isEqualTo(1);
        f.assertFault(M2, Access.WRITE, FaultType.PERMISSION, 2);
        // in a shared walk even a software-bit change goes through BBM (no plain store races other walkers)
        assertThat(f.map(M2, M2, 0x8020_0000L, Prot.R.with(Prot.SW0_BIT), WalkFlags.SHARED)).isEqualTo(Status.OK);
        assertThat(f.table.counters().breakBeforeMake()).isEqualTo(bbm + 2);
        assertThat(f.table.getLeaf(M2).pte()).isEqualTo((old & ~Stage2Descriptor.S2AP_W) | 1L << 55);
        f.destroyAndCheck();
    }

    @Test
    void blockOverATableCoalescesAndFreesTheTable() {
        for (int flags : new int[] {0, Stage2PageTable.RANGE_TLBI}) {
            Fixture f = new Fixture(Granule.G4K, 40, flags);
            f.map(M2 + K4, 3 * K4, 0x7000_0000L, Prot.RW);
            f.map(0, K4, 0x7000_0000L, Prot.RW); // another table under the same L2 table
            assertThat(f.tableFrames()).isEqualTo(3); // L2 + two L3
            assertThat(f.pa(M2 + K4)).isEqualTo(0x7000_0000L);
            long freed = f.table.counters().tablesFreed();
            f.tlbs.resetCounters();
            f.map(M2, M2, 0x8020_0000L, Prot.RW);
            assertThat(f.table.getLeaf(M2 + K4)).isEqualTo(new Leaf(f.table.getLeaf(M2).pte(), 2));
            assertThat(f.tableFrames()).as("the L3 table under the block is freed").isEqualTo(2);
            assertThat(f.table.counters().tablesFreed()).isEqualTo(freed + 1);
            f.table.checkRefcounts();
            if (flags == 0) {
                assertThat(f.tlbs.vmidFlushes()).isEqualTo(1);
                assertThat(f.tlbs.rangeFlushes()).isZero();
            } else {
                assertThat(f.tlbs.rangeFlushes()).isEqualTo(1);
                assertThat(f.tlbs.vmidFlushes()).isZero();
            }
            assertThat(f.pa(M2 + K4)).as("the cached page entry is gone").isEqualTo(0x8020_1000L);
            assertThat(f.mmu.lastLevel()).isEqualTo(2);
            assertThat(f.pa(0)).isEqualTo(0x7000_0000L);
            f.destroyAndCheck();
        }
    }

    @Test
    void oneGigabyteBlockOverATreeFreesEveryTableBelow() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(G1 + K4, K4, 0x7000_0000L, Prot.RW);
        f.map(G1 + 5 * M2 + K4, K4, 0x7000_0000L, Prot.RW);
        f.map(G1 + 9 * M2, M2, 0x7020_0000L, Prot.RW);
        assertThat(f.tableFrames()).isEqualTo(3);
        long before = f.table.counters().tablesFreed();
        f.map(G1, G1, 3 * G1, Prot.RW);
        assertThat(f.tableFrames()).isZero();
        assertThat(f.table.counters().tablesFreed()).isEqualTo(before + 3);
        f.table.checkRefcounts();
        assertThat(f.pa(G1 + 9 * M2 + 5)).isEqualTo(3 * G1 + 9 * M2 + 5);
        assertThat(f.mmu.lastLevel()).isEqualTo(1);
        f.destroyAndCheck();
    }

    @Test
    void blockThatMustShrinkBecomesATableWithOnlyTheNewRange() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(M2, M2, 0x8020_0000L, Prot.RW);
        assertThat(f.pa(M2 + 3 * K4)).isEqualTo(0x8020_3000L);
        long bbm = f.table.counters().breakBeforeMake();
        f.tlbs.resetCounters();
        // even a page the block already mapped the same way: the rest of the block is dropped
        f.map(M2 + 2 * K4, K4, 0x8020_2000L, Prot.RW);
        assertThat(f.table.counters().breakBeforeMake()).isEqualTo(bbm + 1);
        assertThat(f.tlbs.ipaFlushes()).isEqualTo(1);
        assertThat(f.tableFrames()).isEqualTo(2);
        assertThat(f.pa(M2 + 2 * K4 + 1)).isEqualTo(0x8020_2001L);
        assertThat(f.mmu.lastLevel()).isEqualTo(3);
        f.assertFault(M2 + 3 * K4, Access.READ, FaultType.TRANSLATION, 3);
        f.assertFault(M2, Access.READ, FaultType.TRANSLATION, 3);
        assertThat(Fixture.leaves(f.table, 0, G1)).hasSize(1);
        f.table.checkRefcounts();

        // 1G block shrinking to hold one 2M block
        f.map(2 * G1, G1, 5 * G1, Prot.RW);
        f.map(2 * G1 + 4 * M2, M2, 0x9000_0000L, Prot.RW);
        assertThat(Fixture.leaves(f.table, 2 * G1, G1)).hasSize(1);
        assertThat(f.pa(2 * G1 + 4 * M2)).isEqualTo(0x9000_0000L);
        assertThat(f.mmu.lastLevel()).isEqualTo(2);
        f.assertFault(2 * G1, Access.READ, FaultType.TRANSLATION, 2);
        f.destroyAndCheck();
    }

    @Test
    void emptyCacheIsEnomemAndLeavesTheTableConsistent() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        MemCache empty = new MemCache(f.mem);
        long inUse = f.mem.framesInUse();
        assertThatThrownBy(() -> f.table.map(G1 + 5 * K4, K4, 0x8000_0000L, Prot.RW, empty))
                .isInstanceOfSatisfying(PageTableException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
                    assertThat(e.address()).isEqualTo(G1 + 5 * K4);
                    assertThat(e.level()).isEqualTo(1);
                });
        assertThatThrownBy(() -> f.table.map(0, K4, 0x8000_0000L, Prot.RW, null))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOMEM));
        assertThat(f.mem.framesInUse()).isEqualTo(inUse);
        f.table.checkRefcounts();

        // one frame where two are needed: the L2 table is linked, the L3 allocation fails
        MemCache one = new MemCache(f.mem, 1);
        one.topUp(1);
        assertThatThrownBy(() -> f.table.map(G1 + 5 * K4, K4, 0x8000_0000L, Prot.RW, one))
                .isInstanceOfSatisfying(PageTableException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
                    assertThat(e.level()).isEqualTo(2);
                });
        assertThat(one.size()).isZero();
        assertThat(f.mem.framesInUse()).as("the frame moved from the cache into the table").isEqualTo(inUse + 1);
        f.table.checkRefcounts();
        f.assertFault(G1 + 5 * K4, Access.READ, FaultType.TRANSLATION, 2);

        // a block that would have to shrink stays intact when there is no frame for its table
        f.map(4 * M2, M2, 0x8040_0000L, Prot.RW);
        Map<Long, List<Long>> before = Fixture.snapshot(f.table);
        assertThatThrownBy(() -> f.table.map(4 * M2 + K4, K4, 0x9000_0000L, Prot.RW, empty))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOMEM));
        assertThat(Fixture.snapshot(f.table)).isEqualTo(before);
        assertThat(f.pa(4 * M2 + K4)).isEqualTo(0x8040_1000L);

        // a range that fails part-way keeps what it mapped before the failure
        f.map(0, K4, 0x7000_0000L, Prot.RW);
        assertThatThrownBy(() -> f.table.map(M2 - K4, 2 * K4, 0x6000_0000L, Prot.RW, empty))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.address()).isEqualTo(M2));
        assertThat(f.pa(M2 - K4)).isEqualTo(0x6000_0000L);
        f.assertFault(M2, Access.READ, FaultType.TRANSLATION, 2);
        f.table.checkRefcounts();
        f.destroyAndCheck();
    }

    @Test
    void argumentsAreChecked() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        assertThatThrownBy(() -> f.map(0x800, K4, 0, Prot.RW)).hasMessageContaining("ipa: 0x800");
        assertThatThrownBy(() -> f.map(0, 0x800, 0, Prot.RW)).hasMessageContaining("size: 0x800");
        assertThatThrownBy(() -> f.map(0, 0, 0, Prot.RW)).hasMessageContaining("size");
        assertThatThrownBy(() -> f.map(0, K4, 0x10, Prot.RW)).hasMessageContaining("pa: 0x10");
        assertThatThrownBy(() -> f.map(0, K4, 1L << 48, Prot.RW)).hasMessageContaining("pa");
        assertThatThrownBy(() -> f.map(0, K4, 0, null)).hasMessageContaining("prot");
        assertThatThrownBy(() -> f.map(0, K4, 0, Prot.RWX.with(Prot.DEVICE_BIT))).hasMessageContaining("prot");
        assertThatThrownBy(() -> f.map((1L << 40) - K4, 2 * K4, 0, Prot.RW))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ERANGE));
        assertThat(Fixture.snapshot(f.table).values()).allMatch(l -> l.stream().allMatch(e -> e == 0));
        f.destroyAndCheck();
        assertThatThrownBy(() -> f.map(0, K4, 0, Prot.RW)).isInstanceOf(IllegalStateException.class);

        Fixture id = new Fixture(Granule.G4K, 40, Stage2PageTable.IDMAP);
        assertThatThrownBy(() -> id.map(0, K4, K4, Prot.RW)).hasMessageContaining("identity");
        id.map(M2, M2, M2, Prot.RWX);
        assertThat(id.pa(M2 + 7)).isEqualTo(M2 + 7);
        id.destroyAndCheck();
    }

    @Test
    void fwbTablesUseTheFwbEncodingAndSkipDcacheMaintenance() {
        Fixture f = new Fixture(Granule.G4K, 40, Stage2PageTable.FWB);
        f.map(0, M2, 0x8000_0000L, Prot.RW);
        long pte = f.table.getLeaf(0).pte();
        assertThat(Stage2Descriptor.memAttrField(pte)).isEqualTo(0b0110);
        assertThat(f.mem.cacheMaintenance().dcacheOps()).isZero();
        assertThat(Pte.isValid(pte)).isTrue();
        f.destroyAndCheck();
    }
}
