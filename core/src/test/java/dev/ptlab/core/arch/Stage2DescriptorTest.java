package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.PageTableException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Stage-2 block/page/table descriptors (kvm-pgtable.md §2.1, §2.3; ARM ARM VMSAv8-64 stage-2
 * descriptor format): MemAttr [5:2], S2AP [7:6], SH [9:8], AF 10, XN[1:0] [54:53], SW [58:55].
 */
class Stage2DescriptorTest {

    private static final long MEMATTR_FIELD = 0xFL << 2;
    private static final long BIT_S2AP_R = 1L << 6;
    private static final long BIT_S2AP_W = 1L << 7;
    private static final long SH_FIELD = 3L << 8;
    private static final long BIT_AF = 1L << 10;
    private static final long XN_FIELD = 3L << 53;

    /** Every geometry shape worth encoding: each granule with each output format it supports. */
    static List<Arguments> geometries() {
        List<Arguments> out = new ArrayList<>();
        for (Granule g : Granule.values()) {
            out.add(Arguments.of(Geometry.stage2(g, 40, OutputAddressFormat.PA48)));
            if (g != Granule.G64K) out.add(Arguments.of(Geometry.stage2(g, 52, OutputAddressFormat.LPA2)));
        }
        out.add(Arguments.of(Geometry.stage2(Granule.G64K, 52, OutputAddressFormat.PA52_64K)));
        return out;
    }

