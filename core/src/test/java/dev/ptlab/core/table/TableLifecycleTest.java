package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.InvariantViolation;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * {@link PageTable}'s life cycle and argument edges: the memory a table may use, the address
 * limits of map's output, destroy (what it frees and counts, the lock it leaves, the counts it
 * checks), operations that meet a destroyed table (also one that waited for the MMU lock while
 * the table was destroyed), and the reference-count check.
 */
class TableLifecycleTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long A = G1 + 4 * M2, P = 0x8000_0000L;
    static final Geometry GEO = Geometry.stage2(Granule.G4K, 40); // 48-bit output addresses (PA48)

    @Test
    void memoryMayReachUpToTheOutputAddressLimitButNotBeyond() {
        long top = 1L << 48;
        PhysicalMemory fits = new PhysicalMemory(top - (16L << 20), 16L << 20, Granule.G4K, true);
        Stage2PageTable t = new Stage2PageTable(GEO, fits, new TlbSystem(), 1, 0);
        assertThat(t.rootPa()).isGreaterThanOrEqualTo(top - (16L << 20));
        t.destroy();

        PhysicalMemory over = new PhysicalMemory(top - (16L << 20) + K4, 16L << 20, Granule.G4K, true);
        assertThatThrownBy(() -> new Stage2PageTable(GEO, over, new TlbSystem(), 1, 0))
                .isInstanceOf(PageTableException.class)
                .hasMessageContaining("0x" + Long.toHexString(top - (16L << 20) + K4) + "..0x" + Long.toHexString(top + K4 - 1))
                .hasMessageContaining("48-bit");
    }

    @Test
    void mapsOutputAddressesFromZeroToTheLastPageBelowTheLimit() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        long limit = 1L << 48;
        assertThat(f.map(A, K4, 0, Prot.R)).isEqualTo(Status.OK);
        assertThat(f.table.geometry().outputAddress(f.table.getLeaf(A).pte())).isZero();
        assertThat(f.map(A + K4, K4, limit - K4, Prot.R)).isEqualTo(Status.OK);
        assertThat(f.pa(A + K4)).isEqualTo(limit - K4);
        assertThatThrownBy(() -> f.map(A + 2 * K4, 2 * K4, limit - K4, Prot.R)).isInstanceOf(PageTableException.class)
                .hasMessageContaining("pa");
        assertThat(f.table.tlbMaintenance()).isSameAs(f.tlbs);
        f.destroyAndCheck();
    }

    /**
     * Destroy frees every table and counts them: a page at A needs a level-2 table (under root
     * entry 1) and a level-3 table, a page in another 1G a second pair: four tables.
     */
    @Test
    void destroyFreesAndCountsEveryTableAndLeavesTheLockFree() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.R);
        f.map(3 * G1, K4, P, Prot.R);
        assertThat(f.table.counters().tablesInstalled()).isEqualTo(4);
        f.destroyAndCheck();
        assertThat(f.table.counters().tablesFreed()).isEqualTo(4);
        assertThat(f.table.mmuLock().heldForWrite()).isFalse();
        assertThat(f.table.mmuLock().heldForRead()).isFalse();
    }

    @Test
    void destroyReportsARootWhoseCountIsWrong() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.R);
        long secondRoot = f.table.rootPa() + K4;
        f.mem.getExclusive(secondRoot); // a reference nothing holds
        assertThatThrownBy(f.table::destroy).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("root frame 0x" + Long.toHexString(secondRoot) + " has refcount 2");
        assertThat(f.table.destroyed()).isFalse();
        f.mem.putExclusive(secondRoot);
        f.destroyAndCheck();
    }

    @Test
    void checkRefcountsReportsATableWhoseCountIsWrong() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, 2 * K4, P, Prot.R);
        long[] l3 = {0};
        f.table.walk(A, K4, (ctx, v) -> {
            if (ctx.level() == 2) l3[0] = ctx.childTable();
            return Status.OK;
        }, WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
        f.mem.getExclusive(l3[0]); // 1 + 2 pages -> 4
        assertThatThrownBy(f.table::checkRefcounts).isInstanceOf(InvariantViolation.class);
        f.mem.putExclusive(l3[0]);
        f.destroyAndCheck();
    }

    /** On a destroyed table the first check fails first: map with a null prot reports the destroyed table. */
    @Test
    void operationsOnADestroyedTableSayItWasDestroyedBeforeCheckingTheirArguments() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.destroyAndCheck();
        assertThatThrownBy(() -> f.table.map(A, K4, P, null, f.cache)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("destroyed");
        assertThatThrownBy(() -> f.table.walk(A, K4, null, WalkFlags.LEAF, WalkPolicy.RANGE))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("destroyed");
        assertThatThrownBy(() -> f.table.getLeaf(A)).isInstanceOf(IllegalStateException.class).hasMessageContaining("destroyed");
    }

    /**
     * A walk (exclusive or shared) or a second destroy that passed its first check and then
     * waited for the MMU lock while the table was destroyed finds the table destroyed once it
     * has the lock, and touches nothing (the roots are freed by then).
     */
    @Test
    void anOperationWaitingForTheLockWhileTheTableIsDestroyedFindsItDestroyed() throws Exception {
        for (String op : new String[] {"exclusive walk", "shared walk", "destroy"}) {
            Fixture f = new Fixture(Granule.G4K, 40, 0);
            f.map(A, K4, P, Prot.R);
            AtomicReference<Throwable> thrown = new AtomicReference<>();
            AtomicBoolean visited = new AtomicBoolean();
            f.table.mmuLock().writeLock();
            Thread other = new Thread(() -> {
                try {
                    if (op.equals("destroy")) {
                        f.table.destroy();
                    } else {
                        f.table.walk(A, K4, (ctx, v) -> {
                            visited.set(true);
                            return Status.OK;
                        }, WalkFlags.LEAF | (op.equals("shared walk") ? WalkFlags.SHARED : 0), WalkPolicy.RANGE);
                    }
                } catch (Throwable e) {
                    thrown.set(e);
                }
            });
            other.start();
            // A writer parks in the lock's queue (WAITING); a reader backs off in timed parks.
            Thread.State waiting = op.equals("shared walk") ? Thread.State.TIMED_WAITING : Thread.State.WAITING;
            while (other.getState() != waiting) Thread.onSpinWait();
            try {
                f.table.destroy();
            } finally {
                f.table.mmuLock().writeUnlock();
            }
            other.join();
            assertThat(thrown.get()).as(op).isInstanceOf(IllegalStateException.class).hasMessageContaining("table was destroyed");
            assertThat(visited).as(op).isFalse();
            f.cache.release();
            assertThat(f.mem.framesInUse()).as(op).isEqualTo(f.baseline);
        }
    }

    /**
     * createUnlinked's checks come first: the table is live (a destroyed table says so, whatever
     * the cache holds), the block's output address is inside the 48-bit space. An unlinked
     * subtree reports its level and base, and can be freed once.
     */
    @Test
    void createUnlinkedChecksTheTableAndTheOutputAddressAndItsSubtreeIsFreedOnce() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.cache.topUp(4);
        assertThatThrownBy(() -> f.table.createUnlinked(1L << 48, 2, Prot.R, f.cache, false)).isInstanceOf(PageTableException.class)
                .extracting(e -> ((PageTableException) e).argument()).isEqualTo("pa");
        UnlinkedTable u = f.table.createUnlinked(P, 2, Prot.R, f.cache, false);
        assertThat(u.level()).isEqualTo(2);
        assertThat(u.base()).isZero();
        assertThat(u.freed()).isFalse();
        assertThat(u).hasToString("UnlinkedTable[level 2 entry, base 0x0]");
        f.table.freeUnlinked(u);
        assertThat(u.freed()).isTrue();
        assertThat(u).hasToString("UnlinkedTable[level 2 entry, base 0x0, freed]");
        assertThatThrownBy(() -> f.table.freeUnlinked(u)).isInstanceOf(IllegalStateException.class).hasMessageContaining("already freed");
        f.destroyAndCheck();
        f.cache.topUp(4);
        int held = f.cache.size(); // a top-up fills to the cache's capacity (kvm_mmu_topup_memory_cache)
        assertThatThrownBy(() -> f.table.createUnlinked(P, 2, Prot.R, f.cache, false)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("destroyed");
        assertThat(f.cache.size()).as("nothing taken from the cache").isEqualTo(held);
        f.cache.release();
    }
}
