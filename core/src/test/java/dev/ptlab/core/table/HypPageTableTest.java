package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.PhysicalMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** {@link HypPageTable}: map never replaces a live mapping, unmap stops at holes and never splits, destroy. */
class HypPageTableTest {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;

    PhysicalMemory mem;
    TlbSystem tlbs;
    HypPageTable t;
    Tlb tlb;
    Mmu mmu;

    @BeforeEach
    void setUp() {
        mem = new PhysicalMemory(Fixture.MEM_BASE, 64L << 20, Granule.G4K, true);
        tlbs = new TlbSystem();
        t = new HypPageTable(Geometry.hyp(Granule.G4K, 48), mem, tlbs);
        tlb = new Tlb("cpu0", Granule.G4K);
        tlbs.register(tlb);
        mmu = new Mmu(t.geometry(), mem, tlb, t.rootPa(), 0, false, false);
    }

    @AfterEach
    void tearDown() {
        if (!t.destroyed()) {
            t.checkRefcounts();
            t.destroy();
        }
        assertThat(mem.framesInUse()).isZero();
    }

    private long tableFrames() {
        return mem.framesInUse() - 1;
    }

    private String translate(long va, Access a) {
        return Fixture.describe(mmu.translate(va, a));
    }

    @Test
    void mapPlacesTheLargestLeaves() {
        assertThat(t.geometry().startLevel()).isZero();
        long va = G1 - K4 - M2, size = K4 + M2 + G1 + M2 + K4, pa = va + 4 * G1;
        t.map(va, size, pa, Prot.RX);
        List<List<Long>> actual = new ArrayList<>();
        for (long[] l : Fixture.leaves(t, va, size)) actual.add(List.of(l[0], l[1], t.geometry().outputAddress(l[2])));
        assertThat(actual).containsExactlyElementsOf(Stage2MapTest.greedy(Granule.G4K, va, size, pa))
                .extracting(l -> l.get(1)).containsExactly(3L, 2L, 1L, 2L, 3L);
        assertThat(translate(G1 + 0x1234, Access.READ)).isEqualTo("pa 0x" + Long.toHexString(5 * G1 + 0x1234));
        assertThat(mmu.lastLevel()).isEqualTo(1);
        assertThat(t.counters().leavesInstalled()).isEqualTo(5);
        assertThat(tlbs.totalFlushes()).as("hyp map never invalidates").isZero();
    }

