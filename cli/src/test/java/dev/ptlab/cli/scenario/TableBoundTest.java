package dev.ptlab.cli.scenario;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The memory-cache bound the CLI tops up to before a map is exact for an empty table. */
class TableBoundTest {
    /** Tables a map into an empty table installs, with the cache topped up to exactly {@code bound}. */
    private static long installed(Geometry g, long ipa, long size, long pa, long bound) {
        PhysicalMemory mem = new PhysicalMemory(1L << 36, 64L << 20, g.granule(), false);
        Stage2PageTable t = new Stage2PageTable(g, mem, new TlbSystem(), 1, 0);
        MemCache mc = new MemCache(mem);
        mc.topUp((int) bound); // too small a bound fails the map with ENOMEM
        t.map(ipa, size, pa, Prot.RW, mc);
        return t.counters().tablesInstalled();
    }

    @Test
    void boundEqualsTablesInstalledInAnEmptyTable() {
        SplittableRandom rnd = new SplittableRandom(42);
        for (Granule gr : Granule.values()) {
            Geometry g = Geometry.stage2(gr, 40);
            long page = gr.pageSize();
            for (int i = 0; i < 60; i++) {
                // Addresses near big-block boundaries, PA congruent to the IPA at some random level or not at all.
                long blockish = 1L << (gr.shift() + rnd.nextInt(0, 3 * gr.bitsPerLevel()));
                long ipa = (rnd.nextLong(1L << 39) & -blockish) + page * rnd.nextInt(-3, 4);
                if (ipa < 0) ipa = 0;
                long pages = 1 + rnd.nextInt(rnd.nextBoolean() ? 8 : 4096);
                long size = pages * page;
                if (ipa + size > g.iaLimit()) ipa = g.iaLimit() - size;
                long congruence = 1L << (gr.shift() + rnd.nextInt(0, 3 * gr.bitsPerLevel()));
                long pa = ((rnd.nextLong(1L << 44) & -congruence) | (ipa & (congruence - 1))) & -page;
                long bound = TableBound.map(g, ipa, size, pa);
                assertThat(installed(g, ipa, size, pa, bound))
                        .as("%s ipa 0x%x size 0x%x pa 0x%x", gr, ipa, size, pa)
                        .isEqualTo(bound);
            }
        }
    }

    @Test
    void hugeBlockMapsNeedFewTables() {
        Geometry g = Geometry.stage2(Granule.G4K, 48);
        // 1T at 1G-congruent addresses: one L1 table per 512G touched, 1G blocks below.
        assertThat(TableBound.map(g, 1L << 40, 1L << 40, 1L << 41)).isEqualTo(2);
        // The same range with a PA 4K off: every entry down to level 2 needs a table.
        assertThat(TableBound.map(g, 1L << 40, 1L << 40, (1L << 41) + 4096)).isEqualTo(2 + 1024 + (1L << 19));
    }
}
