package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Geometry against kvm-pgtable.md §1.1. The table rows are typed in from the reference; the
 * formula check recomputes levels/start/pages from first principles (bits resolved per level,
 * bytes covered by one start-level table) rather than through {@link Granule#levelShift}.
 */
class GeometryTest {

    /** The worked-examples table of kvm-pgtable.md §1.1 (granule, IPA bits, levels, start, PGD pages). */
    @ParameterizedTest(name = "{0}/{1}-bit: {2} levels, start L{3}, {4} root pages")
    @CsvSource({
        "G4K, 32, 2, 2, 4",
        "G4K, 36, 3, 1, 1",
        "G4K, 40, 3, 1, 2",
        "G4K, 42, 3, 1, 8",
        "G4K, 44, 4, 0, 1",
        "G4K, 48, 4, 0, 1",
        "G4K, 52, 4, 0, 16",
        "G16K, 40, 2, 2, 16",
        "G16K, 48, 3, 1, 2",
        "G64K, 40, 2, 2, 1",
        "G64K, 44, 2, 2, 4",
        "G64K, 48, 3, 1, 1",
        "G64K, 52, 3, 1, 1",
    })
    void stage2MatchesReferenceTable(Granule g, int ipaBits, int levels, int start, int pages) {
        Geometry geo = Geometry.stage2(g, ipaBits);
        assertThat(geo.stage()).isEqualTo(Stage.STAGE2);
        assertThat(geo.granule()).isEqualTo(g);
        assertThat(geo.iaBits()).isEqualTo(ipaBits);
        assertThat(geo.levels()).isEqualTo(levels);
        assertThat(geo.startLevel()).isEqualTo(start);
        assertThat(geo.rootPages()).isEqualTo(pages);
        assertThat(geo.iaLimit()).isEqualTo(1L << ipaBits);
    }

    @Test
    void issueExamples() {
        // 4K/40-bit: start at L1 with 2 concatenated roots.
        Geometry a = Geometry.stage2(Granule.G4K, 40);
        assertThat(a.startLevel()).isEqualTo(1);
        assertThat(a.rootPages()).isEqualTo(2);
        // 16K/40-bit: start at L2 with 16 concatenated roots.
        Geometry b = Geometry.stage2(Granule.G16K, 40);
        assertThat(b.startLevel()).isEqualTo(2);
        assertThat(b.rootPages()).isEqualTo(16);
    }

    @Test
    void defaultOutputFormatIsPa48UpTo48BitsAndLpa2Above() {
        for (Granule g : Granule.values()) {
            assertThat(Geometry.stage2(g, 40).oaFormat()).isEqualTo(OutputAddressFormat.PA48);
            assertThat(Geometry.stage2(g, 48).oaFormat()).isEqualTo(OutputAddressFormat.PA48);
            assertThat(Geometry.stage2(g, 52).oaFormat())
                    .isEqualTo(g == Granule.G64K ? OutputAddressFormat.PA52_64K : OutputAddressFormat.LPA2);
            assertThat(Geometry.stage2(g, 48).paBits()).isEqualTo(48);
            assertThat(Geometry.stage2(g, 52).paBits()).isEqualTo(52);
        }
    }

    /**
     * For every granule and IPA size 32..52: levels = max(2, floor((ipa - 8) / (shift - 3))),
     * start = 4 - levels, and the number of concatenated roots is ceil(2^ipa / span of one
     * start-level table), where that span = entries per table x bytes per start-level entry, with
     * bytes per entry computed as page size x entries^(3 - level). At most 16 roots.
     */
    @ParameterizedTest
    @EnumSource(Granule.class)
    void formulaHoldsForEveryIpaSize(Granule g) {
        int shift = g == Granule.G4K ? 12 : g == Granule.G16K ? 14 : 16;
        int bitsPerLevel = shift - 3;
        for (int ipa = 32; ipa <= 52; ipa++) {
            int levels = Math.max(2, Math.floorDiv(ipa - 4 - 4, bitsPerLevel));
            int start = 4 - levels;
            // bits covered by one entry at the start level, then by one whole table at that level
            int entryBits = shift + bitsPerLevel * (3 - start);
            int tableBits = entryBits + bitsPerLevel;
            long pages = ipa <= tableBits ? 1 : 1L << (ipa - tableBits);
            assertThat(pages).as("%s/%d roots", g, ipa).isBetween(1L, 16L);

            Geometry geo = Geometry.stage2(g, ipa);
            assertThat(geo.levels()).as("%s/%d levels", g, ipa).isEqualTo(levels);
            assertThat(geo.startLevel()).as("%s/%d start", g, ipa).isEqualTo(start);
            assertThat(geo.rootPages()).as("%s/%d roots", g, ipa).isEqualTo((int) pages);
            // KVM always concatenates at the start level, so it never needs level -1 or 3 (SL2/TTST)
            assertThat(start).isBetween(0, 2);
        }
    }

    @ParameterizedTest
    @CsvSource({"G4K, 40", "G4K, 32", "G4K, 42", "G4K, 52", "G16K, 40", "G16K, 48", "G64K, 44", "G64K, 48"})
    void rootPageIndexPicksTheConcatenatedTableCoveringTheAddress(Granule g, int ipa) {
        Geometry geo = Geometry.stage2(g, ipa);
        // one root table covers entries x (bytes per start-level entry)
        long entrySize = g.pageSize();
        for (int l = 3; l > geo.startLevel(); l--) entrySize *= g.entriesPerTable();
        long rootSpan = entrySize * g.entriesPerTable();
        for (int k = 0; k < geo.rootPages(); k++) {
            long first = k * rootSpan;
            long last = first + rootSpan - 1;
            assertThat(geo.rootPageIndex(first)).as("first byte of root %d", k).isEqualTo(k);
            assertThat(geo.rootPageIndex(last)).as("last byte of root %d", k).isEqualTo(k);
            assertThat(geo.rootPageIndex(first + rootSpan / 2)).isEqualTo(k);
        }
        // the roots cover the whole IPA space, and the last one is needed (partly used at most)
        assertThat(geo.rootPages() * rootSpan).isGreaterThanOrEqualTo(1L << ipa);
        assertThat((geo.rootPages() - 1) * rootSpan).isLessThan(1L << ipa);
        SplittableRandom rnd = new SplittableRandom(ipa * 31L + g.ordinal());
        for (int i = 0; i < 2000; i++) {
            long addr = rnd.nextLong(1L << ipa);
            assertThat(geo.rootPageIndex(addr)).isEqualTo((int) (addr / rootSpan));
        }
    }

    @Test
    void stage2RejectsOutOfRangeIpaSizes() {
        assertThatThrownBy(() -> Geometry.stage2(Granule.G4K, 31))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("ipa-bits: 31 ");
        assertThatThrownBy(() -> Geometry.stage2(Granule.G4K, 53))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("ipa-bits: 53 ");
        // a 52-bit IPA cannot be described with a 48-bit output format
        assertThatThrownBy(() -> Geometry.stage2(Granule.G4K, 52, OutputAddressFormat.PA48))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("ipa-bits: 52 ");
        // PA52_64K is a 64K-only format
        assertThatThrownBy(() -> Geometry.stage2(Granule.G4K, 40, OutputAddressFormat.PA52_64K))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("PA52_64K").hasMessageContaining("4k");
        assertThatThrownBy(() -> Geometry.stage2(null, 40)).isInstanceOf(IllegalArgumentException.class);
        assertThat(Geometry.stage2(Granule.G64K, 52, OutputAddressFormat.PA52_64K).rootPages()).isEqualTo(1);
    }

    // ---- hyp (EL2 stage-1): levels = floor((va - 4) / (shift - 3)), one root, no concatenation ----

    @ParameterizedTest(name = "{0}/{1}-bit VA: start L{2}")
    @CsvSource({
        "G4K, 48, 4, 0",
        "G4K, 52, 5, -1",
        "G4K, 39, 3, 1",
        "G16K, 47, 3, 1",
        "G16K, 48, 4, 0",
        "G64K, 48, 3, 1",
        "G64K, 42, 2, 2",
    })
    void hypGeometry(Granule g, int va, int levels, int start) {
        Geometry geo = Geometry.hyp(g, va);
        assertThat(geo.stage()).isEqualTo(Stage.HYP);
        assertThat(geo.levels()).isEqualTo(levels);
        assertThat(geo.startLevel()).isEqualTo(start);
        assertThat(geo.rootPages()).isEqualTo(1);
    }

    @Test
    void hypFormulaForEveryVaSize() {
        for (Granule g : Granule.values()) {
            int shift = g == Granule.G4K ? 12 : g == Granule.G16K ? 14 : 16;
            for (int va = 25; va <= 52; va++) {
                // smallest number of levels whose bits reach va: ceil((va - shift) / (shift - 3))
                int levels = (va - shift + (shift - 3) - 1) / (shift - 3);
                Geometry geo = Geometry.hyp(g, va);
                assertThat(geo.levels()).as("%s/%d", g, va).isEqualTo(levels);
                assertThat(geo.startLevel()).isEqualTo(4 - levels);
                assertThat(geo.rootPages()).isEqualTo(1);
                // the single root covers the VA space
                assertThat(shift + levels * (shift - 3)).isGreaterThanOrEqualTo(va);
            }
        }
    }

    @Test
    void hypRejectsOutOfRange() {
        assertThatThrownBy(() -> Geometry.hyp(Granule.G4K, 24))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("va-bits: 24 ");
        assertThatThrownBy(() -> Geometry.hyp(Granule.G4K, 53))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("va-bits: 53 ");
        assertThatThrownBy(() -> Geometry.hyp(Granule.G4K, 52, OutputAddressFormat.PA48))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("va-bits: 52 ");
        assertThatThrownBy(() -> Geometry.hyp(Granule.G16K, 48, OutputAddressFormat.PA52_64K))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("PA52_64K");
    }

    @Test
    void outputAddressRoundTripsThroughTheGeometry() {
        Geometry g48 = Geometry.stage2(Granule.G4K, 40);
        assertThat(g48.encodeAddress(0x0000_8765_4321_F000L)).isEqualTo(0x0000_8765_4321_F000L);
        assertThat(g48.outputAddress(0x0000_8765_4321_F000L | 0x7FFL | (0xFFFL << 52)))
                .isEqualTo(0x0000_8765_4321_F000L);
        assertThat(g48.addressMask()).isEqualTo(0x0000_FFFF_FFFF_F000L);
        Geometry g52 = Geometry.stage2(Granule.G64K, 52, OutputAddressFormat.PA52_64K);
        long pa = 0x000F_1234_5678_0000L;
        assertThat(g52.encodeAddress(pa)).isEqualTo(0x0000_1234_5678_0000L | 0xF000L);
        assertThat(g52.outputAddress(g52.encodeAddress(pa))).isEqualTo(pa);
    }
}