    /**
     * Kernel order (Linux 7.1-rc4 hyp_map_walker): the walk maps in address order and stops with
     * EINVAL at the first live entry it would have to change, so what came before stays mapped
     * (before: a dry run first, EEXIST and nothing changed). Each attempt on its own table; the
     * outcomes are derived from the two mappings made first: pages 16..19 -> 0x8000_0000 (RW)
     * and the 2M block at 4M -> 0x9000_0000 (R).
     */
    @Test
    void mapStopsAtTheFirstLiveConflictWithEinvalAndKeepsWhatItMappedBefore() {
        // {va, size, pa, pages mapped before the conflict, va of the conflict, its level}
        long[][] attempts = {
                {16 * K4, 4 * K4, 0x8800_0000L, 0, 16 * K4, 3},          // another PA: the first page conflicts
                {8 * K4, 16 * K4, 0x7000_0000L, 8, 16 * K4, 3},          // pages 8..15 free, then page 16
                {2 * M2 + 5 * K4, K4, 0x9000_5000L, 0, 2 * M2 + 5 * K4, 2}, // a page inside the live block
                {2 * M2 - K4, 2 * K4, 0x6000_0000L, 1, 2 * M2, 2},        // a free page, then the block
        };
        for (long[] a : attempts) {
            setUp();
            t.map(16 * K4, 4 * K4, 0x8000_0000L, Prot.RW);
            t.map(2 * M2, M2, 0x9000_0000L, Prot.R);
            long installed = t.counters().leavesInstalled();
            PageTableException e = org.assertj.core.api.Assertions.catchThrowableOfType(PageTableException.class,
                    () -> t.map(a[0], a[1], a[2], Prot.RW));
            assertThat(e).as("map 0x%x+0x%x", a[0], a[1]).isNotNull();
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e.address()).isEqualTo(a[4]);
            assertThat(e.level()).isEqualTo((int) a[5]);
            assertThat(e.getMessage()).contains(a[5] == 3 ? "live page" : "hyp_map_walker stores one over the live leaf");
            assertThat(t.counters().leavesInstalled() - installed).as("pages mapped before the conflict").isEqualTo(a[3]);
            for (long k = 0; k < a[3]; k++) {
                assertThat(translate(a[0] + k * K4, Access.READ)).isEqualTo("pa 0x" + Long.toHexString(a[2] + k * K4));
            }
            // the live mappings are untouched
            assertThat(translate(16 * K4 + 0x10, Access.WRITE)).isEqualTo("pa 0x80000010");
            assertThat(translate(2 * M2 + 5 * K4, Access.READ)).isEqualTo("pa 0x90005000");
            assertThat(mmu.lastLevel()).isEqualTo(2);
            t.checkRefcounts();
            assertThat(tlbs.totalFlushes()).isZero();
        }
        // a permission change of a live mapping: refused the same way
        setUp();
        t.map(16 * K4, 4 * K4, 0x8000_0000L, Prot.RW);
        t.map(2 * M2, M2, 0x9000_0000L, Prot.R);
        Map<Long, List<Long>> before = Fixture.snapshot(t);
        assertThatThrownBy(() -> t.map(16 * K4, 4 * K4, 0x8000_0000L, Prot.R))
                .isInstanceOfSatisfying(PageTableException.class, x -> assertThat(x.kernelReturn()).isEqualTo(-22));
        assertThat(Fixture.snapshot(t)).isEqualTo(before);
        // identical: fine, nothing changes
        t.map(16 * K4, 4 * K4, 0x8000_0000L, Prot.RW);
        assertThat(Fixture.snapshot(t)).isEqualTo(before);
        // software bits only: allowed
        t.map(2 * M2, M2, 0x9000_0000L, Prot.R.with(Prot.SW2_BIT));
        assertThat(t.getLeaf(2 * M2).pte()).isEqualTo(before.get(frameOf(2 * M2, 2)).get(2) | 1L << 57);
        assertThat(tlbs.totalFlushes()).isZero();
    }

    /** The L2 table frame translating {@code va}, read directly from the descriptors. */
    private long frameOf(long va, int level) {
        long frame = t.rootPa();
        for (int l = 0; l < level; l++) {
            long e = FRAMES.frame(mem, frame)[Granule.G4K.index(va, l)];
            frame = t.geometry().outputAddress(e);
        }
        return frame;
    }

    @Test
    void unmapStopsAtTheFirstHoleAndReturnsBytesUnmapped() {
        t.map(0, 4 * K4, 0x8000_0000L, Prot.RW);
        t.map(5 * K4, K4, 0x8000_5000L, Prot.RW);
        assertThat(translate(0, Access.READ)).isEqualTo("pa 0x80000000");
        tlbs.resetCounters();
        assertThat(t.unmap(0, 6 * K4)).isEqualTo(4 * K4);
        assertThat(tlbs.hypVaFlushes()).isEqualTo(4);
        for (long a = 0; a < 4 * K4; a += K4) assertThat(translate(a, Access.READ)).isEqualTo("TRANSLATION@3");
        assertThat(translate(5 * K4, Access.READ)).isEqualTo("pa 0x80005000");
        assertThat(t.unmap(4 * K4, 2 * K4)).as("starts at a hole").isZero();
        assertThat(t.unmap(5 * K4, K4)).isEqualTo(K4);
        t.checkRefcounts();
    }

    @Test
    void unmapNeverSplitsABlock() {
        t.map(2 * M2, 2 * M2, 0x8000_0000L, Prot.R);
        Map<Long, List<Long>> before = Fixture.snapshot(t);
        assertThat(t.unmap(2 * M2 + K4, K4)).isZero();
        assertThat(t.unmap(2 * M2, K4)).isZero();
        assertThat(t.unmap(3 * M2 - K4, 2 * K4)).isZero();
        assertThat(Fixture.snapshot(t)).isEqualTo(before);
        assertThat(translate(2 * M2 + K4, Access.READ)).isEqualTo("pa 0x80001000");
        // a range covering the first block and half of the second: the first goes, then it stops
        assertThat(t.unmap(2 * M2, M2 + K4)).isEqualTo(M2);
        assertThat(translate(2 * M2, Access.READ)).isEqualTo("TRANSLATION@2");
        assertThat(translate(3 * M2, Access.READ)).isEqualTo("pa 0x80200000");
        assertThat(t.unmap(3 * M2, M2)).isEqualTo(M2);
        assertThat(tableFrames()).as("empty tables freed").isZero();
    }

    @Test
    void unmapFreesEmptyTablesAndInvalidatesThem() {
        t.map(5 * G1 + 7 * K4, K4, 0x8000_0000L, Prot.RW);
        assertThat(tableFrames()).isEqualTo(3);
        tlbs.resetCounters();
        assertThat(t.unmap(5 * G1 + 7 * K4, K4)).isEqualTo(K4);
        assertThat(tableFrames()).isZero();
        assertThat(t.counters().tablesFreed()).isEqualTo(3);
        assertThat(tlbs.hypVaFlushes()).isEqualTo(1 + 3);
        assertThat(translate(5 * G1 + 7 * K4, Access.READ)).isEqualTo("TRANSLATION@0");
    }

    @Test
    void destroyReturnsEveryFrame() {
        t.map(0, 5 * K4, 0x8000_0000L, Prot.RW);
        t.map(G1, G1, 0x1_0000_0000L, Prot.R);
        t.map((1L << 47) + M2, M2 + K4, 0x7000_0000L, Prot.RX);
        t.map((1L << 48) - K4, K4, 0x7000_0000L, Prot.RX.with(Prot.SW0_BIT));
        assertThat(tableFrames()).isGreaterThan(5);
        t.checkRefcounts();
        t.destroy();
        assertThat(mem.framesInUse()).isZero();
        assertThatThrownBy(() -> t.map(0, K4, 0, Prot.R)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void protRulesAndOutOfMemory() {
        assertThatThrownBy(() -> t.map(0, K4, 0, Prot.of(Prot.W_BIT))).hasMessageContaining("read permission is mandatory");
        assertThatThrownBy(() -> t.map(0, K4, 0, Prot.RWX)).hasMessageContaining("W^X");
        assertThatThrownBy(() -> t.map(0, K4, 0, Prot.RX.with(Prot.DEVICE_BIT))).hasMessageContaining("device");
        assertThat(Fixture.snapshot(t).values()).allMatch(l -> l.stream().allMatch(e -> e == 0));

        PhysicalMemory small = new PhysicalMemory(Fixture.MEM_BASE, 3 * K4, Granule.G4K, true);
        HypPageTable h = new HypPageTable(Geometry.hyp(Granule.G4K, 48), small, tlbs);
        assertThatThrownBy(() -> h.map(0, K4, 0, Prot.R))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOMEM));
        h.checkRefcounts();
        assertThat(small.framesInUse()).isEqualTo(3);
        h.destroy();
        assertThat(small.framesInUse()).isZero();
    }

    @Test
    void hypDescriptorsCarryTheRequestedPermissions() {
        t.map(0, K4, 0x8000_0000L, Prot.R);
        t.map(K4, K4, 0x8000_1000L, Prot.RW);
        t.map(2 * K4, K4, 0x8000_2000L, Prot.RX);
        long ro = t.getLeaf(0).pte(), rw = t.getLeaf(K4).pte(), rx = t.getLeaf(2 * K4).pte();
        assertThat(ro & HypDescriptor.AP_MASK).isEqualTo(HypDescriptor.AP_RO);
        assertThat(rw & HypDescriptor.AP_MASK).isEqualTo(HypDescriptor.AP_RW);
        assertThat(ro & HypDescriptor.XN).isNotZero();
        assertThat(rw & HypDescriptor.XN).isNotZero();
        assertThat(rx & HypDescriptor.XN).isZero();
        assertThat(Translation.isFault(mmu.translate(2 * K4, Access.EXEC))).isFalse();
    }
}
