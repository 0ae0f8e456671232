package dev.ptlab.core.arch;

/**
 * The shape of one translation table: granule, input-address size, start level, how many root
 * tables are concatenated at the start level, and the output-address format.
 *
 * <p>Stage-2 resolves up to four extra input bits at the start level by concatenating up to 16
 * root tables, so its level count is the stage-1 formula applied to {@code ipaBits - 4}, with a
 * minimum of two levels. EL2 stage-1 never concatenates: its root is one table.
 */
public final class Geometry {
    private final Stage stage;
    private final Granule granule;
    private final int iaBits;
    private final int startLevel;
    private final int rootPages;
    private final OutputAddressFormat oaFormat;
    // Derived values the hot paths use without recomputing.
    private final long iaLimit;
    private final long oaMask;
    private final int rootIndexShift;

    private Geometry(Stage stage, Granule granule, int iaBits, int startLevel, int rootPages, OutputAddressFormat fmt) {
        this.stage = stage;
        this.granule = granule;
        this.iaBits = iaBits;
        this.startLevel = startLevel;
        this.rootPages = rootPages;
        this.oaFormat = fmt;
        this.iaLimit = iaBits >= 64 ? 0 : 1L << iaBits;
        this.oaMask = fmt.addressMask(granule);
        this.rootIndexShift = granule.levelShift(startLevel - 1);
    }

    /** Number of levels a stage-1 walk of {@code bits} input bits needs (the kernel's ARM64_HW_PGTABLE_LEVELS). */
    static int levelsFor(Granule g, int bits) {
        return (bits - 4) / (g.shift() - 3);
    }

    /**
     * Stage-2 geometry for an IPA size. 52-bit IPAs need a 52-bit output format: LPA2 with 4K or
     * 16K, LPA2 or PA52_64K with 64K.
     */
    public static Geometry stage2(Granule g, int ipaBits, OutputAddressFormat fmt) {
        if (g == null) throw new IllegalArgumentException("granule: null");
        if (fmt == null) throw new IllegalArgumentException("oa-format: null");
        fmt.checkGranule(g);
        if (ipaBits < 32 || ipaBits > 52) {
            throw new IllegalArgumentException("ipa-bits: " + ipaBits + " is outside 32..52");
        }
        if (ipaBits > fmt.paBits()) {
            throw new IllegalArgumentException("ipa-bits: " + ipaBits + " exceeds the " + fmt.paBits()
                    + "-bit output format " + fmt + " (52-bit IPAs need LPA2, or PA52_64K with the 64k granule)");
        }
        int levels = Math.max(2, levelsFor(g, ipaBits - 4));
        int start = Granule.LAST_LEVEL + 1 - levels;
        long pages = (((ipaBits >= 64 ? -1L : (1L << ipaBits) - 1)) >>> g.levelShift(start - 1)) + 1;
        if (pages > 16) {
            throw new IllegalArgumentException("ipa-bits: " + ipaBits + " needs " + pages
                    + " concatenated root tables with the " + g.label() + " granule (at most 16)");
        }
        return new Geometry(Stage.STAGE2, g, ipaBits, start, (int) pages, fmt);
    }

    /** PA48 up to 48 input bits; above, LPA2 with 4K/16K and PA52_64K (FEAT_LPA) with 64K. */
    public static OutputAddressFormat defaultFormat(Granule g, int inputBits) {
        if (inputBits <= 48) return OutputAddressFormat.PA48;
        return g == Granule.G64K ? OutputAddressFormat.PA52_64K : OutputAddressFormat.LPA2;
    }

    /** Stage-2 geometry with the {@linkplain #defaultFormat default output format}. */
    public static Geometry stage2(Granule g, int ipaBits) {
        return stage2(g, ipaBits, defaultFormat(g, ipaBits));
    }

    /** EL2 stage-1 geometry for a VA size; the root is always a single table. */
    public static Geometry hyp(Granule g, int vaBits, OutputAddressFormat fmt) {
        return stage1(Stage.HYP, g, vaBits, fmt);
    }

    /**
     * Stage-1 geometry of a host process (EL0/EL1, TTBR0_EL1) for a VA size: the same shape as
     * {@link #hyp(Granule, int, OutputAddressFormat)}, tagged {@link Stage#PROCESS} so walks count
     * non-present (swap-style) entries as references on their table.
     */
    public static Geometry process(Granule g, int vaBits, OutputAddressFormat fmt) {
        return stage1(Stage.PROCESS, g, vaBits, fmt);
    }

    public static Geometry process(Granule g, int vaBits) {
        return process(g, vaBits, defaultFormat(g, vaBits));
    }

