package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What annotations and the hyp table's map and unmap count (hand-counted below), that every
 * named counter is the one {@link TableCounters#get} reads, that these operations leave the MMU
 * lock free, and that each refuses re-entry from a visitor naming itself.
 */
class CountersAndReentryTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long A = G1 + 4 * M2;

    /**
     * setOwner of 3 pages in an empty 2M span installs a level-2 and a level-3 table and 3
     * annotations; a second setOwner of 2 more pages of that level-3 table walks through both
     * tables (TABLE_PRE visits) and installs 2 annotations, no table.
     */
    @Test
    void annotationsCountTheirEntriesAndTablesAndPassThroughExistingTables() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.topUpFor(M2);
        f.table.setOwner(A, 3 * K4, f.cache, 5);
        assertThat(f.table.counters().leavesInstalled()).isEqualTo(3);
        assertThat(f.table.counters().tablesInstalled()).isEqualTo(2);
        f.table.setOwner(A + 8 * K4, 2 * K4, f.cache, 6);
        assertThat(f.table.counters().leavesInstalled()).isEqualTo(5);
        assertThat(f.table.counters().tablesInstalled()).isEqualTo(2);
        assertThat(f.table.counters().get(TableCounter.LEAVES_INSTALLED)).isEqualTo(5);
        // The same owner again on the same pages: every entry already holds it, nothing changes.
        f.table.setOwner(A, 3 * K4, f.cache, 5);
        assertThat(f.table.counters().leavesInstalled()).isEqualTo(5);
        assertThat(f.table.getLeaf(A + K4).pte()).isEqualTo(Pte.ownerAnnotation(5));
        assertThat(f.table.mmuLock().heldForWrite()).isFalse();
        f.destroyAndCheck();
    }

    /**
     * Hyp (4K, 48-bit, root at level 0): a page at 1G needs tables at levels 1, 2 and 3; its
     * unmap removes the leaf and frees the three tables as they empty.
     */
    @Test
    void hypMapAndUnmapCountLeavesAndTablesAndLeaveTheLockFree() {
        PhysicalMemory mem = new PhysicalMemory(Fixture.MEM_BASE, 16L << 20, Granule.G4K, true);
        HypPageTable h = new HypPageTable(Geometry.hyp(Granule.G4K, 48), mem, new TlbSystem());
        // TTBR0_EL2 holds the root's PA in place (48-bit format); TCR_EL2.T0SZ is 64 - 48.
        assertThat(h.ttbr0()).isEqualTo(h.rootPa());
        assertThat(h.tcr(false) & 0x3F).isEqualTo(16);
        h.map(G1, K4, 0x8000_0000L, Prot.RW);
        assertThat(h.counters().leavesInstalled()).isEqualTo(1);
        assertThat(h.counters().tablesInstalled()).isEqualTo(3);
        assertThat(h.mmuLock().heldForWrite()).isFalse();
        assertThat(h.unmap(G1, K4)).isEqualTo(K4);
        assertThat(h.counters().leavesRemoved()).isEqualTo(1);
        assertThat(h.counters().tablesFreed()).isEqualTo(3);
        assertThat(h.counters().get(TableCounter.TABLES_FREED)).isEqualTo(3);
        h.checkRefcounts();
        h.destroy();
        assertThat(mem.framesInUse()).isZero();
    }

    @Test
    void operationsCalledFromAVisitorNameThemselves() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, 0x8000_0000L, Prot.R);
        f.topUpFor(K4);
        PhysicalMemory mem = new PhysicalMemory(Fixture.MEM_BASE, 16L << 20, Granule.G4K, true);
        HypPageTable h = new HypPageTable(Geometry.hyp(Granule.G4K, 48), mem, new TlbSystem());
        h.map(G1, K4, 0x8000_0000L, Prot.R);
        List<String> refused = new ArrayList<>();
        f.table.walk(A, K4, (ctx, v) -> {
            refused.add(firstWord(() -> f.table.setOwner(A + K4, K4, f.cache, 3)));
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        h.walk(G1, K4, (ctx, v) -> {
            refused.add(firstWord(() -> h.map(G1 + K4, K4, 0x8000_1000L, Prot.R)));
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(refused).containsExactly("annotate", "map");
        f.destroyAndCheck();
        h.destroy();
    }

    /** The first word of the IllegalStateException {@code op} throws ("allowed" if none). */
    private static String firstWord(Runnable op) {
        try {
            op.run();
            return "allowed";
        } catch (IllegalStateException e) {
            return e.getMessage().substring(0, e.getMessage().indexOf(' '));
        }
    }
}