    /** All prots valid for stage-2 that decode back exactly: any R/W/PX/UX/SW combination on normal memory. */
    static List<Prot> decodableProts() {
        long[] flags = {Prot.R_BIT, Prot.W_BIT, Prot.PX_BIT, Prot.UX_BIT, Prot.SW0_BIT, Prot.SW1_BIT, Prot.SW2_BIT, Prot.SW3_BIT};
        List<Prot> out = new ArrayList<>();
        for (int m = 0; m < 1 << flags.length; m++) {
            long bits = 0;
            for (int i = 0; i < flags.length; i++) if ((m & (1 << i)) != 0) bits |= flags[i];
            out.add(Prot.of(bits));
        }
        return out;
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void leafAndTableRoundTripPaAndProt(Geometry geo) {
        Granule g = geo.granule();
        SplittableRandom rnd = new SplittableRandom(geo.hashCode());
        List<Prot> prots = decodableProts();
        for (int level = g.minBlockLevel(); level <= 3; level++) {
            long span = g.levelSize(level);
            for (int i = 0; i < 400; i++) {
                long pa = rnd.nextLong(1L << geo.paBits()) & -span;
                Prot prot = prots.get(rnd.nextInt(prots.size()));
                boolean fwb = rnd.nextBoolean();
                long attr = Stage2Descriptor.attributes(prot, fwb, geo.oaFormat());
                long pte = Stage2Descriptor.leaf(geo, pa, attr, level);
                assertThat(geo.outputAddress(pte)).as("PA of %s leaf at L%d", geo, level).isEqualTo(pa);
                assertThat(Stage2Descriptor.prot(pte)).as("prot of leaf 0x%x", pte).isEqualTo(prot);
                assertThat(pte & 3).as("type bits").isEqualTo(level == 3 ? 0b11 : 0b01);
                assertThat(Pte.isValidLeaf(pte, level)).isTrue();
                assertThat(Pte.isTable(pte, level)).isFalse();
                assertThat(Stage2Descriptor.memAttr(pte, fwb)).isEqualTo(MemAttr.NORMAL_WB);
                assertThat(Stage2Descriptor.young(pte)).isTrue();
            }
        }
        for (int level = geo.startLevel(); level < 3; level++) {
            for (int i = 0; i < 200; i++) {
                long tablePa = rnd.nextLong(1L << geo.paBits()) & -g.pageSize();
                long pte = Stage2Descriptor.table(geo, tablePa);
                assertThat(geo.outputAddress(pte)).isEqualTo(tablePa);
                assertThat(pte & 3).isEqualTo(0b11);
                // no attributes: everything outside the address is just the type bits
                assertThat(pte & ~geo.addressMask()).isEqualTo(0b11);
                assertThat(Pte.isTable(pte, level)).isTrue();
            }
        }
    }

    @Test
    void handComputedPa48Vectors() {
        Geometry geo = Geometry.stage2(Granule.G4K, 40);
        // RW, normal WB (no FWB): MemAttr 1111, S2AP 11, SH 11, AF, XN 10, page
        long page = Stage2Descriptor.leaf(geo, 0x8000_1000L, Stage2Descriptor.attributes(Prot.RW, false, geo.oaFormat()), 3);
        assertThat(page).isEqualTo(0x0040_0000_8000_17FFL);
        // same as a 2M block: type 01
        long block = Stage2Descriptor.leaf(geo, 0x8020_0000L, Stage2Descriptor.attributes(Prot.RW, false, geo.oaFormat()), 2);
        assertThat(block).isEqualTo(0x0040_0000_8020_07FDL);
        // RX with FWB: MemAttr 0110, S2AP 01, SH 11, AF, XN 00
        long rx = Stage2Descriptor.leaf(geo, 0x1000L, Stage2Descriptor.attributes(Prot.RX, true, geo.oaFormat()), 3);
        assertThat(rx).isEqualTo(0x0000_0000_0000_175BL);
        // device RW: MemAttr 0001, S2AP 11, SH 11, AF, XN 10
        long dev = Stage2Descriptor.leaf(geo, 0x2000L, Stage2Descriptor.attributes(Prot.DEVICE_RW, false, geo.oaFormat()), 3);
        assertThat(dev).isEqualTo(0x0040_0000_0000_27C7L);
        // table pointing at 0x1234_5000
        assertThat(Stage2Descriptor.table(geo, 0x1234_5000L)).isEqualTo(0x1234_5003L);
    }

    @Test
    void handComputedLpa2Vector() {
        Geometry geo = Geometry.stage2(Granule.G4K, 52, OutputAddressFormat.LPA2);
        long attr = Stage2Descriptor.attributes(Prot.RW, false, geo.oaFormat());
        assertThat(attr & SH_FIELD).as("no SH under LPA2").isZero();
        // PA[51:50] = 11 lands in bits [9:8]; attributes as above minus SH
        long pte = Stage2Descriptor.leaf(geo, 0x000C_0000_0000_0000L, attr, 3);
        assertThat(pte).isEqualTo(0x0040_0000_0000_07FFL);
        assertThat(geo.outputAddress(pte)).isEqualTo(0x000C_0000_0000_0000L);
        // a low PA: bits [9:8] stay clear
        assertThat(Stage2Descriptor.leaf(geo, 0x8000_1000L, attr, 3)).isEqualTo(0x0040_0000_8000_14FFL);
    }

    @Test
    void memAttrEncodings() {
        OutputAddressFormat f = OutputAddressFormat.PA48;
        Prot nc = Prot.RW.with(Prot.NORMAL_NC_BIT);
        assertThat(memAttr(Stage2Descriptor.attributes(Prot.RW, false, f))).isEqualTo(0b1111);
        assertThat(memAttr(Stage2Descriptor.attributes(Prot.RW, true, f))).isEqualTo(0b0110);
        assertThat(memAttr(Stage2Descriptor.attributes(nc, false, f))).isEqualTo(0b0101);
        assertThat(memAttr(Stage2Descriptor.attributes(nc, true, f))).isEqualTo(0b0101);
        assertThat(memAttr(Stage2Descriptor.attributes(Prot.DEVICE_RW, false, f))).isEqualTo(0b0001);
        assertThat(memAttr(Stage2Descriptor.attributes(Prot.DEVICE_RW, true, f))).isEqualTo(0b0001);
        // decoded back to types
        assertThat(Stage2Descriptor.memAttr(0b1111L << 2 | 1, false)).isEqualTo(MemAttr.NORMAL_WB);
        assertThat(Stage2Descriptor.memAttr(0b0110L << 2 | 1, true)).isEqualTo(MemAttr.NORMAL_WB);
        assertThat(Stage2Descriptor.memAttr(0b1111L << 2 | 1, true)).isEqualTo(MemAttr.OTHER);
        assertThat(Stage2Descriptor.memAttr(0b0101L << 2 | 1, false)).isEqualTo(MemAttr.NORMAL_NC);
        assertThat(Stage2Descriptor.memAttr(0b0001L << 2 | 1, true)).isEqualTo(MemAttr.DEVICE_nGnRE);
        assertThat(Stage2Descriptor.memAttr(0b0000L << 2 | 1, false)).isEqualTo(MemAttr.DEVICE_nGnRnE);
        assertThat(Stage2Descriptor.memAttrField(0x0040_0000_8000_17FFL)).isEqualTo(0xF);
    }

    private static long memAttr(long attr) {
        return (attr & MEMATTR_FIELD) >>> 2;
    }

    @Test
    void xnForEachExecCombination() {
        long r = Prot.R_BIT;
        assertThat(xn(Prot.of(r | Prot.PX_BIT | Prot.UX_BIT))).isEqualTo(0b00);
        assertThat(xn(Prot.of(r | Prot.UX_BIT))).isEqualTo(0b01);
        assertThat(xn(Prot.of(r))).isEqualTo(0b10);
        assertThat(xn(Prot.of(r | Prot.PX_BIT))).isEqualTo(0b11);
        // and each decodes to the matching exec rights
        assertThat(Stage2Descriptor.prot(0b00L << 53 | 1)).isEqualTo(Prot.of(Prot.X_BITS));
        assertThat(Stage2Descriptor.prot(0b01L << 53 | 1)).isEqualTo(Prot.of(Prot.UX_BIT));
        assertThat(Stage2Descriptor.prot(0b10L << 53 | 1)).isEqualTo(Prot.NONE);
        assertThat(Stage2Descriptor.prot(0b11L << 53 | 1)).isEqualTo(Prot.of(Prot.PX_BIT));
        // privilege-specific views: 01 = EL0 only, 11 = EL1 only
        assertThat(Stage2Descriptor.userExecutable(0b01L << 53)).isTrue();
        assertThat(Stage2Descriptor.privExecutable(0b01L << 53)).isFalse();
        assertThat(Stage2Descriptor.userExecutable(0b11L << 53)).isFalse();
        assertThat(Stage2Descriptor.privExecutable(0b11L << 53)).isTrue();
        assertThat(Stage2Descriptor.userExecutable(0b10L << 53)).isFalse();
        assertThat(Stage2Descriptor.privExecutable(0b10L << 53)).isFalse();
        assertThat(Stage2Descriptor.userExecutable(0)).isTrue();
        assertThat(Stage2Descriptor.privExecutable(0)).isTrue();
    }

    private static long xn(Prot p) {
        long attr = Stage2Descriptor.attributes(p, false, OutputAddressFormat.PA48);
        assertThat(attr & XN_FIELD).isEqualTo(Stage2Descriptor.xnFor(p));
        return (attr & XN_FIELD) >>> 53;
    }

    @Test
    void s2apShAfAndSoftwareBits() {
        for (Prot p : decodableProts()) {
            for (OutputAddressFormat f : OutputAddressFormat.values()) {
                long attr = Stage2Descriptor.attributes(p, false, f);
                assertThat((attr & BIT_S2AP_R) != 0).as("%s S2AP[0]", p).isEqualTo(p.readable());
                assertThat((attr & BIT_S2AP_W) != 0).as("%s S2AP[1]", p).isEqualTo(p.writable());
                assertThat(attr & SH_FIELD).as("%s SH under %s", p, f).isEqualTo(f == OutputAddressFormat.LPA2 ? 0 : SH_FIELD);
                assertThat(attr & BIT_AF).isEqualTo(BIT_AF);
                assertThat(attr & (0xFL << 55)).isEqualTo(p.swBits());
                // never sets the address, type, DBM or contiguous bits
                assertThat(attr & 3).isZero();
                assertThat(attr & ((1L << 51) | (1L << 52))).isZero();
                assertThat(attr & 0x0000_FFFF_FFFF_F000L).isZero();
            }
        }
        // S2AP read-only and write-only decode
        assertThat(Stage2Descriptor.readable(BIT_S2AP_R)).isTrue();
        assertThat(Stage2Descriptor.writable(BIT_S2AP_R)).isFalse();
        assertThat(Stage2Descriptor.writable(BIT_S2AP_W)).isTrue();
        assertThat(Stage2Descriptor.readable(BIT_S2AP_W)).isFalse();
    }

    @Test
    void deviceAndNcMemoryIsNotDecodedBack() {
        Geometry geo = Geometry.stage2(Granule.G4K, 40);
        long pte = Stage2Descriptor.leaf(geo, 0x3000, Stage2Descriptor.attributes(Prot.DEVICE_RW, false, geo.oaFormat()), 3);
        assertThat(Stage2Descriptor.prot(pte)).isEqualTo(Prot.RW);
        assertThat(Stage2Descriptor.memAttr(pte, false)).isEqualTo(MemAttr.DEVICE_nGnRE);
    }

    @Test
    void cacheableMeansValidNormalWriteBackForTheFwbMode() {
        Geometry geo = Geometry.stage2(Granule.G4K, 40);
        OutputAddressFormat f = geo.oaFormat();
        long wb = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.RW, false, f), 3);
        long wbFwb = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.RW, true, f), 3);
        long nc = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.RW.with(Prot.NORMAL_NC_BIT), false, f), 3);
        long dev = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.DEVICE_RW, false, f), 3);
        assertThat(Stage2Descriptor.isCacheable(wb, false)).isTrue();
        assertThat(Stage2Descriptor.isCacheable(wb, true)).isFalse();
        assertThat(Stage2Descriptor.isCacheable(wbFwb, true)).isTrue();
        assertThat(Stage2Descriptor.isCacheable(wbFwb, false)).isFalse();
        assertThat(Stage2Descriptor.isCacheable(nc, false)).isFalse();
        assertThat(Stage2Descriptor.isCacheable(nc, true)).isFalse();
        assertThat(Stage2Descriptor.isCacheable(dev, false)).isFalse();
        assertThat(Stage2Descriptor.isCacheable(dev, true)).isFalse();
        assertThat(Stage2Descriptor.isCacheable(wb & ~Pte.VALID, false)).as("invalid").isFalse();
    }

    @Test
    void executableMeansValidAndExecutableAtBothEls() {
        Geometry geo = Geometry.stage2(Granule.G4K, 40);
        OutputAddressFormat f = geo.oaFormat();
        long x = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.RX, false, f), 3);
        long px = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.of(Prot.R_BIT | Prot.PX_BIT), false, f), 3);
        long ux = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.of(Prot.R_BIT | Prot.UX_BIT), false, f), 3);
        long nx = Stage2Descriptor.leaf(geo, 0x1000, Stage2Descriptor.attributes(Prot.R, false, f), 3);
        assertThat(Stage2Descriptor.isExecutable(x)).isTrue();
        assertThat(Stage2Descriptor.isExecutable(px)).isFalse();
        assertThat(Stage2Descriptor.isExecutable(ux)).isFalse();
        assertThat(Stage2Descriptor.isExecutable(nx)).isFalse();
        assertThat(Stage2Descriptor.isExecutable(x & ~Pte.VALID)).as("invalid").isFalse();
    }

    @Test
    void highAttributeBitsSurviveThe52BitFormats() {
        // PA52_64K keeps PA[51:48] in [15:12]; none of the leaf attributes may land there
        Geometry geo = Geometry.stage2(Granule.G64K, 52, OutputAddressFormat.PA52_64K);
        long pa = 0x000F_0000_0001_0000L;
        Prot p = Prot.of(Prot.R_BIT | Prot.W_BIT | Prot.SW3_BIT);
        long pte = Stage2Descriptor.leaf(geo, pa, Stage2Descriptor.attributes(p, false, geo.oaFormat()), 3);
        assertThat(pte).isEqualTo(0x0000_0000_0001_F000L | 0x7FFL | (2L << 53) | (1L << 58));
        assertThat(geo.outputAddress(pte)).isEqualTo(pa);
        assertThat(Stage2Descriptor.prot(pte)).isEqualTo(p);
    }

    @Test
    void protOfAnInvalidEntryIsItsSoftwareBitsOnly() {
        // kvm_pgtable_stage2_pte_prot (Linux 7.1-rc4): an invalid entry gives only its software
        // bits. Before: an owner annotation (XN field 0) decoded as executable, and owner ids
        // with bits 6/7 set ([9:2] holds the id) as readable/writable too.
        assertThat(Stage2Descriptor.prot(Pte.ownerAnnotation(3))).isEqualTo(Prot.NONE);
        assertThat(Stage2Descriptor.prot(Pte.ownerAnnotation(0x30))).isEqualTo(Prot.NONE);
        assertThat(Stage2Descriptor.prot(Pte.LOCKED)).isEqualTo(Prot.NONE);
        assertThat(Stage2Descriptor.prot(Prot.SW1_BIT | Stage2Descriptor.S2AP_R | Stage2Descriptor.S2AP_W))
                .isEqualTo(Prot.of(Prot.SW1_BIT));
        // valid: rights decoded as before
        assertThat(Stage2Descriptor.prot(Prot.SW1_BIT | Stage2Descriptor.S2AP_R | Stage2Descriptor.XN_NONE | 1))
                .isEqualTo(Prot.of(Prot.R_BIT | Prot.SW1_BIT));
    }

    @Test
    void withoutXnxTheExecuteRightsMustAgree() {
        OutputAddressFormat f = OutputAddressFormat.PA48;
        for (String p : new String[] {"rpx", "rux", "px", "ux"}) {
            PageTableException e = org.assertj.core.api.Assertions.catchThrowableOfType(PageTableException.class,
                    () -> Stage2Descriptor.attributes(Prot.parse(p), false, f, false));
            assertThat(e.argument()).as(p).isEqualTo("prot");
            assertThat(e.getMessage()).contains("FEAT_XNX");
            // with FEAT_XNX: fine
            Stage2Descriptor.attributes(Prot.parse(p), false, f, true);
        }
        assertThat(Stage2Descriptor.attributes(Prot.RX, false, f, false)).isEqualTo(Stage2Descriptor.attributes(Prot.RX, false, f));
        assertThat(Stage2Descriptor.xnFor(Prot.RW, false)).isEqualTo(Stage2Descriptor.XN_NONE);
    }
}
