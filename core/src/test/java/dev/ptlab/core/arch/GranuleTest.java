package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/** Granule facts from kvm-pgtable.md §1 and the VMSAv8-64 translation-granule rules. */
class GranuleTest {

    @ParameterizedTest
    @CsvSource({"G4K, 4096, 512, 9", "G16K, 16384, 2048, 11", "G64K, 65536, 8192, 13"})
    void sizesAndEntriesPerTable(Granule g, long pageSize, int entries, int bitsPerLevel) {
        assertThat(g.pageSize()).isEqualTo(pageSize);
        assertThat(g.pageMask()).isEqualTo(pageSize - 1);
        assertThat(g.entriesPerTable()).isEqualTo(entries);
        // a table is one page of 8-byte descriptors
        assertThat((long) g.entriesPerTable() * Granule.BYTES_PER_ENTRY).isEqualTo(pageSize);
        assertThat(g.bitsPerLevel()).isEqualTo(bitsPerLevel);
    }

    /** The level-shift table of kvm-pgtable.md §1 (bytes mapped by one entry = 2^shift). */
    @ParameterizedTest(name = "{0} L{1} -> {2}")
    @CsvSource({
        "G4K, -1, 48", "G4K, 0, 39", "G4K, 1, 30", "G4K, 2, 21", "G4K, 3, 12",
        "G16K, -1, 58", "G16K, 0, 47", "G16K, 1, 36", "G16K, 2, 25", "G16K, 3, 14",
        "G64K, 0, 55", "G64K, 1, 42", "G64K, 2, 29", "G64K, 3, 16",
    })
    void levelShifts(Granule g, int level, int shift) {
        assertThat(g.levelShift(level)).isEqualTo(shift);
        assertThat(g.levelSize(level)).isEqualTo(1L << shift);
    }

    @Test
    void wellKnownBlockSizes() {
        assertThat(Granule.G4K.levelSize(1)).isEqualTo(1L << 30);   // 1 GiB
        assertThat(Granule.G4K.levelSize(2)).isEqualTo(2L << 20);   // 2 MiB
        assertThat(Granule.G16K.levelSize(2)).isEqualTo(32L << 20); // 32 MiB
        assertThat(Granule.G64K.levelSize(2)).isEqualTo(512L << 20); // 512 MiB
    }

    /** KVM_PGTABLE_MIN_BLOCK_LEVEL: 1 for 4K, 2 for 16K and 64K; level 3 holds pages. */
    @Test
    void leafLevels() {
        assertThat(Granule.G4K.minBlockLevel()).isEqualTo(1);
        assertThat(Granule.G16K.minBlockLevel()).isEqualTo(2);
        assertThat(Granule.G64K.minBlockLevel()).isEqualTo(2);
        boolean[][] allowed = {
            // L-1    L0     L1     L2    L3
            {false, false, true, true, true},   // 4K
            {false, false, false, true, true},  // 16K
            {false, false, false, true, true},  // 64K
        };
        for (Granule g : Granule.values()) {
            for (int level = -1; level <= 3; level++) {
                assertThat(g.leafAllowed(level)).as("%s L%d", g, level).isEqualTo(allowed[g.ordinal()][level + 1]);
            }
            assertThat(g.leafAllowed(4)).isFalse();
            assertThat(g.leafAllowed(-2)).isFalse();
        }
    }

    /** Within one table, idx = the level's address bits: [shift+bits-1 : shift] of the level. */
    @ParameterizedTest
    @EnumSource(Granule.class)
    void indexExtractsTheLevelsAddressBits(Granule g) {
        int bits = g.bitsPerLevel();
        int pageShift = g.shift();
        SplittableRandom rnd = new SplittableRandom(g.ordinal() + 7);
        int firstLevel = g == Granule.G64K ? 1 : 0;
        for (int i = 0; i < 5000; i++) {
            long addr = rnd.nextLong() & ((1L << 52) - 1);
            for (int level = firstLevel; level <= 3; level++) {
                int lo = pageShift + bits * (3 - level);
                long expected = (addr / (1L << lo)) % g.entriesPerTable();
                assertThat(g.index(addr, level)).isEqualTo((int) expected);
            }
        }
        // hand-computed 4K vector: 0x0000_0080_4020_1000 -> L0 1, L1 1, L2 1, L3 1
        if (g == Granule.G4K) {
            long a = (1L << 39) | (1L << 30) | (1L << 21) | (1L << 12);
            for (int level = 0; level <= 3; level++) assertThat(g.index(a, level)).isEqualTo(1);
            assertThat(g.index(0x0000_FFFF_FFFF_FFFFL, 3)).isEqualTo(511);
        }
    }

    /** TCR/VTCR.TG0: 0b00 4K, 0b01 64K, 0b10 16K. TCR.TG1: 0b01 16K, 0b10 4K, 0b11 64K (ARM ARM). */
    @Test
    void translationGranuleEncodings() {
        assertThat(Granule.G4K.tg0()).isEqualTo(0b00);
        assertThat(Granule.G64K.tg0()).isEqualTo(0b01);
        assertThat(Granule.G16K.tg0()).isEqualTo(0b10);
        assertThat(Granule.G16K.tg1()).isEqualTo(0b01);
        assertThat(Granule.G4K.tg1()).isEqualTo(0b10);
        assertThat(Granule.G64K.tg1()).isEqualTo(0b11);
    }

    /** VTCR_EL2.SL0 base: SL0 = base - start level; 2 for 4K, 3 for 16K and 64K. */
    @Test
    void sl0Base() {
        assertThat(Granule.G4K.sl0Base()).isEqualTo(2);
        assertThat(Granule.G16K.sl0Base()).isEqualTo(3);
        assertThat(Granule.G64K.sl0Base()).isEqualTo(3);
    }

    @Test
    void parseAndLabel() {
        assertThat(Granule.parse("4k")).isEqualTo(Granule.G4K);
        assertThat(Granule.parse(" 16K ")).isEqualTo(Granule.G16K);
        assertThat(Granule.parse("65536")).isEqualTo(Granule.G64K);
        for (Granule g : Granule.values()) assertThat(Granule.parse(g.label())).isEqualTo(g);
        assertThat(Granule.G64K.label()).isEqualTo("64k");
        assertThatThrownBy(() -> Granule.parse("8k"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("granule: \"8k\" is not one of 4k, 16k, 64k");
    }

    @Test
    void levelRange() {
        Granule.checkLevel(-1);
        Granule.checkLevel(3);
        assertThatThrownBy(() -> Granule.checkLevel(4)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("level: 4 is outside -1..3");
        assertThatThrownBy(() -> Granule.checkLevel(-2)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("level: -2 is outside -1..3");
        assertThatThrownBy(() -> Granule.G4K.levelSize(4)).isInstanceOf(IllegalArgumentException.class);
    }
}
