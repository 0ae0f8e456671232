package dev.ptlab.core.arch;

import dev.ptlab.core.PageTableException;

/**
 * Guest EL1&amp;0 stage-1 descriptor fields (VMSAv8-64, Arm ARM D8.3 and D8.4; reference
 * tlb-and-two-stage.md §F.2).
 *
 * <pre>
 *  leaf:  [4:2] AttrIndx (MAIR_EL1)  [5] NS  [7:6] AP[2:1]  [9:8] SH  [10] AF  [11] nG
 *         [47:12] OA (an IPA under stage 2)  [53] PXN  [54] UXN  [58:55] software
 *  table: [47:12] next-table IPA  [59] PXNTable  [60] UXNTable  [62:61] APTable  [63] NSTable
 * </pre>
 *
 * AP[2:1]: 00 EL1 read/write, EL0 none; 01 EL1 and EL0 read/write; 10 EL1 read-only, EL0 none;
 * 11 EL1 and EL0 read-only. A region EL0 may write is never privileged-executable (D8.4.1.2.3).
 * APTable[0] removes EL0 access below the table, APTable[1] removes writes; PXNTable/UXNTable
 * force PXN/UXN below it (TCR_EL1.HPDx = 0, as Linux runs). {@link #effective} folds the table
 * bits met on a walk into the leaf, so a TLB entry holds one descriptor that carries them.
 */
public final class Stage1Descriptor {
    private Stage1Descriptor() {}

    public static final int ATTRINDX_SHIFT = 2;
    public static final long ATTRINDX_MASK = 7L << ATTRINDX_SHIFT;
    /** AP[1] (bit 6): EL0 has access. */
    public static final long AP_EL0 = 1L << 6;
    /** AP[2] (bit 7): read-only. */
    public static final long AP_RDONLY = 1L << 7;
    public static final long SH_INNER = 3L << 8;
    public static final long AF = 1L << 10;
    /** Not global: the TLB entry is tagged with the ASID of the TTBR that walked it. */
    public static final long NG = 1L << 11;
    public static final long PXN = 1L << 53;
    public static final long UXN = 1L << 54;
    public static final long PXN_TABLE = 1L << 59;
    public static final long UXN_TABLE = 1L << 60;
    /** APTable[0] (bit 61): no EL0 access below this table. */
    public static final long AP_TABLE_NO_EL0 = 1L << 61;
    /** APTable[1] (bit 62): no writes below this table. */
    public static final long AP_TABLE_RDONLY = 1L << 62;
    /**
     * MAIR_EL1 as Linux programs it (arch/arm64/include/asm/memory.h MT_* indices, Linux 7.1-rc4):
     * the same indices as {@link HypDescriptor#MAIR_EL2}.
     */
    public static final long MAIR_EL1 = HypDescriptor.MAIR_EL2;

    /**
     * Leaf attributes for {@code prot}: read is mandatory (stage 1 has no write-only encoding),
     * {@code el0} grants EL0 the same read/write access, {@code global} leaves nG clear. PXN
     * unless privileged execute, UXN unless user execute; EL0-writable and privileged-executable
     * together is refused (the architecture would not execute it anyway).
     */
    public static long attributes(Prot prot, boolean el0, boolean global, OutputAddressFormat fmt) {
        if (prot == null) throw PageTableException.invalidArgument("prot", null, "is required");
        if (!prot.readable()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for stage 1: read permission is mandatory");
        }
        if (el0 && prot.writable() && prot.privExec()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for stage 1: EL0-writable memory is never EL1-executable");
        }
        if (prot.device() && prot.normalNc()) {
            throw PageTableException.invalidArgument("prot", prot, "is invalid for stage 1: device and nc are exclusive");
        }
        int index = prot.device() ? HypDescriptor.MAIR_DEVICE_nGnRE : prot.normalNc() ? HypDescriptor.MAIR_NORMAL_NC
                : HypDescriptor.MAIR_NORMAL;
        long attr = (long) index << ATTRINDX_SHIFT | AF;
        if (!prot.writable()) attr |= AP_RDONLY;
        if (el0) attr |= AP_EL0;
        if (fmt.hasShareabilityField()) attr |= SH_INNER;
        if (!global) attr |= NG;
        if (!prot.privExec()) attr |= PXN;
        if (!prot.userExec() || !el0) attr |= UXN;
        return attr | prot.swBits();
    }

    public static long leaf(Geometry g, long ipa, long attr, int level) {
        return g.encodeAddress(ipa) | (attr & (Pte.ATTR_LO | Pte.ATTR_HI)) | Pte.leafType(level);
    }

