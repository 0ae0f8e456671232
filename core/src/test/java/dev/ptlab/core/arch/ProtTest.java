package dev.ptlab.core.arch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The prot abstraction (kvm-pgtable.md §2.5) and its validity rules for each table kind (§2.3, §2.4). */
class ProtTest {

    private static final long[] FLAGS = {
        Prot.R_BIT, Prot.W_BIT, Prot.PX_BIT, Prot.UX_BIT, Prot.DEVICE_BIT, Prot.NORMAL_NC_BIT,
        Prot.SW0_BIT, Prot.SW1_BIT, Prot.SW2_BIT, Prot.SW3_BIT,
    };

    /** Every combination of every flag (1024 prots). */
    static List<Prot> all() {
        List<Prot> out = new ArrayList<>();
        for (int m = 0; m < 1 << FLAGS.length; m++) {
            long bits = 0;
            for (int i = 0; i < FLAGS.length; i++) if ((m & (1 << i)) != 0) bits |= FLAGS[i];
            out.add(Prot.of(bits));
        }
        return out;
    }

    @Test
    void bitValuesFollowTheKernelEnum() {
        // v6.17: PX bit0, UX bit1, W bit2, R bit3, DEVICE bit4, NORMAL_NC bit5, SW0..3 = PTE bits 55..58
        assertThat(Prot.PX_BIT).isEqualTo(1);
        assertThat(Prot.UX_BIT).isEqualTo(2);
        assertThat(Prot.W_BIT).isEqualTo(4);
        assertThat(Prot.R_BIT).isEqualTo(8);
        assertThat(Prot.DEVICE_BIT).isEqualTo(16);
        assertThat(Prot.NORMAL_NC_BIT).isEqualTo(32);
        assertThat(Prot.SW_MASK).isEqualTo(0xFL << 55);
        assertThat(Prot.RWX.bits()).isEqualTo(0b1111);
        assertThat(Prot.DEVICE_RW.bits()).isEqualTo(0b11100);
    }

    @Test
    void toStringParseRoundTripForEveryCombination() {
        List<Prot> all = all();
        assertThat(all).hasSize(1024).doesNotHaveDuplicates();
        for (Prot p : all) {
            String text = p.toString();
            assertThat(Prot.parse(text)).as("parse(\"%s\")", text).isEqualTo(p);
            assertThat(Prot.parse(text.toUpperCase(java.util.Locale.ROOT))).isEqualTo(p);
        }
    }

    @Test
    void textForms() {
        assertThat(Prot.RW).hasToString("rw");
        assertThat(Prot.RWX).hasToString("rwx");
        assertThat(Prot.NONE).hasToString("none");
        assertThat(Prot.DEVICE_RW).hasToString("rw+device");
        assertThat(Prot.of(Prot.R_BIT | Prot.PX_BIT)).hasToString("rpx");
        assertThat(Prot.of(Prot.UX_BIT)).hasToString("ux");
        assertThat(Prot.of(Prot.DEVICE_BIT)).hasToString("none+device");
        assertThat(Prot.of(Prot.R_BIT | Prot.NORMAL_NC_BIT | Prot.SW0_BIT | Prot.SW3_BIT)).hasToString("r+nc+sw0+sw3");

        assertThat(Prot.parse(" RW ")).isEqualTo(Prot.RW);
        assertThat(Prot.parse("x")).isEqualTo(Prot.of(Prot.PX_BIT | Prot.UX_BIT));
        assertThat(Prot.parse("pxux")).isEqualTo(Prot.parse("x"));
        assertThat(Prot.parse("-")).isEqualTo(Prot.NONE);
        assertThat(Prot.parse("rw+sw1")).isEqualTo(Prot.of(Prot.R_BIT | Prot.W_BIT | Prot.SW1_BIT));
    }

