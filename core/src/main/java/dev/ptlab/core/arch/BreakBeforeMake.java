package dev.ptlab.core.arch;

/**
 * The architectural break-before-make rule as a predicate: a valid descriptor may be replaced by
 * another valid descriptor without first being invalidated (and the TLB invalidated) only when
 * the change is confined to permission bits, the access flag, DBM and software bits. Any change
 * of output address, size (block/table/page), memory type or shareability needs BBM, or TLBs
 * may hold two conflicting translations.
 */
public final class BreakBeforeMake {
    private BreakBeforeMake() {}

    /** Stage-2 bits that may change on a live leaf. */
    public static final long STAGE2_EXEMPT = Stage2Descriptor.PERMS | Stage2Descriptor.AF | Stage2Descriptor.DBM | Pte.SW_BITS;
    /** Hyp (EL2 stage-1) bits that may change on a live leaf. */
    public static final long HYP_EXEMPT = HypDescriptor.AP_MASK | HypDescriptor.XN | HypDescriptor.PXN | HypDescriptor.AF
            | Pte.SW_BITS;
    /**
     * Process (EL0/EL1 stage-1) bits that may change on a live leaf: the hyp set plus DBM (bit 51,
     * which Linux uses as the software write bit).
     */
    public static final long PROCESS_EXEMPT = HYP_EXEMPT | (1L << 51);

    /** The bits {@link #storeAllowed} lets change on a live leaf of a {@code stage} table. */
    public static long exemptBits(Stage stage) {
        switch (stage) {
            case STAGE2: return STAGE2_EXEMPT;
            case PROCESS: return PROCESS_EXEMPT;
            default: return HYP_EXEMPT;
        }
    }

    /**
     * Whether storing {@code next} over {@code current} at {@code level} is allowed without BBM:
     * true unless both are valid, differ, and the difference is more than exempt leaf bits.
     */
    public static boolean storeAllowed(Stage stage, int level, long current, long next) {
        if (!Pte.isValid(current) || !Pte.isValid(next) || current == next) return true;
        if (Pte.isTable(current, level) || Pte.isTable(next, level)) return false;
        long exempt = exemptBits(stage);
        return ((current ^ next) & ~exempt) == 0;
    }

    /**
     * Refuses a leaf-attribute update ({@code (v & ~clear) | set} on live leaves) that would touch
     * bits needing break-before-make in a {@code stage} table: such an update is not an attribute
     * update but a remap, and must go through map.
     *
     * @throws IllegalArgumentException naming the offending bits
     */
    public static void checkExemptUpdate(Stage stage, long set, long clear) {
        long bad = (set | clear) & ~exemptBits(stage);
        if (bad != 0) {
            throw new IllegalArgumentException("set/clear: 0x" + Long.toHexString(set | clear)
                    + " touches bits that need break-before-make");
        }
    }
}
