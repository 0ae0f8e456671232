package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import org.junit.jupiter.api.Test;

/**
 * Tables built off-table (createUnlinked, eager split) are counted as installed, root included,
 * just as freeing such a subtree counts its root as freed: installed - freed = tables in the tree.
 */
class UnlinkedTableCountersTest {
    @Test
    void splitCountsTheSubtreeRoot() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(0x4000_0000L, 1L << 30, 0x8000_0000L, Prot.RW);
        long frames = f.tableFrames();
        long installed = f.table.counters().tablesInstalled();
        f.cache.topUp(f.table.framesForFullSplit(1));
        f.table.split(0x4000_0000L, 1L << 30, f.cache);
        assertThat(f.table.counters().tablesInstalled() - installed).isEqualTo(513);
        assertThat(f.tableFrames() - frames).isEqualTo(513);
        f.destroyAndCheck();
    }

    @Test
    void createdAndFreedUnlinkedSubtreesBalance() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.cache.topUp(f.table.framesForFullSplit(2));
        UnlinkedTable t = f.table.createUnlinked(0x8000_0000L, 2, Prot.RW, f.cache, true);
        assertThat(f.table.counters().tablesInstalled()).isEqualTo(1);
        f.table.freeUnlinked(t);
        assertThat(f.table.counters().tablesFreed()).isEqualTo(1);
        f.destroyAndCheck();
    }
}
