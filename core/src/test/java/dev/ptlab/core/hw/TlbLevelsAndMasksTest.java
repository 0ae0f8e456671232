package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import org.junit.jupiter.api.Test;

/**
 * One {@link Tlb} at every level it caches: leaf entries at levels 0..3 and walk-cache entries
 * at levels -1..2, each in a slot other than 0 and 1 (so a wrong slot mask shows), the level
 * masks of {@link Tlb#invalidate}, undoing a fill, refused fills, and the counters.
 *
 * <p>4K granule: level shifts -1: 48, 0: 39, 1: 30, 2: 21, 3: 12 (tlb-and-two-stage.md, 4K
 * levels). Default sizes: 512 page slots, 64 block slots per level, 64 walk slots per level;
 * an entry's slot is (addr >> shift) mod slots.
 */
class TlbLevelsAndMasksTest {
    static final int V = 7;
    // Leaves: level 0 in block slot 2, level 1 in slot 5, level 2 in slot 6, level 3 in page slot 7.
    static final long A0 = 2L << 39, A1 = 5L << 30, A2 = 6L << 21, A3 = 7L << 12;
    // Walk entries: level -1 in walk slot 3, 0 in slot 4, 1 in slot 5, 2 in slot 6.
    static final long BM1 = 3L << 48, B0 = 4L << 39, B1 = 5L << 30, B2 = 6L << 21;

    static long pte(int n) {
        return 0x8000_0000L + ((long) n << 12) | 0x7C1;
    }

    @Test
    void leafEntriesAtEveryLevelAreFoundInTheirOwnSlot() {
        Tlb t = new Tlb("cpu0", Granule.G4K);
        long gen = t.generation();
        assertThat(t.fill(V, A0, 0, pte(0), gen)).as("a level-0 leaf is a leaf").isTrue();
        assertThat(t.fill(V, A1, 1, pte(1), gen)).isTrue();
        assertThat(t.fill(V, A2, 2, pte(2), gen)).isTrue();
        assertThat(t.fill(V, A3, 3, pte(3), gen)).isTrue();
        assertThat(t.fill(V, A3, -1, pte(3), gen)).as("no leaf at level -1").isFalse();
        assertThat(t.fills()).isEqualTo(4);
        assertThat(t.size()).isEqualTo(4);

        assertThat(t.lookup(V, A0 + 0x12_3456_7000L)).isEqualTo(0);
        assertThat(t.cachedPte()).isEqualTo(pte(0));
        assertThat(t.lookup(V, A1 + 0x3FFF_F000L)).isEqualTo(1);
        assertThat(t.cachedPte()).isEqualTo(pte(1));
        assertThat(t.lookup(V, A2 + 0x1F_F000L)).isEqualTo(2);
        assertThat(t.cachedPte()).isEqualTo(pte(2));
        assertThat(t.lookup(V, A3 + 0xFFF)).isEqualTo(3);
        assertThat(t.cachedPte()).isEqualTo(pte(3));
        // Same slots, other addresses (one slot-array length further) or another VMID: misses.
        assertThat(t.lookup(V, A0 + (64L << 39))).isEqualTo(-2);
        assertThat(t.lookup(V, A1 + (64L << 30))).isEqualTo(-2);
        assertThat(t.lookup(V, A2 + (64L << 21))).isEqualTo(-2);
        assertThat(t.lookup(V, A3 + (512L << 12))).isEqualTo(-2);
        assertThat(t.lookup(V + 1, A1)).isEqualTo(-2);
        assertThat(t.hits()).isEqualTo(4);
        assertThat(t.misses()).isEqualTo(5);
    }

