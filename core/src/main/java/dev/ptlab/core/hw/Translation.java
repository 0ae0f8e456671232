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

    public static boolean isFault(long raw) {
        return raw < 0;
    }

    /** {@code FaultType.values()} clones its array on every call; the fault path decodes once per fault. */
    private static final FaultType[] FAULT_TYPES = FaultType.values();

    public static FaultType faultType(long raw) {
        return FAULT_TYPES[(int) ((-1L - raw) >>> 8)];
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
