package dev.ptlab.core.arch;

/**
 * System-register values that make hardware walk a ptlab table: VTCR_EL2/VTTBR_EL2 (and the
 * HCR_EL2.FWB choice) for stage-2, TCR_EL2/TTBR0_EL2/MAIR_EL2 for the EL2 stage-1 table.
 */
public final class Registers {
    private Registers() {}

    public static final long VTCR_RES1 = 1L << 31;
    public static final long TCR_EL2_RES1 = (1L << 31) | (1L << 23);
    public static final int IRGN0_SHIFT = 8, ORGN0_SHIFT = 10, SH0_SHIFT = 12, TG0_SHIFT = 14, PS_SHIFT = 16;
    public static final long WBWA = 1;
    public static final long INNER_SHAREABLE = 3;
    public static final long VTCR_VS = 1L << 19;
    public static final long VTCR_HA = 1L << 21;
    public static final long TCR_HA = 1L << 21;
    public static final long VTCR_DS = 1L << 32;
    public static final long TCR_DS = 1L << 32;
    public static final int SL0_SHIFT = 6;
    /** HCR_EL2.FWB: stage-2 MemAttr forces the final memory type (changes the Normal-WB encoding). */
    public static final long HCR_FWB = 1L << 46;

    /**
     * PS/IPS field encoding for a physical-address size.
     *
     * @throws dev.ptlab.core.PageTableException an argument error naming {@code pa-bits} for a size
     *     no encoding has
     */
    public static long psField(int paBits) {
        switch (paBits) {
            case 32: return 0;
            case 36: return 1;
            case 40: return 2;
            case 42: return 3;
            case 44: return 4;
            case 48: return 5;
            case 52: return 6;
            default: throw dev.ptlab.core.PageTableException.invalidArgument("pa-bits", (Object) paBits,
                    "is not one of 32, 36, 40, 42, 44, 48, 52");
        }
    }

    /**
     * VTCR_EL2 for a stage-2 geometry: T0SZ, SL0, inner-shareable write-back walks, TG0, PS from
     * the output format, 16-bit VMIDs, optional hardware Access-flag update (HA), DS for LPA2.
     */
    public static long vtcr(Geometry g, boolean hardwareAf) {
        if (g.stage() != Stage.STAGE2) throw new IllegalArgumentException("geometry: " + g + " is not a stage-2 geometry");
        long v = VTCR_RES1;
        v |= 64 - g.iaBits();
        v |= (long) (g.granule().sl0Base() - g.startLevel()) << SL0_SHIFT;
        v |= WBWA << IRGN0_SHIFT | WBWA << ORGN0_SHIFT | INNER_SHAREABLE << SH0_SHIFT;
        v |= (long) g.granule().tg0() << TG0_SHIFT;
        v |= psField(g.paBits()) << PS_SHIFT;
        v |= VTCR_VS;
        if (hardwareAf) v |= VTCR_HA;
        if (g.oaFormat() == OutputAddressFormat.LPA2) v |= VTCR_DS;
        return v;
    }

    /** IPA size recovered from a VTCR value (64 - T0SZ). */
    public static int vtcrIpaBits(long vtcr) {
        return 64 - (int) (vtcr & 0x3F);
    }

    /** Start level recovered from VTCR.SL0 and the granule. */
    public static int vtcrStartLevel(long vtcr, Granule g) {
        return g.sl0Base() - (int) ((vtcr >>> SL0_SHIFT) & 3);
    }

    /** Translation-table base field: PA[47:1] in place; with 52-bit formats PA[51:48] in bits [5:2]. */
    public static long baddr(Geometry g, long rootPa) {
        if (rootPa < 0 || (g.paBits() < 63 && rootPa >= 1L << g.paBits())) {
            // Masking it would silently point the register at another frame (and, for VTTBR,
            // bit 48 would land in the VMID field).
            throw dev.ptlab.core.PageTableException.invalidArgument("root", rootPa, "is outside the " + g.paBits()
                    + "-bit output address space");
        }
        if (g.paBits() == 52) {
            return (rootPa & 0xFFFF_FFFF_FFC0L & ((1L << 48) - 1)) | ((rootPa >>> 48) & 0xF) << 2;
        }
        return rootPa & ((1L << 48) - 2);
    }

    /** VTTBR_EL2: VMID in bits [63:48], root table base address. */
    public static long vttbr(Geometry g, long rootPa, int vmid) {
        if (vmid < 0 || vmid > 0xFFFF) throw new IllegalArgumentException("vmid: " + vmid + " is outside 0..65535");
        return ((long) vmid << 48) | baddr(g, rootPa);
    }

    /** TCR_EL2 (non-VHE EL2 regime) for a hyp geometry. */
    public static long tcrEl2(Geometry g, boolean hardwareAf) {
        if (g.stage() != Stage.HYP) throw new IllegalArgumentException("geometry: " + g + " is not a hyp geometry");
        long v = TCR_EL2_RES1;
        v |= 64 - g.iaBits();
        v |= WBWA << IRGN0_SHIFT | WBWA << ORGN0_SHIFT | INNER_SHAREABLE << SH0_SHIFT;
        v |= (long) g.granule().tg0() << TG0_SHIFT;
        v |= psField(g.paBits()) << PS_SHIFT;
        if (hardwareAf) v |= TCR_HA;
        if (g.oaFormat() == OutputAddressFormat.LPA2) v |= TCR_DS;
        return v;
    }

    public static long ttbr0El2(Geometry g, long rootPa) {
        return baddr(g, rootPa);
    }

    public static long mairEl2() {
        return HypDescriptor.MAIR_EL2;
    }

    public static long hcrFwb(boolean fwb) {
        return fwb ? HCR_FWB : 0;
    }
}
