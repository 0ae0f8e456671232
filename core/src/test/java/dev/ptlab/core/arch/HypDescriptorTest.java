package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * EL2 stage-1 (non-VHE) descriptors, kvm-pgtable.md §2.4 and the ARM ARM stage-1 block/page
 * format for a one-privilege-level regime: AttrIndx [4:2], AP[2:1] at [7:6] (AP[1] RES1, AP[2] =
 * read-only), SH [9:8], AF 10, XN 54.
 */
class HypDescriptorTest {

    private static final OutputAddressFormat PA48 = OutputAddressFormat.PA48;

    private static int attrIndx(long pte) {
        return (int) ((pte >>> 2) & 7);
    }

    private static int ap(long pte) {
        return (int) ((pte >>> 6) & 3);
    }

    @Test
    void attrIndxSelectsNormalOrDevice() {
        assertThat(attrIndx(HypDescriptor.attributes(Prot.RW, PA48))).isEqualTo(0);
        assertThat(attrIndx(HypDescriptor.attributes(Prot.RX, PA48))).isEqualTo(0);
        assertThat(attrIndx(HypDescriptor.attributes(Prot.DEVICE_RW, PA48))).isEqualTo(4);
        assertThat(attrIndx(HypDescriptor.attributes(Prot.RW.with(Prot.NORMAL_NC_BIT), PA48))).isEqualTo(2);
    }

    @Test
    void accessPermissions() {
        assertThat(ap(HypDescriptor.attributes(Prot.RW, PA48))).isEqualTo(0b01);
        assertThat(ap(HypDescriptor.attributes(Prot.R, PA48))).isEqualTo(0b11);
        assertThat(ap(HypDescriptor.attributes(Prot.RX, PA48))).isEqualTo(0b11);
        assertThat(ap(HypDescriptor.attributes(Prot.DEVICE_RW, PA48))).isEqualTo(0b01);
    }

    @Test
    void xnOnEveryNonExecutableMapping() {
        long xn = 1L << 54;
        assertThat(HypDescriptor.attributes(Prot.RW, PA48) & xn).isEqualTo(xn);
        assertThat(HypDescriptor.attributes(Prot.R, PA48) & xn).isEqualTo(xn);
        assertThat(HypDescriptor.attributes(Prot.DEVICE_RW, PA48) & xn).isEqualTo(xn);
        assertThat(HypDescriptor.attributes(Prot.RX, PA48) & xn).isZero();
        // PXN (bit 53) is never set by the library
        assertThat(HypDescriptor.attributes(Prot.RW, PA48) & (1L << 53)).isZero();
    }

    @Test
    void afAndShareability() {
        for (Prot p : List.of(Prot.R, Prot.RW, Prot.RX, Prot.DEVICE_RW)) {
            long pa48 = HypDescriptor.attributes(p, PA48);
            long lpa2 = HypDescriptor.attributes(p, OutputAddressFormat.LPA2);
            assertThat(pa48 & (1L << 10)).as("AF").isNotZero();
            assertThat(lpa2 & (1L << 10)).as("AF").isNotZero();
            assertThat(pa48 & (3L << 8)).as("SH inner").isEqualTo(3L << 8);
            assertThat(lpa2 & (3L << 8)).as("no SH with LPA2").isZero();
            assertThat(pa48 & 3).isZero();
        }
    }

    @Test
    void handComputedLeaves() {
        Geometry geo = Geometry.hyp(Granule.G4K, 48);
        // RW normal page: AttrIndx 0, AP 01, SH 11, AF, XN
        assertThat(HypDescriptor.leaf(geo, 0x4000_0000L, HypDescriptor.attributes(Prot.RW, PA48), 3))
                .isEqualTo(0x0040_0000_4000_0743L);
        // RX 2M block: AP 11, no XN, type 01
        assertThat(HypDescriptor.leaf(geo, 0x4020_0000L, HypDescriptor.attributes(Prot.RX, PA48), 2))
                .isEqualTo(0x0000_0000_4020_07C1L);
        // device RW page: AttrIndx 4
        assertThat(HypDescriptor.leaf(geo, 0x0900_0000L, HypDescriptor.attributes(Prot.DEVICE_RW, PA48), 3))
                .isEqualTo(0x0040_0000_0900_0753L);
        assertThat(HypDescriptor.table(geo, 0x8765_4000L)).isEqualTo(0x8765_4003L);
    }

