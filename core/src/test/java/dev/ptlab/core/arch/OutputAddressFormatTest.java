package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.longs;

import org.junit.jupiter.api.Test;

/**
 * The three output-address encodings of kvm-pgtable.md §2.2, checked bit by bit:
 * PA48 = OA[47:g] in place; PA52_64K = OA[47:16] in place and OA[51:48] in bits [15:12];
 * LPA2 = OA[49:g] in place and OA[51:50] in bits [9:8].
 */
class OutputAddressFormatTest {

    private static long bits(long v, int hi, int lo) {
        return (v >>> lo) & ((1L << (hi - lo + 1)) - 1);
    }

    /** The expected descriptor, assembled field by field from the architecture's layout. */
    private static long expectedEncoding(OutputAddressFormat f, Granule g, long pa) {
        int s = g.shift();
        switch (f) {
            case PA48: return bits(pa, 47, s) << s;
            case PA52_64K: return (bits(pa, 47, 16) << 16) | (bits(pa, 51, 48) << 12);
            case LPA2: return (bits(pa, 49, s) << s) | (bits(pa, 51, 50) << 8);
            default: throw new AssertionError(f);
        }
    }

    @Test
    void handComputedVectors() {
        // PA48, 4K: in place
        assertThat(OutputAddressFormat.PA48.encode(0x0000_1234_5678_9000L, Granule.G4K)).isEqualTo(0x0000_1234_5678_9000L);
        // PA52_64K: PA[51:48] = 0xA moves to bits [15:12]
        assertThat(OutputAddressFormat.PA52_64K.encode(0x000A_BCDE_F012_0000L, Granule.G64K))
                .isEqualTo(0x0000_BCDE_F012_A000L);
        assertThat(OutputAddressFormat.PA52_64K.decode(0x0000_BCDE_F012_A000L, Granule.G64K))
                .isEqualTo(0x000A_BCDE_F012_0000L);
        // LPA2, 4K: PA[49:48] stay, PA[51:50] = 0b11 move to bits [9:8]
        assertThat(OutputAddressFormat.LPA2.encode(0x000F_1234_5678_9000L, Granule.G4K))
                .isEqualTo(0x0003_1234_5678_9300L);
        assertThat(OutputAddressFormat.LPA2.decode(0x0003_1234_5678_9300L, Granule.G4K))
                .isEqualTo(0x000F_1234_5678_9000L);
        // LPA2, 16K: PA[51:48] = 0b1001 -> bit 48 stays, bit 51 goes to bit 9
        assertThat(OutputAddressFormat.LPA2.encode(0x0009_0000_0000_4000L, Granule.G16K))
                .isEqualTo(0x0001_0000_0000_4200L);
    }

    @Test
    void addressMasks() {
        assertThat(OutputAddressFormat.PA48.addressMask(Granule.G4K)).isEqualTo(0x0000_FFFF_FFFF_F000L);
        assertThat(OutputAddressFormat.PA48.addressMask(Granule.G16K)).isEqualTo(0x0000_FFFF_FFFF_C000L);
        assertThat(OutputAddressFormat.PA48.addressMask(Granule.G64K)).isEqualTo(0x0000_FFFF_FFFF_0000L);
        assertThat(OutputAddressFormat.PA52_64K.addressMask(Granule.G64K)).isEqualTo(0x0000_FFFF_FFFF_F000L);
        assertThat(OutputAddressFormat.LPA2.addressMask(Granule.G4K)).isEqualTo(0x0003_FFFF_FFFF_F300L);
        assertThat(OutputAddressFormat.LPA2.addressMask(Granule.G16K)).isEqualTo(0x0003_FFFF_FFFF_C300L);
    }