    @Test
    void unknownPermissionLetterNamesTheText() {
        assertThatThrownBy(() -> Prot.parse("rq"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("prot: \"rq\" ")
                .hasMessageContaining("'q'");
    }

    @ParameterizedTest
    @ValueSource(strings = {"rw+foo", "rw+", "rw++device", "rw+device+"})
    void unknownOrEmptyAttributeNamesTheText(String text) {
        assertThatThrownBy(() -> Prot.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("prot: \"" + text + "\" ")
                .hasMessageContaining("attribute");
    }

    @Test
    void emptyTextIsRejected() {
        assertThatThrownBy(() -> Prot.parse("  "))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("prot: \"  \" is empty");
    }

    @Test
    void unknownRawBits() {
        PageTableException e = catchThrowableOfType(PageTableException.class, () -> Prot.of(1L << 6));
        assertThat(e.errno()).isEqualTo(Errno.EINVAL);
        assertThat(e).hasMessage("prot: 0x40 has unknown bits 0x40 (EINVAL)");
    }

    // ---- validity: stage-2 -------------------------------------------------------------------

    /** kvm-pgtable.md §2.3: DEVICE+NC, DEVICE+X and NC+X are -EINVAL; everything else is accepted. */
    private static boolean validForStage2(Prot p) {
        if (p.device() && p.normalNc()) return false;
        return !((p.device() || p.normalNc()) && (p.privExec() || p.userExec()));
    }

    @Test
    void stage2ValidityForEveryCombination() {
        int rejected = 0;
        for (Prot p : all()) {
            if (validForStage2(p)) {
                Stage2Descriptor.attributes(p, false, OutputAddressFormat.PA48);
                Stage2Descriptor.attributes(p, true, OutputAddressFormat.LPA2);
            } else {
                rejected++;
                PageTableException e = catchThrowableOfType(PageTableException.class,
                        () -> Stage2Descriptor.attributes(p, false, OutputAddressFormat.PA48));
                assertThat(e).as("%s must be rejected", p).isNotNull();
                assertThat(e.errno()).isEqualTo(Errno.EINVAL);
                assertThat(e.kernelReturn()).isEqualTo(-22);
                assertThat(e.address()).isEqualTo(PageTableException.NO_ADDRESS);
                assertThat(e.getMessage()).startsWith("prot: " + p + " is invalid for stage-2: ").endsWith(" (EINVAL)");
            }
        }
        assertThat(rejected).isPositive();
    }

    @Test
    void stage2MessagesNameTheRuleBroken() {
        assertThat(stage2Error("rw+device+nc")).contains("device").contains("nc");
        assertThat(stage2Error("rwx+device")).contains("device").contains("executable");
        assertThat(stage2Error("rpx+device")).contains("device").contains("executable");
        assertThat(stage2Error("rx+nc")).contains("non-cacheable").contains("executable");
    }

    private static String stage2Error(String prot) {
        PageTableException e = catchThrowableOfType(PageTableException.class,
                () -> Stage2Descriptor.attributes(Prot.parse(prot), false, OutputAddressFormat.PA48));
        assertThat(e).as(prot).isNotNull();
        assertThat(e.getMessage()).startsWith("prot: " + prot + " is invalid for stage-2: ");
        return e.getMessage().substring(("prot: " + prot + " is invalid for stage-2: ").length());
    }

    // ---- validity: hyp -----------------------------------------------------------------------

    /**
     * kvm-pgtable.md §2.4: R mandatory, W^X, no executable device memory. Normal-NC (a ptlab
     * extension for hyp, MAIR index 2) follows the stage-2 rules: not executable, not with device.
     */
    private static boolean validForHyp(Prot p) {
        boolean x = p.privExec() || p.userExec();
        if (!p.readable()) return false;
        if (x && p.writable()) return false;
        if (x && (p.device() || p.normalNc())) return false;
        return !(p.device() && p.normalNc());
    }

    @Test
    void hypValidityForEveryCombination() {
        for (Prot p : all()) {
            if (validForHyp(p)) {
                HypDescriptor.attributes(p, OutputAddressFormat.PA48);
            } else {
                PageTableException e = catchThrowableOfType(PageTableException.class,
                        () -> HypDescriptor.attributes(p, OutputAddressFormat.PA48));
                assertThat(e).as("%s must be rejected for hyp", p).isNotNull();
                assertThat(e.errno()).isEqualTo(Errno.EINVAL);
                assertThat(e.getMessage()).startsWith("prot: " + p + " is invalid for hyp: ").endsWith(" (EINVAL)");
            }
        }
    }

    @Test
    void hypMessagesNameTheRuleBroken() {
        assertThat(hypError("w")).contains("read");
        assertThat(hypError("none")).contains("read");
        assertThat(hypError("rwx")).contains("W^X");
        assertThat(hypError("rx+device")).contains("device").contains("executable");
    }

    private static String hypError(String prot) {
        PageTableException e = catchThrowableOfType(PageTableException.class,
                () -> HypDescriptor.attributes(Prot.parse(prot), OutputAddressFormat.PA48));
        assertThat(e).as(prot).isNotNull();
        assertThat(e.getMessage()).startsWith("prot: " + prot + " is invalid for hyp: ");
        return e.getMessage();
    }

    @Test
    void accessorsAndWithWithout() {
        Prot p = Prot.parse("rpx+sw2");
        assertThat(p.readable()).isTrue();
        assertThat(p.writable()).isFalse();
        assertThat(p.privExec()).isTrue();
        assertThat(p.userExec()).isFalse();
        assertThat(p.anyExec()).isTrue();
        assertThat(p.swBits()).isEqualTo(Prot.SW2_BIT);
        assertThat(p.has(Prot.X_BITS)).isFalse();
        assertThat(p.with(Prot.UX_BIT).has(Prot.X_BITS)).isTrue();
        assertThat(p.without(Prot.PX_BIT).anyExec()).isFalse();
        assertThat(Prot.parse("rw")).isEqualTo(Prot.RW).hasSameHashCodeAs(Prot.RW);
    }
}
