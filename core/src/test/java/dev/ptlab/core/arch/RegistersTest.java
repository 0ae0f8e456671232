package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * VTCR_EL2 / VTTBR_EL2 / TCR_EL2 values, field by field, against the ARM ARM register layouts:
 * VTCR_EL2: T0SZ [5:0], SL0 [7:6], IRGN0 [9:8], ORGN0 [11:10], SH0 [13:12], TG0 [15:14],
 * PS [18:16], VS 19, HA 21, RES1 31, DS 32. TCR_EL2 (E2H=0): T0SZ, IRGN0, ORGN0, SH0, TG0 as
 * above, PS [18:16], HA 21, RES1 23 and 31, DS 32. VTTBR_EL2: VMID [63:48], BADDR [47:1]; with
 * 52-bit output addresses BADDR[51:48] sits in bits [5:2].
 */
class RegistersTest {

    private static long field(long v, int hi, int lo) {
        return (v >>> lo) & ((1L << (hi - lo + 1)) - 1);
    }

    /** The start level an SL0 value selects, as the ARM ARM defines it (with SL2 = 0). */
    private static int archStartLevel(Granule g, long sl0) {
        if (g == Granule.G4K) {
            return new int[] {2, 1, 0, 3}[(int) sl0]; // 0b11 = level 3 (FEAT_TTST)
        }
        return new int[] {3, 2, 1, 0}[(int) sl0]; // 16K/64K; level 0 only for 16K with LPA2
    }

    private static long tg0(Granule g) {
        switch (g) {
            case G4K: return 0b00;
            case G64K: return 0b01;
            case G16K: return 0b10;
            default: throw new AssertionError(g);
        }
    }

    private static List<Geometry> stage2Geometries() {
        List<Geometry> out = new ArrayList<>();
        for (Granule g : Granule.values()) {
            for (int ipa = 32; ipa <= 48; ipa++) out.add(Geometry.stage2(g, ipa));
            if (g != Granule.G64K) for (int ipa = 32; ipa <= 52; ipa += 4) out.add(Geometry.stage2(g, ipa, OutputAddressFormat.LPA2));
        }
        out.add(Geometry.stage2(Granule.G64K, 52, OutputAddressFormat.PA52_64K));
        out.add(Geometry.stage2(Granule.G64K, 42, OutputAddressFormat.PA52_64K));
        return out;
    }

    @Test
    void vtcrFieldsForEveryGeometry() {
        for (Geometry geo : stage2Geometries()) {
            for (boolean ha : new boolean[] {false, true}) {
                long v = Registers.vtcr(geo, ha);
                String what = geo + " HA=" + ha;
                assertThat(field(v, 5, 0)).as("T0SZ %s", what).isEqualTo(64 - geo.iaBits());
                assertThat(archStartLevel(geo.granule(), field(v, 7, 6))).as("SL0 %s", what).isEqualTo(geo.startLevel());
                assertThat(field(v, 9, 8)).as("IRGN0 WBWA").isEqualTo(0b01);
                assertThat(field(v, 11, 10)).as("ORGN0 WBWA").isEqualTo(0b01);
                assertThat(field(v, 13, 12)).as("SH0 inner shareable").isEqualTo(0b11);
                assertThat(field(v, 15, 14)).as("TG0 %s", what).isEqualTo(tg0(geo.granule()));
                assertThat(field(v, 18, 16)).as("PS %s", what).isEqualTo(geo.paBits() == 52 ? 0b110 : 0b101);
                assertThat(field(v, 19, 19)).as("VS 16-bit VMID").isEqualTo(1);
                assertThat(field(v, 21, 21)).as("HA").isEqualTo(ha ? 1 : 0);
                assertThat(field(v, 31, 31)).as("RES1").isEqualTo(1);
                assertThat(field(v, 32, 32)).as("DS %s", what).isEqualTo(geo.oaFormat() == OutputAddressFormat.LPA2 ? 1 : 0);
                // nothing else: bit 20, [30:22] (HD, ...) and [63:33] are clear
                assertThat(v & ~0x1_802F_FFFFL).as("stray bits in 0x%x", v).isZero();
                // the library's own decoders agree
                assertThat(Registers.vtcrIpaBits(v)).isEqualTo(geo.iaBits());
                assertThat(Registers.vtcrStartLevel(v, geo.granule())).isEqualTo(geo.startLevel());
            }
        }
    }

    @Test
    void vtcrHandComputed() {
        // 4K/40: T0SZ 24, SL0 01 (L1), IRGN/ORGN 01, SH0 11, TG0 00, PS 101, VS, RES1
        assertThat(Registers.vtcr(Geometry.stage2(Granule.G4K, 40), false)).isEqualTo(0x800D_3558L);
        assertThat(Registers.vtcr(Geometry.stage2(Granule.G4K, 40), true)).isEqualTo(0x802D_3558L);
        // 16K/40: T0SZ 24, SL0 01 (L2 for 16K), TG0 10
        assertThat(Registers.vtcr(Geometry.stage2(Granule.G16K, 40), false)).isEqualTo(0x800D_B558L);
        // 4K/52 LPA2: T0SZ 12, SL0 10 (L0), PS 110, DS
        assertThat(Registers.vtcr(Geometry.stage2(Granule.G4K, 52), false)).isEqualTo(0x1_800E_358CL);
    }

