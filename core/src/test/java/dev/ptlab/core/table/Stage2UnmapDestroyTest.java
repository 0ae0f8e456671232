package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** {@link Stage2PageTable#unmap} and {@link PageTable#destroy}. */
class Stage2UnmapDestroyTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;

    @Test
    void unmapFreesTablesThatBecomeEmpty() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(G1 + 3 * K4, K4, 0x8000_0000L, Prot.RW);
        f.map(G1 + 5 * M2, 2 * K4, 0x8000_0000L, Prot.RW);
        assertThat(f.tableFrames()).isEqualTo(3);
        f.table.unmap(G1 + 5 * M2, K4);
        assertThat(f.tableFrames()).as("one page left in that table: nothing freed").isEqualTo(3);
        f.table.unmap(G1 + 5 * M2 + K4, K4);
        assertThat(f.tableFrames()).isEqualTo(2);
        assertThat(f.table.counters().tablesFreed()).isEqualTo(1);
        f.table.checkRefcounts();
        f.assertFault(G1 + 5 * M2, Access.READ, FaultType.TRANSLATION, 2);
        f.table.unmap(G1, G1);
        assertThat(f.tableFrames()).isZero();
        assertThat(f.table.counters().tablesFreed()).isEqualTo(3);
        f.assertFault(G1 + 3 * K4, Access.READ, FaultType.TRANSLATION, 1);
        f.table.checkRefcounts();
        // unmapping nothing is fine
        f.table.unmap(0, 1L << 40);
        f.destroyAndCheck();
    }

    @ParameterizedTest
    @EnumSource(Granule.class)
    void unmapRemovesWholeBlocksOverlappingTheRange(Granule g) {
        Fixture f = new Fixture(g, 40, 0);
        long block = Stage2MapTest.span(g, 2), page = Stage2MapTest.span(g, 3);
        f.map(2 * block, 3 * block, 10 * block, Prot.RW);
        assertThat(f.pa(3 * block + 5)).isEqualTo(11 * block + 5);
        f.tlbs.resetCounters();
        f.table.unmap(3 * block + 7 * page, page);
        assertThat(f.table.counters().leavesRemoved()).isEqualTo(1);
        assertThat(f.tlbs.ipaFlushes()).isEqualTo(1);
        f.assertFault(3 * block, Access.READ, FaultType.TRANSLATION, 2);
        f.assertFault(3 * block + 5, Access.READ, FaultType.TRANSLATION, 2);
        f.assertFault(4 * block - 1, Access.READ, FaultType.TRANSLATION, 2);
        assertThat(f.pa(2 * block)).isEqualTo(10 * block);
        assertThat(f.pa(4 * block)).isEqualTo(12 * block);
        // a range straddling two blocks removes both; on 4K the L2 table is then empty and freed
        f.table.unmap(3 * block - page, 2 * page + block);
        int level = g == Granule.G4K ? 1 : 2;
        f.assertFault(2 * block, Access.READ, FaultType.TRANSLATION, level);
        f.assertFault(4 * block, Access.READ, FaultType.TRANSLATION, level);
        assertThat(f.table.counters().leavesRemoved()).isEqualTo(3);
        f.destroyAndCheck();
    }

    @Test
    void unmapInvalidatesEachLeafOrDefersToOneRangeInvalidation() {
        int[] flagSets = {0, Stage2PageTable.FWB, Stage2PageTable.RANGE_TLBI, Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI};
        for (int flags : flagSets) {
            Fixture f = new Fixture(Granule.G4K, 40, flags);
            f.map(0, 8 * K4, 0x8000_0000L, Prot.RW);
            f.map(M2, M2, 0x8020_0000L, Prot.RW);
            for (long a = 0; a < 8 * K4; a += K4) f.pa(a); // fill the TLB
            f.pa(M2);
            f.tlbs.resetCounters();
            f.table.unmap(2 * K4, 5 * K4);
            boolean deferred = flags == (Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI);
            assertThat(f.tlbs.ipaFlushes()).as("flags %d", flags).isEqualTo(deferred ? 0 : 5);
            assertThat(f.tlbs.rangeFlushes()).as("flags %d", flags).isEqualTo(deferred ? 1 : 0);
            for (long a = 2 * K4; a < 7 * K4; a += K4) f.assertFault(a, Access.READ, FaultType.TRANSLATION, 3);
            assertThat(f.pa(K4)).isEqualTo(0x8000_1000L);
            assertThat(f.pa(7 * K4)).isEqualTo(0x8000_7000L);
            // three pages and a block; then the L3 and the L2 table are empty and freed
            f.tlbs.resetCounters();
            f.table.unmap(0, 2 * M2);
            f.assertFault(M2, Access.READ, FaultType.TRANSLATION, 1);
            f.assertFault(0, Access.READ, FaultType.TRANSLATION, 1);
            assertThat(f.table.counters().tablesFreed()).isEqualTo(2);
            // freed tables are always invalidated by IPA at once; leaves only when not deferred
            assertThat(f.tlbs.ipaFlushes()).as("flags %d", flags).isEqualTo(deferred ? 2 : 4 + 2);
            assertThat(f.tlbs.rangeFlushes()).isEqualTo(deferred ? 1 : 0);
            f.destroyAndCheck();
        }
    }

    @Test
    void unmapCleansTheDcacheForCacheableLeavesWithoutFwb() {
        for (int flags : new int[] {0, Stage2PageTable.FWB}) {
            Fixture f = new Fixture(Granule.G4K, 40, flags);
            f.map(0, 3 * K4, 0x8000_0000L, Prot.RW);
            f.map(M2, M2, 0x8020_0000L, Prot.RX);
            f.map(2 * M2, 2 * K4, 0x9000_0000L, Prot.DEVICE_RW);
            f.map(3 * M2, K4, 0x9100_0000L, Prot.RW.with(Prot.NORMAL_NC_BIT));
            CacheMaintenance cm = f.mem.cacheMaintenance();
            cm.reset();
            f.table.unmap(0, 4 * M2);
            if (flags == 0) {
                assertThat(cm.dcacheOps()).isEqualTo(4);
                assertThat(cm.dcacheBytes()).isEqualTo(3 * K4 + M2);
            } else {
                assertThat(cm.dcacheOps()).isZero();
                assertThat(cm.dcacheBytes()).isZero();
            }
            assertThat(cm.icacheOps()).isZero();
            assertThat(f.table.counters().leavesRemoved()).isEqualTo(3 + 1 + 2 + 1);
            f.destroyAndCheck();
        }
    }

    @Test
    void unmapClearsAnnotationsAndDropsTheirReferences() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(0, K4, 0x8000_0000L, Prot.RW);
        long owner = Pte.ownerAnnotation(1);
        // annotate page 1 (an invalid, counted entry)
        f.table.walk(K4, K4, (ctx, v) -> {
            if (ctx.level() == 3) {
                ctx.getRef();
                ctx.trySet(owner);
            }
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        f.table.checkRefcounts();
        assertThat(f.table.getLeaf(K4)).isEqualTo(new Leaf(owner, 3));
        f.table.unmap(K4, K4);
        assertThat(f.table.getLeaf(K4)).isEqualTo(new Leaf(0, 3));
        f.table.checkRefcounts();
        f.table.unmap(0, K4);
        assertThat(f.tableFrames()).isZero();
        f.destroyAndCheck();
    }

    @Test
    void unmapArgumentsAreChecked() {
        Fixture f = new Fixture(Granule.G16K, 40, 0);
        assertThatThrownBy(() -> f.table.unmap(0x1000, 0x4000)).hasMessageContaining("ipa: 0x1000");
        assertThatThrownBy(() -> f.table.unmap(0, 0x1000)).hasMessageContaining("size: 0x1000");
        assertThatThrownBy(() -> f.table.unmap(0, 0)).hasMessageContaining("size");
        f.destroyAndCheck();
    }

    @ParameterizedTest
    @EnumSource(Granule.class)
    void destroyReturnsEveryFrame(Granule g) {
        Fixture f = new Fixture(g, g == Granule.G64K ? 48 : 40, 0);
        assertThat(f.baseline).isZero();
        long page = Stage2MapTest.span(g, 3), block = Stage2MapTest.span(g, 2);
        long limit = 1L << f.table.geometry().iaBits();
        f.map(0, 3 * block + 5 * page, 40 * block, Prot.RW);
        f.map(7 * block + page, 9 * page, 3 * page, Prot.R);
        f.map(limit - block - 2 * page, block + 2 * page, 2 * page, Prot.RWX);
        f.map(limit / 2 - page, 2 * page, 0, Prot.RW); // crosses a root boundary where there are several
        if (g == Granule.G4K) f.map(4 * G1, G1, 2 * G1, Prot.RW);
        // an empty table left behind by a failed map (where a page needs two tables), and an annotation
        if (f.table.geometry().startLevel() < 2) {
            MemCache one = new MemCache(f.mem, 1);
            one.topUp(1);
            assertThatThrownBy(() -> f.table.map(limit / 4 + page, page, 0, Prot.RW, one)).hasMessageContaining("ENOMEM");
        }
        f.table.walk(page, page, (ctx, v) -> {
            if (ctx.level() == 3 && ctx.old() == 0) {
                ctx.getRef();
                ctx.trySet(Pte.ownerAnnotation(1));
            }
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        f.table.checkRefcounts();
        assertThat(f.tableFrames()).isPositive();
        long rootPages = f.table.geometry().rootPages();
        f.cache.topUp(40);
        long expectedFreed = f.mem.framesInUse() - f.baseline;
        long freesBefore = f.mem.frees();
        f.destroyAndCheck();
        assertThat(f.mem.frees() - freesBefore).isEqualTo(expectedFreed);
        assertThat(f.table.destroyed()).isTrue();
        assertThatThrownBy(f.table::checkRefcounts).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> f.table.unmap(0, page)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(f.table::destroy).isInstanceOf(IllegalStateException.class);
        assertThat(rootPages).isPositive();
    }
}
