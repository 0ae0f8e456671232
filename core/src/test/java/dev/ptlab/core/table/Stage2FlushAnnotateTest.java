package dev.ptlab.core.table;

import static dev.ptlab.core.table.OpsLog.Kind.DC;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.mem.CacheMaintenance;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * flush (D-cache clean+invalidate of every cacheable leaf's target, nothing with FWB) and owner
 * annotations (page-granular invalid, counted entries; blocks in the range become tables),
 * kvm-pgtable.md §2.7, §6.5, §6.7.
 */
class Stage2FlushAnnotateTest {
    static final long A = 0x4000_0000L, P = 0x8000_0000L, Q = 0xC000_0000L;
    static final long K4 = 0x1000, M2 = 2L << 20, G1 = 1L << 30;

    /** Cacheable: a 2M block, 3 pages (one executable); not: device, non-cacheable; plus an annotation and holes. */
    static void mapMix(OpsRig r) {
        r.map(A, M2, P, "rw");
        r.map(A + M2, 2 * K4, Q, "rw");
        r.map(A + M2 + 2 * K4, K4, Q + 0x10_0000, "rwx");
        r.map(A + M2 + 8 * K4, K4, Q + 0x20_0000, "rw+device");
        r.map(A + M2 + 9 * K4, K4, Q + 0x30_0000, "rw+nc");
        r.cache.topUp(4);
        r.table.setOwner(A + M2 + 12 * K4, K4, r.cache, 2);
    }

    @Test
    void flushCleansEachCacheableLeafsTargetOnce() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        mapMix(r);
        r.log.clear();
        CacheMaintenance cm = r.mem.cacheMaintenance();
        cm.reset();

        r.table.flush(A, 2 * M2);

        assertThat(r.log.kinds()).containsOnly(DC).hasSize(4);
        List<String> got = r.log.events.stream().map(e -> Long.toHexString(e.addr()) + "+" + Long.toHexString(e.size())).toList();
        assertThat(got).containsExactly("80000000+200000", "c0000000+1000", "c0001000+1000", "c0100000+1000");
        assertThat(cm.dcacheOps()).isEqualTo(4);
        assertThat(cm.dcacheBytes()).isEqualTo(M2 + 3 * K4);
        assertThat(cm.icacheOps()).isZero();
        assertThat(r.log.hw.totalFlushes()).isZero();

        // a sub-range counts only the leaves it touches (a block counts whole)
        cm.reset();
        r.table.flush(A + 0x1000, K4);
        assertThat(cm.dcacheOps()).isEqualTo(1);
        assertThat(cm.dcacheBytes()).isEqualTo(M2);
        cm.reset();
        r.table.flush(A + M2 + 8 * K4, 8 * K4); // device, nc, annotation, holes
        assertThat(cm.dcacheOps()).isZero();
    }

    @Test
    void flushDoesNothingWithFwb() {
        OpsRig r = new OpsRig(Granule.G4K, 40, Stage2PageTable.FWB);
        mapMix(r);
        r.log.clear();
        r.mem.cacheMaintenance().reset();
        r.table.flush(A, 2 * M2);
        assertThat(r.log.events).isEmpty();
        assertThat(r.mem.cacheMaintenance().dcacheOps()).isZero();
        assertThat(r.mem.cacheMaintenance().dcacheBytes()).isZero();
    }

    // ------------------------------------------------------------------------------------------
    // owner annotations

    @Test
    void setOwnerTurnsABlockIntoATableOfCountedAnnotations() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, M2, P, "rw");
        r.map(A + 4 * M2, K4, P, "r"); // keeps the level-2 table alive after the unmap below
        long l2 = r.frameHolding(A, 2);
        int l2Count = r.mem.count(l2);
        r.cache.topUp(4);

        r.table.setOwner(A + 2 * K4, 3 * K4, r.cache, 7);

        for (int i = 2; i < 5; i++) {
            Leaf l = r.table.getLeaf(A + i * K4);
            assertThat(l.level()).isEqualTo(3);
            assertThat(Pte.isValid(l.pte())).isFalse();
            assertThat(Pte.owner(l.pte())).isEqualTo(7);
            assertThat(Fixture.describe(r.mmu.translate(A + i * K4, Access.READ))).isEqualTo("TRANSLATION@3");
        }
        // the rest of the block is gone (refaults later), with owner 0 = the zero entry
        assertThat(r.table.getLeaf(A)).isEqualTo(new Leaf(0, 3));
        assertThat(r.table.getLeaf(A + M2 - K4)).isEqualTo(new Leaf(0, 3));
        assertThat(Fixture.describe(r.mmu.translate(A, Access.READ))).isEqualTo("TRANSLATION@3");
        long l3 = r.childOf(A, 2);
        assertThat(r.mem.count(l3)).as("1 + three counted annotations").isEqualTo(4);
        assertThat(r.mem.count(l2)).as("block -> table: still one counted entry").isEqualTo(l2Count);
        r.table.checkRefcounts();

        // owner 0 writes the zero entry: uncounted
        r.table.setOwner(A + 4 * K4, K4, r.cache, 0);
        assertThat(r.table.getLeaf(A + 4 * K4)).isEqualTo(new Leaf(0, 3));
        assertThat(r.mem.count(l3)).isEqualTo(3);
        // another owner over an annotation replaces it, count unchanged
        r.table.setOwner(A + 3 * K4, K4, r.cache, 255);
        assertThat(Pte.owner(r.table.getLeaf(A + 3 * K4).pte())).isEqualTo(255);
        assertThat(r.mem.count(l3)).isEqualTo(3);
        r.table.checkRefcounts();

        // map over an annotation: invalid -> valid, no TLBI, count unchanged
        r.log.clear();
        r.map(A + 2 * K4, K4, Q, "rw");
        assertThat(r.log.tlbis()).isEmpty();
        assertThat(r.mmu.translate(A + 2 * K4, Access.READ)).isEqualTo(Q);
        assertThat(r.mem.count(l3)).isEqualTo(3);
        r.table.checkRefcounts();

        // unmap clears annotations and frees the emptied table
        long frames = r.frames();
        r.table.unmap(A, M2);
        assertThat(r.table.getLeaf(A + 3 * K4)).isEqualTo(new Leaf(0, 2));
        assertThat(r.mem.isLive(l3)).isFalse();
        assertThat(r.frames()).isEqualTo(frames - 1);
        assertThat(r.mem.count(l2)).isEqualTo(l2Count - 1);
        r.table.checkRefcounts();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"G4K", "G16K", "G64K"})
    void setOwnerOverTheLargestBlockAndEmptySpaceBuildsTablesDownToPages(String gran) {
        Granule g = Granule.valueOf(gran);
        OpsRig r = new OpsRig(g, 42, 0);
        int level = g.minBlockLevel();
        long span = g.levelSize(level), pg = g.pageSize();
        long a = span * 2;
        r.map(a, span, span * 6, "rw");
        r.cache.topUp(8);
        Map<Long, List<Long>> before = Fixture.snapshot(r.table);

        // last page of the block and first page after it (which is empty)
        r.table.setOwner(a + span - pg, 2 * pg, r.cache, 42);

        assertThat(Pte.owner(r.table.getLeaf(a + span - pg).pte())).isEqualTo(42);
        assertThat(r.table.getLeaf(a + span - pg).level()).isEqualTo(3);
        assertThat(Pte.owner(r.table.getLeaf(a + span).pte())).isEqualTo(42);
        assertThat(r.table.getLeaf(a).pte()).isZero();
        int newTables = 2 * (3 - level); // a chain of tables down to level 3 under each of the two entries
        assertThat(Fixture.snapshot(r.table)).hasSize(before.size() + newTables);
        r.table.checkRefcounts();
        r.table.unmap(a, 2 * span);
        assertThat(Fixture.snapshot(r.table)).as("every table emptied by unmap is freed").hasSize(r.table.geometry().rootPages());
        r.table.checkRefcounts();
    }

    @Test
    void annotateStoresTheExactInvalidValueAndItCounts() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.cache.topUp(8);
        long value = (0x5AL << Pte.OWNER_SHIFT) | (0xABCDL << 20) | (1L << 62);
        r.table.annotate(A, 2 * K4, r.cache, value);
        assertThat(r.table.getLeaf(A)).isEqualTo(new Leaf(value, 3));
        assertThat(r.table.getLeaf(A + K4)).isEqualTo(new Leaf(value, 3));
        assertThat(Pte.owner(value)).isEqualTo(0x5A);
        assertThat(r.mem.count(r.childOf(A, 2))).isEqualTo(1 + 2);
        assertThat(r.table.mkyoung(A)).isEqualTo(dev.ptlab.core.walk.Status.NOT_MAPPED);
        r.table.checkRefcounts();
    }

    @Test
    void badOwnersAndAnnotationsAreRejectedWithoutTouchingTheTable() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, M2, P, "rw");
        r.cache.topUp(8);
        int cached = r.cache.size();
        Map<Long, List<Long>> before = Fixture.snapshot(r.table);
        assertThatThrownBy(() -> r.table.setOwner(A, K4, r.cache, -1))
                .isInstanceOf(PageTableException.class).hasMessage("owner: -1 is outside 0..255 (EINVAL)");
        assertThatThrownBy(() -> r.table.setOwner(A, K4, r.cache, 256))
                .isInstanceOf(PageTableException.class).hasMessage("owner: 256 is outside 0..255 (EINVAL)");
        assertThatThrownBy(() -> r.table.annotate(A, K4, r.cache, 0x9L))
                .isInstanceOf(PageTableException.class).hasMessage("annotation: 0x9 is a valid descriptor (bit 0 set) (EINVAL)");
        assertThatThrownBy(() -> r.table.annotate(A, K4, r.cache, Pte.LOCKED | 0x8L))
                .isInstanceOf(PageTableException.class).hasMessage("annotation: 0x408 uses the LOCKED bit 10 (EINVAL)");
        assertThatThrownBy(() -> r.table.annotate(A + 0x10, K4, r.cache, 0x8L))
                .isInstanceOf(PageTableException.class).hasMessage("ipa: 0x40000010 is not aligned to the 4k granule (EINVAL)");
        assertThat(Fixture.snapshot(r.table)).isEqualTo(before);
        assertThat(r.cache.size()).isEqualTo(cached);
    }
}
