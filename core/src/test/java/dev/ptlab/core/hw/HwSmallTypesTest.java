package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.MemAttr;
import org.junit.jupiter.api.Test;

/**
 * The small value types of the hardware package against the architecture's encodings
 * (tlb-and-two-stage.md §C FEAT_TTL, §D FEAT_TLBIRANGE) and their scenario-file spellings.
 * Expected operands are assembled by hand from the field layouts, not taken from the code.
 */
class HwSmallTypesTest {
    static final int UNKNOWN = TlbMaintenance.LEVEL_UNKNOWN;

    @Test
    void accessAndFaultTypeParseEverySpelling() {
        assertThat(Access.parse("read")).isEqualTo(Access.READ);
        assertThat(Access.parse(" R ")).isEqualTo(Access.READ);
        assertThat(Access.parse("write")).isEqualTo(Access.WRITE);
        assertThat(Access.parse("w")).isEqualTo(Access.WRITE);
        assertThat(Access.parse("EXEC")).isEqualTo(Access.EXEC);
        assertThat(Access.parse("x")).isEqualTo(Access.EXEC);
        assertThatThrownBy(() -> Access.parse("rw")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("\"rw\"");
        // Each label parses to its own constant, not the first of the list.
        for (FaultType t : FaultType.values()) assertThat(FaultType.parse(t.label())).isEqualTo(t);
        assertThat(FaultType.parse(" Access-Flag")).isEqualTo(FaultType.ACCESS_FLAG);
        assertThatThrownBy(() -> FaultType.parse("access_flag")).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void tlbiOpReachAndLabels() {
        // "IS" = Inner Shareable = broadcast; the non-IS forms reach the issuer only.
        assertThat(TlbiOp.IPAS2E1IS.broadcast()).isTrue();
        assertThat(TlbiOp.VMALLE1IS.broadcast()).isTrue();
        assertThat(TlbiOp.IPAS2E1.broadcast()).isFalse();
        assertThat(TlbiOp.VMALLE1.broadcast()).isFalse();
        assertThat(TlbiOp.IPAS2LE1IS.label()).isEqualTo("ipas2le1is");
        assertThat(TlbiOp.VAE2IS.label()).isEqualTo("vae2is");
        // Only the VM's stage-2 scopes are issued by its stage-2 table; the hyp VA flush is EL2's own.
        assertThat(TlbiScope.IPA.stage2()).isTrue();
        assertThat(TlbiScope.IPA_LOCAL.stage2()).isTrue();
        assertThat(TlbiScope.RANGE.stage2()).isTrue();
        assertThat(TlbiScope.VMID.stage2()).isTrue();
        assertThat(TlbiScope.HYP_VA.stage2()).isFalse();
    }

    @Test
    void translationReadableFormAndRawFaultTest() {
        Translation ok = new Translation(0x4000_5000L, Access.WRITE, 0x8000_5000L, null, 3, 0x8000_57C3L,
                MemAttr.values()[0], true, true, false, false);
        assertThat(ok.isFault()).isFalse();
        assertThat(ok.toString()).startsWith("0x40005000 write -> 0x80005000 (L3 ").endsWith(" rw-)");
        Translation f = new Translation(0x1000, Access.READ, 0, FaultType.PERMISSION, 2, 0, null,
                false, false, false, false);
        assertThat(f.isFault()).isTrue();
        assertThat(f.toString()).isEqualTo("0x1000 read -> fault permission level 2");
        // A translation to PA 0 is a success, not a fault: only negative codes are faults.
        assertThat(Translation.isFault(0L)).isFalse();
        assertThat(Translation.isFault(-1L)).isTrue();
    }

    @Test
    void granuleFieldValuesFollowTtl32AndTg() {
        // TTL[3:2] / TG: 01 4K, 10 16K, 11 64K, 00 reserved (§C table, §D).
        assertThat(TlbiOperand.tg(Granule.G4K)).isEqualTo(1);
        assertThat(TlbiOperand.tg(Granule.G16K)).isEqualTo(2);
        assertThat(TlbiOperand.tg(Granule.G64K)).isEqualTo(3);
        assertThat(TlbiOperand.granule(1)).isEqualTo(Granule.G4K);
        assertThat(TlbiOperand.granule(2)).isEqualTo(Granule.G16K);
        assertThat(TlbiOperand.granule(3)).isEqualTo(Granule.G64K);
        assertThat(TlbiOperand.granule(0)).isNull();
    }

    @Test
    void nonRangeOperandCarriesIpa51To48AndTtl() {
        // IPA 0xA_0000_1234_5000: IPA[51:48] = 0xA -> operand [39:36]; IPA[47:12] = 0x1_2345 -> [35:0].
        long ipa = 0x000A_0000_1234_5000L;
        long plain = 0xA0_0001_2345L;
        assertThat(TlbiOperand.ipa(Granule.G4K, ipa, UNKNOWN)).isEqualTo(plain);
        assertThat(TlbiOperand.ipaOf(plain)).isEqualTo(ipa);
        // Level hints 0 and 3 are both valid: TTL = 01:00 = 0x4, 01:11 = 0x7 in [47:44].
        long l0 = TlbiOperand.ipa(Granule.G4K, ipa, 0);
        long l3 = TlbiOperand.ipa(Granule.G4K, ipa, 3);
        assertThat(l0).isEqualTo(plain | 0x4L << 44);
        assertThat(l3).isEqualTo(plain | 0x7L << 44);
        // 64K granule, level 2: TTL = 11:10 = 0xE.
        assertThat(TlbiOperand.ipa(Granule.G64K, ipa, 2)).isEqualTo(plain | 0xEL << 44);
        assertThat(TlbiOperand.ttlOf(l3, Granule.G4K)).isEqualTo(3);
        assertThat(TlbiOperand.ttlOf(l0, Granule.G4K)).isEqualTo(0);
        assertThat(TlbiOperand.ttlOf(plain, Granule.G4K)).isEqualTo(UNKNOWN);
        assertThat(TlbiOperand.ttlOf(l3, Granule.G16K)).as("hint for another granule").isEqualTo(-1);
        assertThatThrownBy(() -> TlbiOperand.ipa(Granule.G4K, ipa, 4)).isInstanceOf(PageTableException.class)
                .hasMessageContaining("ttl");
        assertThatThrownBy(() -> TlbiOperand.ipa(Granule.G4K, ipa, -1)).isInstanceOf(PageTableException.class);
    }

    @Test
    void rangeOperandFieldsAndBounds() {
        // The reference's worked example (§D): 4K, 512 pages at 0x4000_0000 = SCALE 1, NUM 7.
        assertThat(TlbiOperand.range(Granule.G4K, 0x4000_0000L, 1, 7, UNKNOWN)).isEqualTo(0x0000_5380_0004_0000L);
        // TTL [38:37] for levels 1 and 3 (the ends of the allowed 1..3), base 0x1000 = BaseADDR 1.
        long l1 = TlbiOperand.range(Granule.G4K, 0x1000, 0, 0, 1);
        long l3 = TlbiOperand.range(Granule.G4K, 0x1000, 0, 0, 3);
        assertThat(l1).isEqualTo(1L << 46 | 1L << 37 | 1);
        assertThat(l3).isEqualTo(1L << 46 | 3L << 37 | 1);
        assertThat(TlbiOperand.rangeTtl(l1)).isEqualTo(1);
        assertThat(TlbiOperand.rangeTtl(l3)).isEqualTo(3);
        assertThatThrownBy(() -> TlbiOperand.range(Granule.G4K, 0x1000, 0, 0, 0))
                .isInstanceOf(PageTableException.class).hasMessageContaining("ttl");
        assertThatThrownBy(() -> TlbiOperand.range(Granule.G4K, 0x1000, 0, 0, 4))
                .isInstanceOf(PageTableException.class).hasMessageContaining("ttl");
        // Alignment is to the granule: 0x800 is not 4K-aligned, 0x1000 is not 64K-aligned, 0x3_0000 is.
        assertThatThrownBy(() -> TlbiOperand.range(Granule.G4K, 0x800, 0, 0, UNKNOWN))
                .isInstanceOf(PageTableException.class).hasMessageContaining("base");
        assertThatThrownBy(() -> TlbiOperand.range(Granule.G64K, 0x1000, 0, 0, UNKNOWN))
                .isInstanceOf(PageTableException.class).hasMessageContaining("base");
        assertThat(TlbiOperand.range(Granule.G64K, 0x3_0000, 0, 0, UNKNOWN)).isEqualTo(3L << 46 | 3);
    }
}
