package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import org.junit.jupiter.api.Test;

/**
 * A run of pages mapped in one go with a 52-bit output format, across the PA bits the format
 * stores out of place: every page translates to its own PA (a descriptor is not the previous
 * one plus a page when the PA's high bits live elsewhere in it).
 */
class Stage2MapLpa2RunTest {
    static final long K4 = 0x1000, K64 = 0x1_0000;

    @Test
    void lpa2PagesAcrossTwoToTheFiftyTranslateToTheirOwnPas() {
        assertRunTranslates(Granule.G4K, OutputAddressFormat.LPA2, 1L << 50, K4);
    }

    @Test
    void pa52PagesAcrossTwoToTheFortyEightTranslateToTheirOwnPas() {
        assertRunTranslates(Granule.G64K, OutputAddressFormat.PA52_64K, 1L << 48, K64);
    }

    private static void assertRunTranslates(Granule g, OutputAddressFormat fmt, long boundary, long page) {
        PhysicalMemory mem = new PhysicalMemory(Fixture.MEM_BASE, 64L << 20, g, true);
        // FWB and no execute right: no cache maintenance is due, so the run may be filled in bulk.
        Stage2PageTable table = new Stage2PageTable(Geometry.stage2(g, 40, fmt), mem, new TlbSystem(), 1, Stage2PageTable.FWB);
        MemCache cache = new MemCache(mem);
        cache.topUp(8);
        long ipa = 64 * page, pa = boundary - 4 * page;
        table.map(ipa, 8 * page, pa, Prot.RW, cache);
        Mmu mmu = new Mmu(table.geometry(), mem, new Tlb("cpu0", g), table.rootPa(), 1, true, false);
        for (int k = 0; k < 8; k++) {
            assertThat(mmu.translate(ipa + k * page + 8, Access.WRITE)).as("page %d", k).isEqualTo(pa + k * page + 8);
        }
        table.checkRefcounts();
    }
}
