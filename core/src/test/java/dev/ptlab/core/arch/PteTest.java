package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Format-independent descriptor facts: type bits, owner annotations, LOCKED, counted rules (kvm-pgtable.md §2.1, §2.7). */
class PteTest {

    @Test
    void typeBits() {
        // below level 3: 0b11 = table, 0b01 = block
        for (int level = -1; level < 3; level++) {
            assertThat(Pte.isTable(0x1000L | 0b11, level)).isTrue();
            assertThat(Pte.isTable(0x1000L | 0b01, level)).isFalse();
            assertThat(Pte.isValidLeaf(0x1000L | 0b01, level)).isTrue();
            assertThat(Pte.isValidLeaf(0x1000L | 0b11, level)).isFalse();
            assertThat(Pte.leafType(level)).isEqualTo(0b01);
        }
        // level 3: 0b11 = page, never a table
        assertThat(Pte.isTable(0x1000L | 0b11, 3)).isFalse();
        assertThat(Pte.isValidLeaf(0x1000L | 0b11, 3)).isTrue();
        assertThat(Pte.leafType(3)).isEqualTo(0b11);
        // invalid entries are neither tables nor valid leaves, whatever bit 1 says
        for (int level = -1; level <= 3; level++) {
            assertThat(Pte.isTable(0x1000L | 0b10, level)).isFalse();
            assertThat(Pte.isValidLeaf(0x1000L | 0b10, level)).isFalse();
            assertThat(Pte.isValid(0b10)).isFalse();
        }
    }

    @Test
    void attributeMasks() {
        assertThat(Pte.ATTR_LO).isEqualTo(0b1111_1111_1100L);            // bits [11:2]
        assertThat(Pte.ATTR_HI).isEqualTo(0xFFFCL << 48);               // bits [63:50]
        assertThat(Long.bitCount(Pte.ATTR_HI)).isEqualTo(14);
        assertThat(Long.numberOfTrailingZeros(Pte.ATTR_HI)).isEqualTo(50);
        assertThat(Pte.SW_BITS).isEqualTo(0xFL << 55);                  // bits [58:55]
    }

    @Test
    void ownerAnnotationsLiveInBits9To2() {
        for (int owner = 0; owner <= 0xFF; owner++) {
            long pte = Pte.ownerAnnotation(owner);
            assertThat(pte).isEqualTo((long) owner << 2);
            assertThat(pte & ~0x3FCL).as("only bits [9:2]").isZero();
            assertThat(Pte.isValid(pte)).isFalse();
            assertThat(Pte.isLocked(pte)).isFalse();
            assertThat(Pte.owner(pte)).isEqualTo(owner);
            // any non-zero annotation holds a reference on its table; owner 0 is the empty entry
            assertThat(Pte.isCountedStage2(pte)).isEqualTo(owner != 0);
            assertThat(Pte.isCountedHyp(pte)).isFalse();
        }
        assertThat(Pte.ownerAnnotation(0)).isZero();
        assertThatThrownBy(() -> Pte.ownerAnnotation(256)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("owner: 256 is outside 0..255");
        assertThatThrownBy(() -> Pte.ownerAnnotation(-1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("owner: -1 ");
    }

    @Test
    void lockedIsBit10OfAnInvalidEntry() {
        assertThat(Pte.LOCKED).isEqualTo(1L << 10);
        assertThat(Pte.isLocked(Pte.LOCKED)).isTrue();
        assertThat(Pte.isValid(Pte.LOCKED)).isFalse();
        // bit 10 of a *valid* entry is the access flag, not a lock
        long youngLeaf = 0x4000_0000L | (1L << 10) | 0b01;
        assertThat(Pte.isLocked(youngLeaf)).isFalse();
        assertThat(Pte.isLocked(0)).isFalse();
        // a LOCKED entry is never counted: the break dropped the old entry's reference
        assertThat(Pte.isCountedStage2(Pte.LOCKED)).isFalse();
        assertThat(Pte.isCountedHyp(Pte.LOCKED)).isFalse();
        // and carries no owner
        assertThat(Pte.owner(Pte.LOCKED)).isZero();
    }

    @Test
    void countedRules() {
        SplittableRandom rnd = new SplittableRandom(3);
        assertThat(Pte.isCountedStage2(0)).isFalse();
        assertThat(Pte.isCountedHyp(0)).isFalse();
        for (int i = 0; i < 10_000; i++) {
            long pte = rnd.nextLong();
            if (pte == Pte.LOCKED) continue;
            // stage-2: every non-zero entry other than LOCKED
            assertThat(Pte.isCountedStage2(pte)).isEqualTo(pte != 0);
            // hyp: valid entries only
            assertThat(Pte.isCountedHyp(pte)).isEqualTo((pte & 1) != 0);
        }
    }

    @Test
    void ownerOfValidEntryIsZero() {
        // bits [9:2] of a valid entry are attributes, not an owner
        assertThat(Pte.owner(0x1000L | 0x3FCL | 1)).isZero();
    }

    @Test
    void alignDown() {
        assertThat(Pte.alignDown(0x4020_1234L, 0x20_0000L)).isEqualTo(0x4020_0000L);
        assertThat(Pte.alignDown(0x4020_0000L, 0x20_0000L)).isEqualTo(0x4020_0000L);
        assertThat(Pte.alignDown(0x3FFF_FFFFL, 1L << 30)).isZero();
    }
}