    @Test
    void walkEntriesAtEveryTableLevelRespectTheStartLevel() {
        Tlb t = new Tlb("cpu0", Granule.G4K);
        long gen = t.generation();
        assertThat(t.fillWalk(V, BM1, -1, pte(10), 11, gen)).isTrue();
        assertThat(t.fillWalk(V, B0, 0, pte(20), 21, gen)).isTrue();
        assertThat(t.fillWalk(V, B1, 1, pte(30), 31, gen)).isTrue();
        assertThat(t.fillWalk(V, B2, 2, pte(40), 41, gen)).isTrue();
        assertThat(t.walkFills()).isEqualTo(4);
        assertThat(t.walkSize()).isEqualTo(4);

        assertThat(t.walkLookup(V, BM1 + 0xABC_0000_0000L, -1)).isEqualTo(-1);
        assertThat(t.cachedWalkPte()).isEqualTo(pte(10));
        assertThat(t.cachedWalkGeneration()).isEqualTo(11);
        assertThat(t.walkLookup(V, B0, 0)).isEqualTo(0);
        assertThat(t.cachedWalkPte()).isEqualTo(pte(20));
        assertThat(t.walkLookup(V, B1, 1)).isEqualTo(1);
        assertThat(t.cachedWalkGeneration()).isEqualTo(31);
        assertThat(t.walkLookup(V, B2, 2)).isEqualTo(2);
        assertThat(t.cachedWalkPte()).isEqualTo(pte(40));
        assertThat(t.walkHits()).isEqualTo(4);
        // A walk starting below an entry's level cannot use it.
        assertThat(t.walkLookup(V, BM1, 0)).isEqualTo(-2);
        assertThat(t.walkLookup(V, B0, 1)).isEqualTo(-2);
        assertThat(t.walkLookup(V, B1, 2)).isEqualTo(-2);
        // Same walk slot, another address; another VMID.
        assertThat(t.walkLookup(V, B1 + (64L << 30), -1)).isEqualTo(-2);
        assertThat(t.walkLookup(V, B0 + (64L << 39), -1)).isEqualTo(-2);
        assertThat(t.walkLookup(V, B2 + (64L << 21), -1)).isEqualTo(-2);
        assertThat(t.walkLookup(V + 1, B2, -1)).isEqualTo(-2);
        assertThat(t.walkHits()).as("misses do not count").isEqualTo(4);

        assertThatThrownBy(() -> t.fillWalk(V, A3, 3, pte(1), 0, gen)).isInstanceOf(PageTableException.class)
                .hasMessageContaining("level");
        assertThatThrownBy(() -> t.fillWalk(V, A3, -2, pte(1), 0, gen)).isInstanceOf(PageTableException.class)
                .hasMessageContaining("level");
        Tlb none = new Tlb("cpu1", Granule.G4K, 512, 64, 0);
        assertThat(none.fillWalk(V, B1, 1, pte(30), 31, none.generation())).as("no walk cache").isFalse();
        assertThat(none.walkLookup(V, B1, -1)).isEqualTo(-2);
    }

    @Test
    void aFillRacingAnInvalidationLeavesNothingCached() {
        Tlb t = new Tlb("cpu0", Granule.G4K);
        long gen = t.generation();
        t.invalidateAddress(V + 1, A0); // any invalidation after the walk began
        assertThat(t.fillWalk(V, B1, 1, pte(30), 31, gen)).isFalse();
        assertThat(t.fill(V, A3, 3, pte(3), gen)).isFalse();
        assertThat(t.walkSize()).isZero();
        assertThat(t.size()).isZero();
        assertThat(t.walkLookup(V, B1, -1)).isEqualTo(-2);
        assertThat(t.lookup(V, A3)).isEqualTo(-2);
        assertThat(t.walkFills()).isZero();
        assertThat(t.fills()).isZero();
    }

    @Test
    void invalidateAllEmptiesLeavesAndWalkCache() {
        Tlb t = new Tlb("cpu0", Granule.G4K);
        long gen = t.generation();
        t.fillWalk(V, B1, 1, pte(30), 31, gen);
        t.fillWalk(V + 1, B2, 2, pte(40), 41, gen);
        t.fill(V, A3, 3, pte(3), gen);
        t.invalidateAll();
        assertThat(t.walkSize()).isZero();
        assertThat(t.size()).isZero();
        assertThat(t.walkLookup(V, B1, -1)).isEqualTo(-2);
        assertThat(t.walkLookup(V + 1, B2, -1)).isEqualTo(-2);
        assertThat(t.lookup(V, A3)).isEqualTo(-2);
    }