    public static long table(Geometry g, long tableIpa) {
        return g.encodeAddress(tableIpa) | Pte.TYPE_MASK;
    }

    /**
     * The table-descriptor restrictions {@code tableBits} (an OR of the table descriptors met on
     * the walk, hierarchical bits only) applied to leaf {@code pte}: APTable[1] sets AP[2],
     * APTable[0] clears AP[1], PXNTable/UXNTable set PXN/UXN.
     */
    public static long effective(long pte, long tableBits) {
        if ((tableBits & AP_TABLE_RDONLY) != 0) pte |= AP_RDONLY;
        if ((tableBits & AP_TABLE_NO_EL0) != 0) pte &= ~AP_EL0;
        if ((tableBits & PXN_TABLE) != 0) pte |= PXN;
        if ((tableBits & UXN_TABLE) != 0) pte |= UXN;
        return pte;
    }

    /** Hierarchical control bits of a table descriptor. */
    public static final long TABLE_CONTROLS = PXN_TABLE | UXN_TABLE | AP_TABLE_NO_EL0 | AP_TABLE_RDONLY;

    public static boolean readable(long pte, boolean el0) {
        return !el0 || (pte & AP_EL0) != 0;
    }

    public static boolean writable(long pte, boolean el0) {
        return (pte & AP_RDONLY) == 0 && (!el0 || (pte & AP_EL0) != 0);
    }

    /** Execute at EL0 ({@code el0}) or EL1: EL1 never executes what EL0 may write (AP = 01). */
    public static boolean executable(long pte, boolean el0) {
        if (el0) return (pte & (UXN | AP_EL0)) == AP_EL0;
        return (pte & PXN) == 0 && (pte & (AP_EL0 | AP_RDONLY)) != AP_EL0;
    }

    public static boolean global(long pte) { return (pte & NG) == 0; }
    public static boolean young(long pte) { return (pte & AF) != 0; }

    public static int attrIndex(long pte) {
        return (int) ((pte & ATTRINDX_MASK) >>> ATTRINDX_SHIFT);
    }

    /** The MAIR attribute byte {@code pte} selects from {@code mair}, decoded. */
    public static MemAttr memAttr(long pte, long mair) {
        int attr = (int) (mair >>> (8 * attrIndex(pte))) & 0xFF;
        switch (attr) {
            case 0xFF: return MemAttr.NORMAL_WB;
            case 0x44: return MemAttr.NORMAL_NC;
            case 0x00: return MemAttr.DEVICE_nGnRnE;
            case 0x04: return MemAttr.DEVICE_nGnRE;
            default: return MemAttr.OTHER;
        }
    }

    /** Rank of an attribute: lower is stricter (Device before Normal, non-cacheable before write-back). */
    private static int rank(MemAttr a) {
        switch (a) {
            case DEVICE_nGnRnE: return 0;
            case DEVICE_nGnRE: return 1;
            case OTHER: return 2;
            case NORMAL_NC: return 3;
            default: return 4;
        }
    }

    /**
     * Stage-1 attribute {@code s1} combined with stage-2 leaf {@code s2pte} (D8.6.5–D8.6.7,
     * {@code S2CombineS1MemAttrs}, {@code S2ApplyFWBMemAttrs}). Without FWB the stricter of the
     * two wins. With FWB, MemAttr[2] = 0 is Device combined with stage 1; 0b101 is Normal NC
     * unless stage 1 says Device; 0b110 is Normal WB whatever stage 1 says; 0b111 takes stage 1.
     * Write-through and the other MemAttr encodings are {@link MemAttr#OTHER} (coarse on purpose:
     * ptlab's tables write only KVM's encodings).
     */
    public static MemAttr combine(MemAttr s1, long s2pte, boolean fwb) {
        long m = Stage2Descriptor.memAttrField(s2pte);
        MemAttr s2;
        if (fwb) {
            if ((m & 4) == 0) {
                s2 = (m & 3) == 0 ? MemAttr.DEVICE_nGnRnE : (m & 3) == 1 ? MemAttr.DEVICE_nGnRE : MemAttr.OTHER;
            } else if ((m & 7) == 5) {
                s2 = MemAttr.NORMAL_NC;
            } else if ((m & 7) == 6) {
                return MemAttr.NORMAL_WB;
            } else {
                return s1;
            }
        } else {
            s2 = Stage2Descriptor.memAttr(s2pte, false);
        }
        return rank(s1) <= rank(s2) ? s1 : s2;
    }
}
