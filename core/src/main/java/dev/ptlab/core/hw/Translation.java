package dev.ptlab.core.hw;

import dev.ptlab.core.arch.MemAttr;

/**
 * Result of one translation: an output address with the leaf that produced it, or a fault with
 * its type and level. The allocation-free form is the {@code long} returned by
 * {@link Mmu#translate}; this record is the readable form.
 */
public record Translation(long address, Access access, long pa, FaultType fault, int level, long pte,
                          MemAttr memAttr, boolean readable, boolean writable, boolean executable, boolean tlbHit) {

    public boolean isFault() {
        return fault != null;
    }

    /** Encodes a fault into the negative result of {@link Mmu#translate}. */
    public static long encodeFault(FaultType type, int level) {
        return -1L - ((long) type.ordinal() << 8 | (level + 1));
    }

    /** Fault code bit: the fault is a stage-2 fault of a two-stage translation ({@link NestedMmu}). */
    private static final long STAGE2_BIT = 1L << 16;
    /** Fault code bit: that stage-2 fault hit a stage-1 table walk (ESR_EL2.S1PTW, PAR_EL1.PTW). */
    private static final long S1PTW_BIT = 1L << 17;

    /**
     * Encodes a stage-2 fault of a two-stage translation: as {@link #encodeFault} plus the
     * stage-2 mark and, for a fault on a stage-1 descriptor's IPA, S1PTW.
     */
    public static long encodeStage2Fault(FaultType type, int level, boolean s1ptw) {
        return -1L - ((long) type.ordinal() << 8 | (level + 1) | STAGE2_BIT | (s1ptw ? S1PTW_BIT : 0));
    }

    /** Whether fault code {@code raw} is a stage-2 fault of a two-stage translation. */
    public static boolean isStage2Fault(long raw) {
        return raw < 0 && ((-1L - raw) & STAGE2_BIT) != 0;
    }

    /** Whether fault code {@code raw} is a stage-2 fault taken on a stage-1 table walk (S1PTW). */
    public static boolean isS1ptw(long raw) {
        return raw < 0 && ((-1L - raw) & S1PTW_BIT) != 0;
    }

    public static boolean isFault(long raw) {
        return raw < 0;
    }

    /** {@code FaultType.values()} clones its array on every call; the fault path decodes once per fault. */
    private static final FaultType[] FAULT_TYPES = FaultType.values();

    public static FaultType faultType(long raw) {
        return FAULT_TYPES[(int) (((-1L - raw) >>> 8) & 0xFF)];
    }

    public static int faultLevel(long raw) {
        return (int) ((-1L - raw) & 0xFF) - 1;
    }

    @Override
    public String toString() {
        if (isFault()) {
            return String.format("0x%x %s -> fault %s level %d", address, access.label(), fault.label(), level);
        }
        return String.format("0x%x %s -> 0x%x (L%d %s %s%s%s)", address, access.label(), pa, level, memAttr,
                readable ? "r" : "-", writable ? "w" : "-", executable ? "x" : "-");
    }
}