    @Test
    void invalidateDropsOnlyTheLevelsInItsMasks() {
        Tlb t = new Tlb("cpu0", Granule.G4K);
        long a = 0x4000_5000L; // one address with walk entries at 0, 1, 2 and its page at 3
        long gen = t.generation();
        t.fillWalk(V, a, 0, pte(20), 0, gen);
        t.fillWalk(V, a, 1, pte(30), 0, gen);
        t.fillWalk(V, a, 2, pte(40), 0, gen);
        t.fill(V, a, 3, pte(3), gen);
        // Walk level 1 only (bit level + 1 = 2), no leaf level.
        t.invalidate(V, a, 1, 0, 1 << 2);
        assertThat(t.walkEntryStillHeld(V, a, 1)).isFalse();
        assertThat(t.walkEntryStillHeld(V, a, 0)).isTrue();
        assertThat(t.walkEntryStillHeld(V, a, 2)).isTrue();
        assertThat(t.lookup(V, a)).isEqualTo(3);
        // Leaf level 2 only: the level-3 page is kept; then leaf level 3 (bit 4): gone.
        t.invalidate(V, a, 1, 1 << 3, 0);
        assertThat(t.lookup(V, a)).isEqualTo(3);
        t.invalidate(V, a, 1, 1 << 4, 0);
        assertThat(t.lookup(V, a)).isEqualTo(-2);
        assertThat(t.walkSize()).isEqualTo(2);
        // Ranged form (size > 1 scans): walk level 0 only over the 1G around a.
        t.invalidate(V, 0x4000_0000L, 0x4000_0000L, 0, 1 << 1);
        assertThat(t.walkEntryStillHeld(V, a, 0)).isFalse();
        assertThat(t.walkEntryStillHeld(V, a, 2)).isTrue();
    }

    @Test
    void unfillUndoesExactlyTheOwnFill() {
        Tlb t = new Tlb("cpu0", Granule.G4K);
        long gen = t.generation();
        t.fill(V, A3, 3, pte(3), gen);   // page slot 7
        t.fill(V, A1, 1, pte(1), gen);   // block slot 5
        t.fillWalk(V, B1, 1, pte(30), 0, gen);
        t.fillWalk(V, B1, 0, pte(20), 0, gen);
        t.unfill(V + 1, A3, 3);
        assertThat(t.lookup(V, A3)).as("another VMID's undo does not touch it").isEqualTo(3);
        t.unfill(V, A3, 3);
        assertThat(t.lookup(V, A3)).isEqualTo(-2);
        assertThat(t.lookup(V, A1)).isEqualTo(1);
        t.unfillWalk(V, B1, 1);
        assertThat(t.walkLookup(V, B1, 1)).isEqualTo(-2);
        assertThat(t.walkLookup(V, B1, 0)).as("the level-0 entry stays").isEqualTo(0);
        assertThat(t.walkSize()).isEqualTo(1);
    }

    @Test
    void strictReplacementRefusesEvictions() {
        Tlb t = new Tlb("cpu0", Granule.G4K);
        assertThat(t.strict()).isFalse();
        t.setStrict(true);
        assertThat(t.strict()).isTrue();
        long gen = t.generation();
        assertThat(t.fill(V, A3, 3, pte(3), gen)).isTrue();
        // 512 pages further: the same page slot.
        assertThat(t.fill(V, A3 + (512L << 12), 3, pte(4), gen)).isFalse();
        assertThat(t.lookup(V, A3)).isEqualTo(3);
        assertThat(t.fillWalk(V, B1, 1, pte(30), 0, gen)).isTrue();
        assertThat(t.fillWalk(V, B1 + (64L << 30), 1, pte(31), 0, gen)).isFalse();
        t.setStrict(false);
        assertThat(t.fill(V, A3 + (512L << 12), 3, pte(4), gen)).as("evicts when not strict").isTrue();
        assertThat(t.lookup(V, A3)).isEqualTo(-2);
    }
}
