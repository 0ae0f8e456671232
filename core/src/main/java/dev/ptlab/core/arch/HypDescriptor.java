package dev.ptlab.core.arch;

import dev.ptlab.core.PageTableException;

/**
 * EL2 stage-1 descriptor fields (non-VHE EL2 translation regime).
 *
 * <pre>
 *  [4:2] AttrIndx (MAIR_EL2 index)   [7:6] AP (RW = 0b01, RO = 0b11)   [9:8] SH (absent with LPA2)
 *  [10] AF   [50] GP (BTI)   [53] PXN (RES0 at EL2)   [54] XN   [58:55] software bits
 * </pre>
 *
 * In the EL2 regime AP[1] (bit 6) is RES1 and AP[2] (bit 7) makes the mapping read-only; reads
 * are always allowed for a valid entry, which is why R is mandatory in a hyp prot.
 */
public final class HypDescriptor {
    private HypDescriptor() {}

    public static final int ATTRINDX_SHIFT = 2;
    public static final long ATTRINDX_MASK = 7L << ATTRINDX_SHIFT;
    /** MAIR indices the kernel programs into MAIR_EL2. */
    public static final int MAIR_NORMAL = 0;
    public static final int MAIR_NORMAL_TAGGED = 1;
    public static final int MAIR_NORMAL_NC = 2;
    public static final int MAIR_DEVICE_nGnRnE = 3;
    public static final int MAIR_DEVICE_nGnRE = 4;
    /** MAIR_EL2 value matching those indices. */
    public static final long MAIR_EL2 = 0xFFL | (0xF0L << 8) | (0x44L << 16) | (0x00L << 24) | (0x04L << 32);
    public static final int AP_SHIFT = 6;
    public static final long AP_MASK = 3L << AP_SHIFT;
    public static final long AP_RW = 1L << AP_SHIFT;
    public static final long AP_RO = 3L << AP_SHIFT;
    /** AP[2]: read-only when set. */
    public static final long AP_RDONLY = 1L << 7;
    public static final long SH_INNER = 3L << 8;
    public static final long AF = 1L << 10;
    public static final long GP = 1L << 50;
    public static final long PXN = 1L << 53;
    public static final long XN = 1L << 54;

    /**
     * Leaf attributes for {@code prot}: R is mandatory, W and X are exclusive (W^X), and device
     * memory cannot be executable.
     */
    public static long attributes(Prot prot, OutputAddressFormat fmt) {
        if (!prot.readable()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for hyp: read permission is mandatory");
        }
        if (prot.anyExec() && prot.writable()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for hyp: writable and executable (W^X)");
        }
        if (prot.anyExec() && (prot.device() || prot.normalNc())) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for hyp: "
                    + (prot.device() ? "device" : "non-cacheable") + " memory cannot be executable");
        }
        if (prot.device() && prot.normalNc()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for hyp: device and nc are exclusive");
        }
        int index = prot.device() ? MAIR_DEVICE_nGnRE : prot.normalNc() ? MAIR_NORMAL_NC : MAIR_NORMAL;
        long attr = (long) index << ATTRINDX_SHIFT;
        attr |= prot.writable() ? AP_RW : AP_RO;
        if (fmt.hasShareabilityField()) attr |= SH_INNER;
        attr |= AF;
        if (!prot.anyExec()) attr |= XN;
        attr |= prot.swBits();
        return attr;
    }

    public static long leaf(Geometry g, long pa, long attr, int level) {
        return g.encodeAddress(pa) | (attr & (Pte.ATTR_LO | Pte.ATTR_HI)) | Pte.leafType(level);
    }

    public static long table(Geometry g, long tablePa) {
        return g.encodeAddress(tablePa) | Pte.TYPE_MASK;
    }

    /**
     * The kernel's {@code kvm_pgtable_hyp_pte_prot} (Linux 7.1-rc4): the software bits; for a
     * valid entry also R for AP = RO, R and W for AP = RW (the two AP values hyp map writes; the
     * other two give no rights), and execute unless XN. An invalid entry gives its software bits
     * only. Execute decodes as {@code x} (PX and UX), the rights hyp map was given: this regime
     * has one execute bit and no EL0, where the kernel (non-hVHE) reports it as PX alone.
     */
    public static Prot prot(long pte) {
        long bits = pte & Prot.SW_MASK;
        if (!Pte.isValid(pte)) return Prot.of(bits);
        long ap = pte & AP_MASK;
        if (ap == AP_RO) bits |= Prot.R_BIT;
        else if (ap == AP_RW) bits |= Prot.R_BIT | Prot.W_BIT;
        if ((pte & XN) == 0) bits |= Prot.X_BITS;
        return Prot.of(bits);
    }

    public static int attrIndex(long pte) {
        return (int) ((pte & ATTRINDX_MASK) >>> ATTRINDX_SHIFT);
    }

    public static MemAttr memAttr(long pte) {
        switch (attrIndex(pte)) {
            case MAIR_NORMAL: case MAIR_NORMAL_TAGGED: return MemAttr.NORMAL_WB;
            case MAIR_NORMAL_NC: return MemAttr.NORMAL_NC;
            case MAIR_DEVICE_nGnRnE: return MemAttr.DEVICE_nGnRnE;
            case MAIR_DEVICE_nGnRE: return MemAttr.DEVICE_nGnRE;
            default: return MemAttr.OTHER;
        }
    }

    public static boolean writable(long pte) { return (pte & AP_RDONLY) == 0; }
    public static boolean executable(long pte) { return (pte & XN) == 0; }
    public static boolean young(long pte) { return (pte & AF) != 0; }
}
