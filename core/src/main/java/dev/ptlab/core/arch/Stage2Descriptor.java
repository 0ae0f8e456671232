package dev.ptlab.core.arch;

import dev.ptlab.core.PageTableException;

/**
 * Stage-2 descriptor fields (VMSAv8-64 stage-2 block/page/table format).
 *
 * <pre>
 *  [5:2] MemAttr   [6] S2AP read   [7] S2AP write   [9:8] SH (absent with LPA2)   [10] AF
 *  [51] DBM   [52] Contiguous   [54:53] XN[1:0] (FEAT_XNX)   [58:55] software bits
 * </pre>
 *
 * XN[1:0]: 00 = executable at EL1 and EL0, 01 = EL0 only, 11 = EL1 only, 10 = not executable.
 * With FEAT_S2FWB (HCR_EL2.FWB) MemAttr is encoded differently: Normal write-back is 0b0110
 * instead of 0b1111.
 */
public final class Stage2Descriptor {
    private Stage2Descriptor() {}

    public static final int MEMATTR_SHIFT = 2;
    public static final long MEMATTR_MASK = 0xFL << MEMATTR_SHIFT;
    public static final long MEMATTR_NORMAL_WB = 0xF;
    public static final long MEMATTR_NORMAL_WB_FWB = 0x6;
    public static final long MEMATTR_NORMAL_NC = 0x5;
    public static final long MEMATTR_DEVICE_nGnRE = 0x1;
    public static final long MEMATTR_DEVICE_nGnRnE = 0x0;
    public static final long S2AP_R = 1L << 6;
    public static final long S2AP_W = 1L << 7;
    public static final int SH_SHIFT = 8;
    public static final long SH_MASK = 3L << SH_SHIFT;
    public static final long SH_INNER = 3L << SH_SHIFT;
    public static final long AF = 1L << 10;
    public static final long DBM = 1L << 51;
    public static final long CONTIGUOUS = 1L << 52;
    public static final int XN_SHIFT = 53;
    public static final long XN_MASK = 3L << XN_SHIFT;
    public static final long XN_NONE = 2L << XN_SHIFT;
    public static final long XN_EL0_ONLY = 1L << XN_SHIFT;
    public static final long XN_EL1_ONLY = 3L << XN_SHIFT;
    /** Permission fields: changing only these is BBM-exempt and is relaxPerms' job, not map's. */
    public static final long PERMS = S2AP_R | S2AP_W | XN_MASK;

    /**
     * Leaf attribute bits for {@code prot} on a CPU with FEAT_XNX: {@link #attributes(Prot,
     * boolean, OutputAddressFormat, boolean)} with {@code xnx} true.
     */
    public static long attributes(Prot prot, boolean fwb, OutputAddressFormat fmt) {
        return attributes(prot, fwb, fmt, true);
    }