    /**
     * A guest's EL1&amp;0 stage-1 geometry (TTBR0_EL1 or TTBR1_EL1 half) for a VA size, as
     * TCR_EL1.TxSZ = 64 - vaBits and TGx select it: one root table, start level from
     * {@code AArch64.S1StartLevel}. The output format bounds the IPAs its descriptors hold.
     */
    public static Geometry guestStage1(Granule g, int vaBits, OutputAddressFormat fmt) {
        return stage1(Stage.GUEST_S1, g, vaBits, fmt);
    }

    public static Geometry guestStage1(Granule g, int vaBits) {
        return guestStage1(g, vaBits, defaultFormat(g, vaBits));
    }

    private static Geometry stage1(Stage stage, Granule g, int vaBits, OutputAddressFormat fmt) {
        if (g == null) throw new IllegalArgumentException("granule: null");
        if (fmt == null) throw new IllegalArgumentException("oa-format: null");
        fmt.checkGranule(g);
        if (vaBits < 25 || vaBits > 52) {
            throw new IllegalArgumentException("va-bits: " + vaBits + " is outside 25..52");
        }
        if (vaBits > 48 && fmt == OutputAddressFormat.PA48) {
            throw new IllegalArgumentException("va-bits: " + vaBits + " needs a 52-bit output format (LPA2 or PA52_64K)");
        }
        int levels = levelsFor(g, vaBits);
        int start = Granule.LAST_LEVEL + 1 - levels;
        if (start < Granule.FIRST_LEVEL || start > Granule.LAST_LEVEL) {
            throw new IllegalArgumentException("va-bits: " + vaBits + " gives start level " + start
                    + " with the " + g.label() + " granule (must be " + Granule.FIRST_LEVEL + ".." + Granule.LAST_LEVEL + ")");
        }
        return new Geometry(stage, g, vaBits, start, 1, fmt);
    }

    public static Geometry hyp(Granule g, int vaBits) {
        return hyp(g, vaBits, defaultFormat(g, vaBits));
    }

    public Stage stage() { return stage; }
    public Granule granule() { return granule; }
    /** Input-address size in bits (IPA for stage-2, VA for hyp). */
    public int iaBits() { return iaBits; }
    /** 2^iaBits: the first address outside the table. */
    public long iaLimit() { return iaLimit; }
    public int startLevel() { return startLevel; }
    public int levels() { return Granule.LAST_LEVEL + 1 - startLevel; }
    /** Number of physically contiguous root tables at the start level (1..16). */
    public int rootPages() { return rootPages; }
    public OutputAddressFormat oaFormat() { return oaFormat; }
    public int paBits() { return oaFormat.paBits(); }

    /** Which concatenated root table translates {@code addr}. */
    public int rootPageIndex(long addr) {
        return (int) ((addr & (iaLimit - 1)) >>> rootIndexShift);
    }

    /** The output address held by descriptor {@code pte}. */
    public long outputAddress(long pte) {
        if (oaFormat == OutputAddressFormat.PA48) {
            return pte & oaMask;
        }
        return oaFormat.decode(pte, granule);
    }

    /** Descriptor bits encoding output address {@code pa}. */
    public long encodeAddress(long pa) {
        if (oaFormat == OutputAddressFormat.PA48) {
            return pa & oaMask;
        }
        return oaFormat.encode(pa, granule);
    }

    /** Descriptor bits that belong to the output address. */
    public long addressMask() {
        return oaMask;
    }

    /**
     * True if hardware accepts a block or page descriptor at {@code level} in this format: the
     * KVM levels ({@link #leafAllowed}) plus the 52-bit-only blocks KVM never writes: 512G at
     * 4K level 0 and 64G at 16K level 1 with LPA2 (TCR/VTCR.DS), 4T at 64K level 1 with FEAT_LPA.
     * Hardware treats a block descriptor anywhere else as invalid (a translation fault).
     */
    public boolean hardwareLeafAllowed(int level) {
        if (granule.leafAllowed(level)) return true;
        if (level == granule.minBlockLevel() - 1 && oaFormat.paBits() == 52) {
            return granule == Granule.G4K ? oaFormat == OutputAddressFormat.LPA2 : level == 1;
        }
        return false;
    }

    /** True if {@code level} may hold a leaf in this table (blocks from the granule's minimum block level). */
    public boolean leafAllowed(int level) {
        return granule.leafAllowed(level);
    }

    @Override
    public String toString() {
        return stage + "(" + granule.label() + ", " + iaBits + "-bit, start L" + startLevel + ", "
                + rootPages + " root" + (rootPages == 1 ? "" : "s") + ", " + oaFormat + ")";
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Geometry)) return false;
        Geometry g = (Geometry) o;
        return stage == g.stage && granule == g.granule && iaBits == g.iaBits && oaFormat == g.oaFormat;
    }

    @Override
    public int hashCode() {
        return ((stage.hashCode() * 31 + granule.hashCode()) * 31 + iaBits) * 31 + oaFormat.hashCode();
    }
}