    @Test
    void decodeRoundTrip() {
        List<Prot> prots = new ArrayList<>();
        for (Prot base : List.of(Prot.R, Prot.RW, Prot.RX)) {
            for (int sw = 0; sw < 16; sw++) prots.add(Prot.of(base.bits() | ((long) sw << 55)));
        }
        SplittableRandom rnd = new SplittableRandom(11);
        for (Granule g : Granule.values()) {
            for (Geometry geo : List.of(Geometry.hyp(g, 48), Geometry.hyp(g, 52))) {
                for (Prot p : prots) {
                    for (int level = g.minBlockLevel(); level <= 3; level++) {
                        long pa = rnd.nextLong(1L << geo.paBits()) & -g.levelSize(level);
                        long pte = HypDescriptor.leaf(geo, pa, HypDescriptor.attributes(p, geo.oaFormat()), level);
                        assertThat(HypDescriptor.prot(pte)).as("%s in %s", p, geo).isEqualTo(p);
                        assertThat(geo.outputAddress(pte)).isEqualTo(pa);
                        assertThat(pte & 3).isEqualTo(level == 3 ? 3 : 1);
                        assertThat(HypDescriptor.writable(pte)).isEqualTo(p.writable());
                        assertThat(HypDescriptor.executable(pte)).isEqualTo(p.anyExec());
                        assertThat(HypDescriptor.young(pte)).isTrue();
                    }
                }
            }
        }
        assertThat(HypDescriptor.memAttr(HypDescriptor.attributes(Prot.DEVICE_RW, PA48))).isEqualTo(MemAttr.DEVICE_nGnRE);
        assertThat(HypDescriptor.memAttr(HypDescriptor.attributes(Prot.RW, PA48))).isEqualTo(MemAttr.NORMAL_WB);
        assertThat(HypDescriptor.memAttr(HypDescriptor.attributes(Prot.RW.with(Prot.NORMAL_NC_BIT), PA48)))
                .isEqualTo(MemAttr.NORMAL_NC);
    }

    /**
     * MAIR_EL2: Attr0 = 0xFF (Normal, inner/outer write-back RW-allocate), Attr1 = 0xF0 (tagged),
     * Attr2 = 0x44 (Normal non-cacheable), Attr3 = 0x00 (Device-nGnRnE), Attr4 = 0x04
     * (Device-nGnRE). The AttrIndx a leaf carries must select the matching byte.
     */
    @Test
    void mairEl2MatchesTheIndices() {
        long mair = Registers.mairEl2();
        assertThat(mair).isEqualTo(0x0000_0004_0044_F0FFL);
        assertThat(HypDescriptor.MAIR_EL2).isEqualTo(mair);
        assertThat(mairByte(mair, attrIndx(HypDescriptor.attributes(Prot.RW, PA48)))).isEqualTo(0xFF);
        assertThat(mairByte(mair, attrIndx(HypDescriptor.attributes(Prot.DEVICE_RW, PA48)))).isEqualTo(0x04);
        assertThat(mairByte(mair, attrIndx(HypDescriptor.attributes(Prot.RW.with(Prot.NORMAL_NC_BIT), PA48))))
                .isEqualTo(0x44);
        assertThat(mairByte(mair, HypDescriptor.MAIR_DEVICE_nGnRnE)).isEqualTo(0x00);
        assertThat(mairByte(mair, HypDescriptor.MAIR_NORMAL_TAGGED)).isEqualTo(0xF0);
    }

    private static int mairByte(long mair, int index) {
        return (int) ((mair >>> (8 * index)) & 0xFF);
    }

    @Test
    void protFollowsTheKernelsHypPteProt() {
        // kvm_pgtable_hyp_pte_prot (Linux 7.1-rc4): invalid -> software bits only; R only for AP
        // RO or RW. Before: R always, W whenever AP[2] was clear, X whenever XN was clear.
        assertThat(HypDescriptor.prot(0)).isEqualTo(Prot.NONE);
        assertThat(HypDescriptor.prot(Prot.SW0_BIT | HypDescriptor.AP_RW)).isEqualTo(Prot.of(Prot.SW0_BIT));
        long valid = 3 | HypDescriptor.AF | HypDescriptor.XN;
        assertThat(HypDescriptor.prot(valid | HypDescriptor.AP_RO)).isEqualTo(Prot.R);
        assertThat(HypDescriptor.prot(valid | HypDescriptor.AP_RW)).isEqualTo(Prot.RW);
        assertThat(HypDescriptor.prot(valid)).as("AP 0b00: no rights").isEqualTo(Prot.NONE);
        assertThat(HypDescriptor.prot(valid | HypDescriptor.AP_RDONLY)).as("AP 0b10: no rights").isEqualTo(Prot.NONE);
        assertThat(HypDescriptor.prot(3 | HypDescriptor.AF | HypDescriptor.AP_RO)).isEqualTo(Prot.RX);
    }
}
