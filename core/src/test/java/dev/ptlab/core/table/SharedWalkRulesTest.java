package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Walk;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import dev.ptlab.core.walk.Walker;
import org.junit.jupiter.api.Test;

/** Who may walk shared, under which lock, and what a shared walk is protected by. */
class SharedWalkRulesTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long A = 0x4000_0000L, P = 0x8000_0000L;

    @Test
    void theHypTableRefusesSharedWalksWithEperm() {
        PhysicalMemory mem = new PhysicalMemory(Fixture.MEM_BASE, 16L << 20, Granule.G4K, true);
        HypPageTable hyp = new HypPageTable(Geometry.hyp(Granule.G4K, 48), mem, new TlbSystem());
        hyp.map(A, K4, P, Prot.RW);
        assertThatThrownBy(() -> hyp.walk(A, K4, (ctx, v) -> Status.OK, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EPERM))
                .hasMessageContaining("exclusive walks only");
        assertThat(hyp.getLeaf(A).level()).isEqualTo(3); // its own read-only walk is exclusive
    }

    @Test
    void aSharedWalkNeedsAReclaimerAndASubtreeWalkCannotBeShared() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        assertThatThrownBy(() -> Walker.walk(f.table.geometry(), f.mem, f.table.rootPa(),
                Walk.range(A, K4).flags(WalkFlags.LEAF | WalkFlags.SHARED).policy(WalkPolicy.RANGE), (ctx, v) -> Status.OK))
                .isInstanceOf(PageTableException.class).hasMessageContaining("reclaimer");
        assertThatThrownBy(() -> Walker.walkSubtree(f.table.geometry(), f.mem, f.table.rootPa(), 1, 0,
                WalkFlags.LEAF | WalkFlags.SHARED, (ctx, v) -> Status.OK))
                .isInstanceOf(PageTableException.class).hasMessageContaining("SHARED");
    }

    @Test
    void sharedWalksHoldTheReadLockAndARealSectionExclusiveOnesTheWriteLock() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        boolean[] seen = new boolean[4];
        f.table.walk(A, K4, (ctx, v) -> {
            seen[0] = f.table.mmuLock().heldForRead() && !f.table.mmuLock().heldForWrite();
            seen[1] = f.table.reclaimer().inReadSection();
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE);
        f.table.walk(A, K4, (ctx, v) -> {
            seen[2] = f.table.mmuLock().heldForWrite();
            seen[3] = f.table.reclaimer().inReadSection();
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(seen).containsExactly(true, true, true, false);
        assertThat(f.table.mmuLock().heldForRead()).isFalse();
    }

    @Test
    void anExclusiveOperationInsideASharedOneIsRefusedInsteadOfDeadlocking() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.cache.topUp(4);
        f.table.map(A, K4, P, Prot.RW, f.cache);
        assertThatThrownBy(() -> f.table.walk(A, K4, (ctx, v) -> {
            f.table.unmap(A, K4);
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("read lock");
        assertThat(f.table.mmuLock().heldForRead()).as("released on the way out").isFalse();
        assertThat(f.table.getLeaf(A).pte()).isNotZero();
        f.table.checkRefcounts();
    }

    @Test
    void aSharedCoalescingMapDefersTheOldSubtreeAndFreesItWhenNoReaderCanSeeIt() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.cache.topUp(8);
        f.table.map(A, K4, P, Prot.RW, f.cache); // an L3 table under the 2M span
        long frames = f.mem.framesInUse();
        assertThat(f.table.map(A, M2, P, Prot.RW, f.cache, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT)).isEqualTo(Status.OK);
        assertThat(f.table.getLeaf(A).level()).isEqualTo(2);
        assertThat(f.table.reclaimer().deferred()).as("a shared coalesce goes through the reclaimer").isEqualTo(1);
        assertThat(f.table.reclaimer().pending()).as("freed once the walk's own section closed").isZero();
        assertThat(f.mem.framesInUse()).isEqualTo(frames - 1);

        // Under the write lock the same coalesce frees at once.
        f.table.map(A, K4, P, Prot.R, f.cache);
        f.table.map(A, M2, P, Prot.RW, f.cache);
        assertThat(f.table.reclaimer().deferred()).isEqualTo(1);
        f.table.checkRefcounts();
    }
}