    @Test
    void paBitsAndShareability() {
        assertThat(OutputAddressFormat.PA48.paBits()).isEqualTo(48);
        assertThat(OutputAddressFormat.PA52_64K.paBits()).isEqualTo(52);
        assertThat(OutputAddressFormat.LPA2.paBits()).isEqualTo(52);
        assertThat(OutputAddressFormat.PA48.hasShareabilityField()).isTrue();
        assertThat(OutputAddressFormat.PA52_64K.hasShareabilityField()).isTrue();
        // bits [9:8] carry PA[51:50] under LPA2, so there is no SH field
        assertThat(OutputAddressFormat.LPA2.hasShareabilityField()).isFalse();
    }

    @Test
    void pa52FormatIsOnlyFor64K() {
        OutputAddressFormat.PA52_64K.checkGranule(Granule.G64K);
        assertThatThrownBy(() -> OutputAddressFormat.PA52_64K.checkGranule(Granule.G4K))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("oa-format: PA52_64K needs the 64k granule, not 4k");
        assertThatThrownBy(() -> OutputAddressFormat.PA52_64K.checkGranule(Granule.G16K))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not 16k");
        assertThatThrownBy(() -> OutputAddressFormat.LPA2.checkGranule(Granule.G64K))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("oa-format: LPA2 needs the 4k or 16k granule, not 64k (use PA52_64K)");
        for (Granule g : Granule.values()) OutputAddressFormat.PA48.checkGranule(g);
        OutputAddressFormat.LPA2.checkGranule(Granule.G4K);
        OutputAddressFormat.LPA2.checkGranule(Granule.G16K);
    }

    private static void roundTrip(OutputAddressFormat f, Granule g) {
        int paBits = f.paBits();
        long mask = f.addressMask(g);
        qt().withFixedSeed(0x5EED + f.ordinal() * 3 + g.ordinal()).withExamples(3000)
                .forAll(longs().between(0, (1L << (paBits - g.shift())) - 1), longs().all())
                .checkAssert((frame, noise) -> {
                    long pa = frame << g.shift();
                    long enc = f.encode(pa, g);
                    assertThat(enc).as("encode 0x%x", pa).isEqualTo(expectedEncoding(f, g, pa));
                    assertThat(enc & ~mask).as("encoding stays inside the address mask").isZero();
                    assertThat(f.decode(enc, g)).as("decode(encode(0x%x))", pa).isEqualTo(pa);
                    // attribute bits around the address never leak into the decoded PA
                    assertThat(f.decode(enc | (noise & ~mask), g)).isEqualTo(pa);
                });
    }

    @Test
    void pa48RoundTripsOnEveryGranule() {
        for (Granule g : Granule.values()) roundTrip(OutputAddressFormat.PA48, g);
    }

    @Test
    void pa52With64KRoundTrips() {
        roundTrip(OutputAddressFormat.PA52_64K, Granule.G64K);
    }

    @Test
    void lpa2RoundTripsOn4kAnd16k() {
        roundTrip(OutputAddressFormat.LPA2, Granule.G4K);
        roundTrip(OutputAddressFormat.LPA2, Granule.G16K);
    }

    @Test
    void eachHighPaBitLandsInItsOwnDescriptorBit() {
        for (int bit = 48; bit <= 51; bit++) {
            long pa = 1L << bit;
            assertThat(OutputAddressFormat.PA52_64K.encode(pa, Granule.G64K)).isEqualTo(1L << (bit - 36));
            long lpa2 = OutputAddressFormat.LPA2.encode(pa, Granule.G4K);
            assertThat(lpa2).isEqualTo(bit < 50 ? pa : 1L << (bit - 42));
        }
        qt().withFixedSeed(42).forAll(integers().between(12, 47)).checkAssert(bit -> {
            long pa = 1L << bit;
            for (OutputAddressFormat f : OutputAddressFormat.values()) {
                Granule g = f == OutputAddressFormat.PA52_64K ? Granule.G64K : Granule.G4K;
                if (bit < g.shift()) continue;
                assertThat(f.encode(pa, g)).isEqualTo(pa); // low address bits are always in place
            }
        });
    }
}