    /**
     * Leaf attribute bits for {@code prot}, following the kernel's {@code stage2_set_prot_attr}
     * (Linux 7.1-rc4): DEVICE and NORMAL_NC are exclusive, neither may be executable, and without
     * FEAT_XNX ({@code xnx} false) the two execute rights must be equal.
     *
     * @throws PageTableException EINVAL naming the prot and the rule it breaks
     */
    public static long attributes(Prot prot, boolean fwb, OutputAddressFormat fmt, boolean xnx) {
        if (prot.device() && prot.normalNc()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for stage-2: device and nc are exclusive");
        }
        if ((prot.device() || prot.normalNc()) && prot.anyExec()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for stage-2: "
                    + (prot.device() ? "device" : "non-cacheable") + " memory cannot be executable");
        }
        long memattr = prot.device() ? MEMATTR_DEVICE_nGnRE
                : prot.normalNc() ? MEMATTR_NORMAL_NC
                : fwb ? MEMATTR_NORMAL_WB_FWB : MEMATTR_NORMAL_WB;
        long attr = memattr << MEMATTR_SHIFT;
        if (prot.readable()) attr |= S2AP_R;
        if (prot.writable()) attr |= S2AP_W;
        attr |= xnFor(prot, xnx);
        if (fmt.hasShareabilityField()) attr |= SH_INNER;
        attr |= AF;
        attr |= prot.swBits();
        return attr;
    }

    /** XN[1:0] field value for the execute rights in {@code prot}. */
    public static long xnFor(Prot prot) {
        boolean px = prot.privExec(), ux = prot.userExec();
        if (px && ux) return 0;
        if (ux) return XN_EL0_ONLY;
        if (px) return XN_EL1_ONLY;
        return XN_NONE;
    }

    /**
     * {@link #xnFor(Prot)}, refusing what a CPU without FEAT_XNX cannot encode: XN[0] only exists
     * with FEAT_XNX, so privileged and unprivileged execute must then agree. The kernel's
     * {@code stage2_set_xn_attr} returns -EINVAL for {@code px != ux} when {@code ARM64_HAS_XNX}
     * is absent (Linux 7.1-rc4); map, relax_perms and create_unlinked (split) all go through it.
     *
     * @throws PageTableException EINVAL naming the prot
     */
    public static long xnFor(Prot prot, boolean xnx) {
        if (!xnx && prot.privExec() != prot.userExec()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid without FEAT_XNX: privileged and"
                    + " unprivileged execute (px, ux) cannot differ; give both (x) or neither");
        }
        return xnFor(prot);
    }

    /** A valid leaf (block below level 3, page at level 3). */
    public static long leaf(Geometry g, long pa, long attr, int level) {
        return g.encodeAddress(pa) | (attr & (Pte.ATTR_LO | Pte.ATTR_HI)) | Pte.leafType(level);
    }

    /** A table descriptor pointing at the next-level table at {@code tablePa}. */
    public static long table(Geometry g, long tablePa) {
        return g.encodeAddress(tablePa) | Pte.TYPE_MASK;
    }

    /**
     * The kernel's {@code kvm_pgtable_stage2_pte_prot} (Linux 7.1-rc4): the software bits, and for
     * a valid leaf also R/W from S2AP and PX/UX from XN. The memory type is not decoded back. An
     * invalid entry gives its software bits only: its other bits are an owner id, an annotation
     * or LOCKED, not permissions (decoding them would call an owner annotation executable).
     */
    public static Prot prot(long pte) {
        long bits = pte & Prot.SW_MASK;
        if (!Pte.isValid(pte)) return Prot.of(bits);
        if ((pte & S2AP_R) != 0) bits |= Prot.R_BIT;
        if ((pte & S2AP_W) != 0) bits |= Prot.W_BIT;
        long xn = pte & XN_MASK;
        if (xn == 0) bits |= Prot.X_BITS;
        else if (xn == XN_EL0_ONLY) bits |= Prot.UX_BIT;
        else if (xn == XN_EL1_ONLY) bits |= Prot.PX_BIT;
        return Prot.of(bits);
    }

    public static long memAttrField(long pte) {
        return (pte & MEMATTR_MASK) >>> MEMATTR_SHIFT;
    }

    public static MemAttr memAttr(long pte, boolean fwb) {
        long m = memAttrField(pte);
        if (m == (fwb ? MEMATTR_NORMAL_WB_FWB : MEMATTR_NORMAL_WB)) return MemAttr.NORMAL_WB;
        if (m == MEMATTR_NORMAL_NC) return MemAttr.NORMAL_NC;
        if (m == MEMATTR_DEVICE_nGnRE) return MemAttr.DEVICE_nGnRE;
        if (m == MEMATTR_DEVICE_nGnRnE) return MemAttr.DEVICE_nGnRnE;
        return MemAttr.OTHER;
    }

    /** Valid and Normal write-back for this FWB mode: needs D-cache maintenance when FWB is off. */
    public static boolean isCacheable(long pte, boolean fwb) {
        return Pte.isValid(pte) && memAttrField(pte) == (fwb ? MEMATTR_NORMAL_WB_FWB : MEMATTR_NORMAL_WB);
    }

    /** Valid and executable at EL1 and EL0 (the kernel's test for I-cache maintenance). */
    public static boolean isExecutable(long pte) {
        return Pte.isValid(pte) && (pte & XN_MASK) == 0;
    }

    public static boolean readable(long pte) { return (pte & S2AP_R) != 0; }
    public static boolean writable(long pte) { return (pte & S2AP_W) != 0; }
    public static boolean young(long pte) { return (pte & AF) != 0; }
    /** Executable by an EL1 (privileged) fetch. */
    public static boolean privExecutable(long pte) {
        long xn = pte & XN_MASK;
        return xn == 0 || xn == XN_EL1_ONLY;
    }
    /** Executable by an EL0 fetch. */
    public static boolean userExecutable(long pte) {
        long xn = pte & XN_MASK;
        return xn == 0 || xn == XN_EL0_ONLY;
    }
}