    @Test
    void vtcrRejectsHypGeometry() {
        assertThatThrownBy(() -> Registers.vtcr(Geometry.hyp(Granule.G4K, 48), false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("geometry: ");
        assertThatThrownBy(() -> Registers.tcrEl2(Geometry.stage2(Granule.G4K, 40), false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("geometry: ");
    }

    @Test
    void psEncodings() {
        int[] bits = {32, 36, 40, 42, 44, 48, 52};
        for (int i = 0; i < bits.length; i++) assertThat(Registers.psField(bits[i])).isEqualTo(i);
        assertThatThrownBy(() -> Registers.psField(46))
                .isInstanceOf(dev.ptlab.core.PageTableException.class).hasMessageStartingWith("pa-bits: 46 ")
                .satisfies(e -> assertThat(((dev.ptlab.core.PageTableException) e).argument()).isEqualTo("pa-bits"));
    }

    @Test
    void vttbrVmidAndBaseAddress() {
        Geometry g40 = Geometry.stage2(Granule.G4K, 40);
        assertThat(Registers.vttbr(g40, 0x8000_2000L, 0xABCD)).isEqualTo(0xABCD_0000_8000_2000L);
        assertThat(Registers.vttbr(g40, 0x0000_FFFF_FFFF_E000L, 0xFFFF)).isEqualTo(0xFFFF_FFFF_FFFF_E000L);
        assertThat(field(Registers.vttbr(g40, 0x1000, 1), 63, 48)).isEqualTo(1);
        assertThat(Registers.vttbr(g40, 0x1000, 0)).isEqualTo(0x1000);
        assertThatThrownBy(() -> Registers.vttbr(g40, 0x1000, 0x1_0000))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("vmid: 65536 is outside 0..65535");
        assertThatThrownBy(() -> Registers.vttbr(g40, 0x1000, -1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("vmid: -1 ");
    }

    @Test
    void baddrWith52BitOutputAddresses() {
        // PA52_64K: PA[51:48] = 0xF -> bits [5:2]; PA[47:6] in place
        Geometry g = Geometry.stage2(Granule.G64K, 52, OutputAddressFormat.PA52_64K);
        long root = 0x000F_0000_0001_0000L;
        long v = Registers.vttbr(g, root, 7);
        assertThat(v).isEqualTo(0x0007_0000_0001_003CL);
        assertThat(field(v, 5, 2)).isEqualTo(0xF);
        assertThat(field(v, 47, 6) << 6).isEqualTo(root & ((1L << 48) - 1));
        // LPA2, 4K, 16 concatenated roots (64K-aligned)
        Geometry l = Geometry.stage2(Granule.G4K, 52);
        long root2 = 0x0005_1234_5677_0000L;
        long v2 = Registers.vttbr(l, root2, 0);
        assertThat(field(v2, 5, 2)).isEqualTo(0x5);
        assertThat(field(v2, 47, 6) << 6).isEqualTo(0x1234_5677_0000L);
        // the base address is recoverable: PA[51:48] from [5:2], PA[47:6] in place
        assertThat((field(v2, 5, 2) << 48) | (field(v2, 47, 6) << 6)).isEqualTo(root2);
        assertThat(Registers.ttbr0El2(Geometry.hyp(Granule.G4K, 52), root2)).isEqualTo(v2);
    }

    @Test
    void tcrEl2Fields() {
        for (Granule gr : Granule.values()) {
            for (Geometry geo : List.of(Geometry.hyp(gr, 39), Geometry.hyp(gr, 48), Geometry.hyp(gr, 52))) {
                for (boolean ha : new boolean[] {false, true}) {
                    long v = Registers.tcrEl2(geo, ha);
                    assertThat(field(v, 5, 0)).as("T0SZ").isEqualTo(64 - geo.iaBits());
                    assertThat(field(v, 9, 8)).isEqualTo(0b01);
                    assertThat(field(v, 11, 10)).isEqualTo(0b01);
                    assertThat(field(v, 13, 12)).isEqualTo(0b11);
                    assertThat(field(v, 15, 14)).as("TG0").isEqualTo(tg0(gr));
                    assertThat(field(v, 18, 16)).as("PS").isEqualTo(geo.paBits() == 52 ? 0b110 : 0b101);
                    assertThat(field(v, 21, 21)).as("HA").isEqualTo(ha ? 1 : 0);
                    assertThat(field(v, 23, 23)).as("RES1").isEqualTo(1);
                    assertThat(field(v, 31, 31)).as("RES1").isEqualTo(1);
                    assertThat(field(v, 32, 32)).as("DS").isEqualTo(geo.oaFormat() == OutputAddressFormat.LPA2 ? 1 : 0);
                    assertThat(v & ~0x1_80A7_FF3FL).as("stray bits in 0x%x", v).isZero();
                }
            }
        }
        // 4K/48: T0SZ 16, 0x3500, PS 101, RES1 23 and 31
        assertThat(Registers.tcrEl2(Geometry.hyp(Granule.G4K, 48), false)).isEqualTo(0x8085_3510L);
        assertThat(Registers.ttbr0El2(Geometry.hyp(Granule.G4K, 48), 0x4000_0000L)).isEqualTo(0x4000_0000L);
    }

    @Test
    void hcrFwbIsBit46() {
        assertThat(Registers.hcrFwb(true)).isEqualTo(1L << 46);
        assertThat(Registers.hcrFwb(false)).isZero();
    }
}
