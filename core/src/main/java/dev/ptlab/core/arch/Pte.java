package dev.ptlab.core.arch;

/**
 * Format-independent facts about a 64-bit translation descriptor.
 *
 * <p>Bit 0 is VALID. Bit 1 is TYPE: below level 3, 1 = table and 0 = block; at level 3, 1 =
 * page and 0 is reserved (treated as invalid by hardware; never written here). Invalid
 * descriptors are free for software: stage-2 uses them for owner annotations (bits [9:2]) and the
 * LOCKED marker (bit 10) that a shared walker installs while it performs break-before-make.
 */
public final class Pte {
    private Pte() {}

    public static final long VALID = 1L;
    public static final long TYPE = 1L << 1;
    public static final long TYPE_MASK = VALID | TYPE;
    /** Invalid descriptor marking an entry owned by a walker doing break-before-make. */
    public static final long LOCKED = 1L << 10;
    public static final int OWNER_SHIFT = 2;
    public static final long OWNER_MASK = 0xFFL << OWNER_SHIFT;
    /** Largest owner id an annotation can carry (field maximum). */
    public static final int MAX_OWNER_ID = 0xFF;

    /** Leaf attributes the library manipulates: bits [11:2] and [63:50]. */
    public static final long ATTR_LO = 0xFFCL;
    public static final long ATTR_HI = 0xFFFCL << 48;
    public static final long SW_BITS = 0xFL << 55;

    public static boolean isValid(long pte) {
        return (pte & VALID) != 0;
    }

    /** A valid table descriptor at a level that may hold tables (below 3). */
    public static boolean isTable(long pte, int level) {
        return level < Granule.LAST_LEVEL && (pte & TYPE_MASK) == TYPE_MASK;
    }

    /** A valid block or page descriptor. */
    public static boolean isValidLeaf(long pte, int level) {
        return isValid(pte) && !isTable(pte, level);
    }

    /** Type bits for a leaf at {@code level}: page (0b11) at level 3, block (0b01) above. */
    public static long leafType(int level) {
        return level == Granule.LAST_LEVEL ? TYPE_MASK : VALID;
    }

    public static boolean isLocked(long pte) {
        return !isValid(pte) && (pte & LOCKED) != 0;
    }

    /**
     * Whether the entry holds a reference on its containing table frame. Stage-2: any non-zero
     * entry (valid entries and annotations); LOCKED is transient and never counted. Hyp: valid.
     */
    public static boolean isCountedStage2(long pte) {
        return pte != 0 && pte != LOCKED;
    }

    public static boolean isCountedHyp(long pte) {
        return isValid(pte);
    }

    /**
     * Process (EL0/EL1 stage-1) tables: any non-zero entry, valid or not, because a swap-style
     * entry (swap slot, device-exclusive, ...) stands for a mapping and must keep its table alive.
     */
    public static boolean isCountedProcess(long pte) {
        return pte != 0;
    }

    /** Whether {@code pte} holds a reference on its containing table in a table of {@code stage}. */
    public static boolean isCounted(Stage stage, long pte) {
        switch (stage) {
            case STAGE2: return isCountedStage2(pte);
            case PROCESS: return isCountedProcess(pte);
            default: return isCountedHyp(pte);
        }
    }

    /** An invalid annotation carrying an owner id (owner 0 is the all-zero entry). */
    public static long ownerAnnotation(int ownerId) {
        if (ownerId < 0 || ownerId > MAX_OWNER_ID) {
            throw new IllegalArgumentException("owner: " + ownerId + " is outside 0.." + MAX_OWNER_ID);
        }
        return (long) ownerId << OWNER_SHIFT;
    }

    /** Owner id of an invalid, non-locked entry (0 when not annotated). */
    public static int owner(long pte) {
        if (isValid(pte) || isLocked(pte)) return 0;
        return (int) ((pte & OWNER_MASK) >>> OWNER_SHIFT);
    }

    /** Lowest aligned address of the entry at {@code level} containing {@code addr}. */
    public static long alignDown(long addr, long size) {
        return addr & -size;
    }
}
