package dev.ptlab.conformance;

import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Translation;

/**
 * Decoding PAR_EL1 after an AT instruction, and ptlab's {@code Mmu} result in the same words, so
 * the two compare as strings.
 *
 * <p>PAR_EL1 (VMSAv8-64, 64-bit format): bit 0 F. With F = 0 the translation succeeded and
 * PA[47:12] sits in bits [47:12], PA[51:48] in bits [51:48] when the PA size is 52 bits. With
 * F = 1, FST in bits [6:1] is the fault status code, PTW (bit 8) says a stage-2 fault happened on a
 * stage-1 table walk, S (bit 9) that the fault was at stage 2. FST codes (the same encoding as
 * ESR_ELx.DFSC): 0b0000LL address-size fault at level LL, 0b101001 at level -1; 0b0001LL
 * translation fault at level LL, 0b101011 at level -1; 0b0010LL access-flag fault (level 0 only
 * with FEAT_LPA2); 0b0011LL permission fault.
 */
final class Par {
    private Par() {}

    /** "pa 0x...000", or "TYPE level N (stage 1|2)". */
    static String decode(long par) {
        if ((par & 1) == 0) {
            return "pa 0x" + Long.toHexString(par & 0x000F_FFFF_FFFF_F000L);
        }
        int fst = (int) ((par >>> 1) & 0x3F);
        String stage = (par & (1L << 9)) != 0 ? "stage 2" : "stage 1";
        String ptw = (par & (1L << 8)) != 0 ? ", on a stage-1 walk" : "";
        String what;
        if (fst == 0b101001) what = "address-size level -1";
        else if (fst == 0b101011) what = "translation level -1";
        else if ((fst & 0b111100) == 0b000000) what = "address-size level " + (fst & 3);
        else if ((fst & 0b111100) == 0b000100) what = "translation level " + (fst & 3);
        else if ((fst & 0b111100) == 0b001000) what = "access-flag level " + (fst & 3);
        else if ((fst & 0b111100) == 0b001100) what = "permission level " + (fst & 3);
        else what = "fault status 0x" + Integer.toHexString(fst);
        return what + " (" + stage + ptw + ")";
    }

    /**
     * ptlab's answer for a table of the given stage, in {@link #decode}'s words: the output
     * address rounded down to 4K (PAR's granularity), or the fault with the stage it belongs to.
     */
    static String expected(long mmuResult, boolean stage2) {
        if (!Translation.isFault(mmuResult)) {
            return "pa 0x" + Long.toHexString(mmuResult & ~0xFFFL);
        }
        FaultType t = Translation.faultType(mmuResult);
        return t.label() + " level " + Translation.faultLevel(mmuResult) + " (" + (stage2 ? "stage 2" : "stage 1") + ")";
    }
}
