package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheCounter;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.WalkFlags;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * Cache maintenance issued inside a break-before-make window ({@link CacheCounter#BBM_CMO_OPS}):
 * between the break of a valid entry and the make of its replacement. Without FWB a table
 * coalesced into a 2M block cleans the whole block there (Linux 7.1-rc4
 * {@code stage2_map_walker_try_leaf}: break, clean, make); maintenance for leaves installed into
 * empty entries, or under a table that replaced a block, is outside any window.
 */
class BbmCacheMaintenanceTest {
    static final long K4 = 4096, M2 = 2L << 20;
    static final long IPA = 0x4000_0000L, PA = 0x8000_0000L;

    final PhysicalMemory mem = new PhysicalMemory(0x1_0000_0000L, 64L << 20, Granule.G4K, true);
    final CacheMaintenance cmo = mem.cacheMaintenance();
    final MemCache mc = new MemCache(mem);

    Stage2PageTable table(int flags) {
        return new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, new TlbSystem(), 1, flags);
    }

    /** 2M of pages, one map call each, then the whole 2M as one map: the table is coalesced into a block. */
    private void pagesThenBlock(Stage2PageTable t, int walkFlags) {
        mc.topUp(4);
        for (long off = 0; off < M2; off += K4) t.map(IPA + off, K4, PA + off, Prot.RW, mc, walkFlags);
        t.map(IPA, M2, PA, Prot.RW, mc, walkFlags);
    }

    @ParameterizedTest(name = "{0} walk, coalesce {1}")
    @CsvSource({"exclusive, INSTALL_FIRST", "shared, INSTALL_FIRST", "exclusive, UNMAP_FIRST", "shared, UNMAP_FIRST"})
    void withoutFwbACoalescedBlockIsCleanedInsideTheWindow(String walk, CoalescePolicy policy) {
        Stage2PageTable t = table(0);
        t.setCoalescePolicy(policy);
        pagesThenBlock(t, walk.equals("shared") ? WalkFlags.SHARED : 0);
        assertThat(t.counters().get(TableCounter.COALESCED)).isEqualTo(1);
        // 512 page installs into empty entries (4K each, no window) + the block (2M, in the window).
        assertThat(cmo.dcacheOps()).isEqualTo(512 + 1);
        assertThat(cmo.dcacheBytes()).isEqualTo(512 * K4 + M2);
        assertThat(cmo.bbmCmoOps()).isEqualTo(1);
        assertThat(cmo.bbmCmoBytes()).isEqualTo(M2);
        t.checkRefcounts();
    }

    @Test
    void withFwbNothingIsCleanedInOrOutOfTheWindow() {
        Stage2PageTable t = table(Stage2PageTable.FWB);
        pagesThenBlock(t, 0);
        assertThat(t.counters().get(TableCounter.COALESCED)).isEqualTo(1);
        for (CacheCounter c : CacheCounter.values()) assertThat(cmo.get(c)).as(c.key()).isZero();
    }

    @Test
    void aPageMappedUnderABlockItReplacedIsOutsideTheWindow() {
        Stage2PageTable t = table(0);
        mc.topUp(4);
        t.map(IPA, M2, PA, Prot.RW, mc);
        // Another PA for one page: the block is broken and made a table (nothing to clean),
        // then the page goes into an empty entry of that table, after the make.
        t.map(IPA, K4, PA + 4 * M2, Prot.RW, mc);
        assertThat(t.counters().get(TableCounter.BREAK_BEFORE_MAKE)).isEqualTo(1);
        assertThat(cmo.dcacheOps()).isEqualTo(2);
        assertThat(cmo.dcacheBytes()).isEqualTo(M2 + K4);
        assertThat(cmo.bbmCmoOps()).isZero();
        assertThat(cmo.bbmCmoBytes()).isZero();
    }

    @Test
    void aValidPageReplacedByAnotherIsCleanedInsideTheWindowAndExecutableOnesCountTheICacheToo() {
        Stage2PageTable t = table(0);
        mc.topUp(4);
        t.map(IPA, K4, PA, Prot.RW, mc);
        t.map(IPA, K4, PA + K4, Prot.RWX, mc);
        // Second map: break the valid page, D-cache clean and I-cache invalidate of the new
        // target (4K each), make.
        assertThat(cmo.dcacheOps()).isEqualTo(2);
        assertThat(cmo.icacheOps()).isEqualTo(1);
        assertThat(cmo.bbmCmoOps()).isEqualTo(2);
        assertThat(cmo.bbmCmoBytes()).isEqualTo(2 * K4);
    }
}
