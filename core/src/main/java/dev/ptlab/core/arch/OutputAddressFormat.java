package dev.ptlab.core.arch;

/**
 * How a descriptor stores its output address (a next-level table or a block/page target).
 *
 * <ul>
 *   <li>{@link #PA48}: OA[47:granule shift] in place; 48-bit physical addresses.</li>
 *   <li>{@link #PA52_64K} (FEAT_LPA, 64K granule only): OA[47:16] in place, OA[51:48] in
 *       descriptor bits [15:12].</li>
 *   <li>{@link #LPA2} (FEAT_LPA2, 4K and 16K granules): OA[49:granule shift] in place, OA[51:50] in
 *       descriptor bits [9:8]. Those bits were the shareability field, so leaves carry no SH
 *       field and shareability comes from VTCR/TCR.</li>
 * </ul>
 */
public enum OutputAddressFormat {
    PA48(48),
    PA52_64K(52),
    LPA2(52);

    private final int paBits;

    OutputAddressFormat(int paBits) {
        this.paBits = paBits;
    }

    /** Width of the physical addresses this format can express. */
    public int paBits() {
        return paBits;
    }

    /** Whether leaves have an SH[1:0] field in bits [9:8]. */
    public boolean hasShareabilityField() {
        return this != LPA2;
    }

    /** Descriptor bits that hold (parts of) the output address for this granule. */
    public long addressMask(Granule g) {
        switch (this) {
            case PA48: return lowMask(48) & ~g.pageMask();
            case PA52_64K: return (lowMask(48) & ~g.pageMask()) | 0xF000L;
            case LPA2: return (lowMask(50) & ~g.pageMask()) | 0x300L;
            default: throw new AssertionError(this);
        }
    }

    /** Checks that this format can be used with granule {@code g}. */
    public void checkGranule(Granule g) {
        if (this == PA52_64K && g != Granule.G64K) {
            throw new IllegalArgumentException("oa-format: PA52_64K needs the 64k granule, not " + g.label());
        }
        if (this == LPA2 && g == Granule.G64K) {
            // FEAT_LPA2 (TCR/VTCR.DS) exists for the 4K and 16K granules only; a 52-bit OA with
            // 64K pages is FEAT_LPA, which keeps PA[51:48] in bits [15:12].
            throw new IllegalArgumentException("oa-format: LPA2 needs the 4k or 16k granule, not 64k (use PA52_64K)");
        }
    }

    /** Encodes {@code pa} (granule-aligned, below 2^paBits) into descriptor bits. */
    public long encode(long pa, Granule g) {
        switch (this) {
            case PA48: return pa & lowMask(48) & ~g.pageMask();
            case PA52_64K: return (pa & lowMask(48) & ~0xFFFFL) | ((pa >>> 36) & 0xF000L);
            case LPA2: return (pa & lowMask(50) & ~g.pageMask()) | ((pa >>> 42) & 0x300L);
            default: throw new AssertionError(this);
        }
    }

    /** Decodes the output address from descriptor {@code pte}. */
    public long decode(long pte, Granule g) {
        switch (this) {
            case PA48: return pte & lowMask(48) & ~g.pageMask();
            case PA52_64K: return (pte & lowMask(48) & ~0xFFFFL) | ((pte & 0xF000L) << 36);
            case LPA2: return (pte & lowMask(50) & ~g.pageMask()) | ((pte & 0x300L) << 42);
            default: throw new AssertionError(this);
        }
    }

    private static long lowMask(int bits) {
        return bits >= 64 ? -1L : (1L << bits) - 1;
    }
}
