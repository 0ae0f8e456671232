package dev.ptlab.core.arch;

/**
 * A translation granule: the size of a page and of every table frame.
 *
 * <p>Levels run from {@link #FIRST_LEVEL} (-1, only reachable with LPA2) to {@link #LAST_LEVEL}
 * (3, pages). Each level resolves {@code shift - 3} bits of the input address because a table
 * frame holds {@code 2^(shift-3)} 8-byte descriptors.
 */
public enum Granule {
    /** 4 KiB pages, 512 entries per table, blocks at L1 (1 GiB) and L2 (2 MiB). */
    G4K(12, 1, 2, 0b00, 0b10),
    /** 16 KiB pages, 2048 entries per table, blocks at L2 (32 MiB) only. */
    G16K(14, 2, 3, 0b10, 0b01),
    /** 64 KiB pages, 8192 entries per table, blocks at L2 (512 MiB) only. */
    G64K(16, 2, 3, 0b01, 0b11);

    public static final int FIRST_LEVEL = -1;
    public static final int LAST_LEVEL = 3;
    /** Bytes per descriptor at every level. */
    public static final int BYTES_PER_ENTRY = 8;

    private final int shift;
    private final int minBlockLevel;
    private final int sl0Base;
    private final int tg0;
    private final int tg1;
    private final long[] levelShift = new long[5];

    Granule(int shift, int minBlockLevel, int sl0Base, int tg0, int tg1) {
        this.shift = shift;
        this.minBlockLevel = minBlockLevel;
        this.sl0Base = sl0Base;
        this.tg0 = tg0;
        this.tg1 = tg1;
        for (int level = FIRST_LEVEL; level <= LAST_LEVEL; level++) {
            levelShift[level + 1] = (long) (shift - 3) * (LAST_LEVEL + 1 - level) + 3;
        }
    }

    /** log2 of the page size. */
    public int shift() {
        return shift;
    }

    public long pageSize() {
        return 1L << shift;
    }

    public long pageMask() {
        return (1L << shift) - 1;
    }

    /** Address bits resolved by one table level. */
    public int bitsPerLevel() {
        return shift - 3;
    }

    public int entriesPerTable() {
        return 1 << (shift - 3);
    }

    /**
     * log2 of the bytes mapped by one entry at {@code level}. Defined arithmetically for levels
     * below -1 too (used when counting concatenated root tables).
     */
    public int levelShift(int level) {
        if (level >= FIRST_LEVEL && level <= LAST_LEVEL) {
            return (int) levelShift[level + 1];
        }
        return (shift - 3) * (LAST_LEVEL + 1 - level) + 3;
    }

    /** Bytes mapped by one entry at {@code level}. */
    public long levelSize(int level) {
        checkLevel(level);
        int s = levelShift(level);
        return s >= 64 ? 0 : 1L << s;
    }

    /** Index of the entry translating {@code addr} in a (non-concatenated) table at {@code level}. */
    public int index(long addr, int level) {
        return (int) ((addr >>> levelShift(level)) & (entriesPerTable() - 1));
    }

    /** Lowest level that may hold a block descriptor as KVM uses them (no 64G/4T blocks). */
    public int minBlockLevel() {
        return minBlockLevel;
    }

    /** True if a leaf (block or page) may be placed at {@code level}. */
    public boolean leafAllowed(int level) {
        return level >= minBlockLevel && level <= LAST_LEVEL;
    }

    /** VTCR_EL2.SL0 base: SL0 = base - start level. */
    public int sl0Base() {
        return sl0Base;
    }

    /** TCR/VTCR TG0 encoding. */
    public int tg0() {
        return tg0;
    }

    /** TCR TG1 encoding (different from TG0's): 0b01 = 16K, 0b10 = 4K, 0b11 = 64K. */
    public int tg1() {
        return tg1;
    }

    public static void checkLevel(int level) {
        if (level < FIRST_LEVEL || level > LAST_LEVEL) {
            throw new IllegalArgumentException("level: " + level + " is outside " + FIRST_LEVEL + ".." + LAST_LEVEL);
        }
    }

    /** Parses "4k", "16K", "64k" (case-insensitive). */
    public static Granule parse(String text) {
        switch (text.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "4k": case "4096": return G4K;
            case "16k": case "16384": return G16K;
            case "64k": case "65536": return G64K;
            default:
                throw new IllegalArgumentException("granule: \"" + text + "\" is not one of 4k, 16k, 64k");
        }
    }

    /** Human form: 4k, 16k, 64k. */
    public String label() {
        return (pageSize() >> 10) + "k";
    }
}
