package dev.ptlab.mm;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Pte;

/**
 * Entries of a host process page table (arm64 EL0/EL1 stage-1 format, as Linux uses it).
 *
 * <p>Present entries (bit 0 set): a page (level 3) or a block (a PMD-mapped THP at level 2, a
 * hugetlb page at level 1 or 2).
 * <pre>
 *   [1:0]   0b11 page / 0b01 block        [4:2]  AttrIndx = 0 (normal WB)
 *   [6]     AP[1] USER (EL0 may access)   [7]    AP[2] RDONLY
 *   [9:8]   SH inner                      [10]   AF (young)
 *   [11]    nG                            [51]   DBM, used as the software WRITE bit
 *   [53]    PXN (always: user memory)     [54]   UXN (not executable)
 *   [55]    software DIRTY                [56]   software SPECIAL
 *   [57]    software SOFT_DIRTY (ptlab; arm64 Linux has no soft-dirty bit)
 * </pre>
 * A writable entry has WRITE set and RDONLY clear; a read-only one RDONLY set and WRITE clear
 * (Linux's "hardware dirty" state, WRITE without RDONLY, is the only writable form used here,
 * since the host CPU is not a hardware walker in this model). An entry without USER grants EL0
 * nothing (PROT_NONE).
 *
 * <p>Non-present entries (bit 0 clear, non-zero) are Linux's arm64 swap entries:
 * <pre>
 *   [2]     SWP_EXCLUSIVE (anon page exclusively owned)     [7:3]  type (5 bits)
 *   [57:8]  offset (50 bits): swap slot, or a PFN for device/migration types
 *   [58]    SWP_SOFT_DIRTY (ptlab)
 * </pre>
 * Types follow include/linux/swap.h (6.15): 0..23 are swap devices; 24 HWPOISON, 25..27
 * migration, 28..29 device-private, 30 DEVICE_EXCLUSIVE (the single 6.15 type), 31 PTE marker.
 * A non-present entry has bits [1:0] = 0b00, so a hardware walker (and ptlab's walker) sees an
 * invalid descriptor.
 */
public final class HostPte {
    private HostPte() {}

    public static final long VALID = Pte.VALID;
    public static final long PAGE = Pte.TYPE_MASK;
    public static final long USER = 1L << 6;
    public static final long RDONLY = 1L << 7;
    public static final long SH_INNER = 3L << 8;
    public static final long AF = 1L << 10;
    public static final long NG = 1L << 11;
    public static final long WRITE = 1L << 51;
    public static final long PXN = 1L << 53;
    public static final long UXN = 1L << 54;
    public static final long DIRTY = 1L << 55;
    public static final long SPECIAL = 1L << 56;
    public static final long SOFT_DIRTY = 1L << 57;

    public static final long SWP_EXCLUSIVE = 1L << 2;
    public static final int SWP_TYPE_SHIFT = 3;
    public static final int SWP_TYPE_BITS = 5;
    public static final long SWP_TYPE_MASK = ((1L << SWP_TYPE_BITS) - 1) << SWP_TYPE_SHIFT;
    public static final int SWP_OFFSET_SHIFT = 8;
    public static final int SWP_OFFSET_BITS = 50;
    public static final long SWP_OFFSET_MASK = ((1L << SWP_OFFSET_BITS) - 1) << SWP_OFFSET_SHIFT;
    public static final long SWP_SOFT_DIRTY = 1L << 58;

    /** Swap devices are types 0..MAX_SWAPFILES-1; ptlab has one, type 0. */
    public static final int MAX_SWAPFILES = 24;
    public static final int SWP_SWAPFILE = 0;
    public static final int SWP_HWPOISON = 24;
    public static final int SWP_MIGRATION_READ = 25;
    public static final int SWP_MIGRATION_READ_EXCLUSIVE = 26;
    public static final int SWP_MIGRATION_WRITE = 27;
    public static final int SWP_DEVICE_WRITE = 28;
    public static final int SWP_DEVICE_READ = 29;
    public static final int SWP_DEVICE_EXCLUSIVE = 30;
    public static final int SWP_PTE_MARKER = 31;

    /** Bits every present user entry carries besides the output address and the variable ones. */
    private static final long PRESENT_BASE = SH_INNER | NG | PXN;

    // ---- present entries ----

    /**
     * A present leaf for {@code pa} at {@code level}: user-accessible unless {@code user} is
     * false (PROT_NONE), writable or read-only, executable or not.
     */
    public static long present(Geometry g, long pa, int level, boolean user, boolean write, boolean exec,
                               boolean young, boolean dirty) {
        long v = g.encodeAddress(pa) | Pte.leafType(level) | PRESENT_BASE;
        if (user) v |= USER;
        v |= write ? WRITE : RDONLY;
        if (!exec) v |= UXN;
        if (young) v |= AF;
        if (dirty) v |= DIRTY;
        return v;
    }

    public static boolean isPresent(long pte) { return Pte.isValid(pte); }
    public static boolean isNone(long pte) { return pte == 0; }
    public static boolean isUser(long pte) { return (pte & USER) != 0; }
    public static boolean isWrite(long pte) { return (pte & WRITE) != 0 && (pte & RDONLY) == 0; }
    public static boolean isExec(long pte) { return (pte & UXN) == 0; }
    public static boolean isYoung(long pte) { return (pte & AF) != 0; }
    public static boolean isDirty(long pte) { return (pte & DIRTY) != 0; }
    public static boolean isSoftDirty(long pte) {
        return Pte.isValid(pte) ? (pte & SOFT_DIRTY) != 0 : (pte & SWP_SOFT_DIRTY) != 0;
    }

    public static long pa(Geometry g, long pte) { return g.outputAddress(pte); }

    public static long mkWrite(long pte) { return (pte | WRITE) & ~RDONLY; }
    public static long wrprotect(long pte) { return (pte | RDONLY) & ~WRITE; }
    public static long mkYoung(long pte) { return pte | AF; }
    public static long mkOld(long pte) { return pte & ~AF; }
    public static long mkDirty(long pte) { return pte | DIRTY | SOFT_DIRTY; }
    public static long mkClean(long pte) { return pte & ~DIRTY; }

    // ---- non-present (swap-style) entries ----

    /** A non-present entry of {@code type} with {@code offset} (swap slot or PFN). */
    public static long swapEntry(int type, long offset) {
        if (type < 0 || type >= 1 << SWP_TYPE_BITS) {
            throw new IllegalArgumentException("type: " + type + " is outside 0.." + ((1 << SWP_TYPE_BITS) - 1));
        }
        if (offset < 0 || offset >= 1L << SWP_OFFSET_BITS) {
            throw new IllegalArgumentException("offset: 0x" + Long.toHexString(offset) + " does not fit in "
                    + SWP_OFFSET_BITS + " bits");
        }
        return ((long) type << SWP_TYPE_SHIFT) | (offset << SWP_OFFSET_SHIFT);
    }

    /** A non-zero, non-present entry: swap slot, device-exclusive, migration, ... */
    public static boolean isSwapLike(long pte) { return pte != 0 && !Pte.isValid(pte); }
    public static int swapType(long pte) { return (int) ((pte & SWP_TYPE_MASK) >>> SWP_TYPE_SHIFT); }
    public static long swapOffset(long pte) { return (pte & SWP_OFFSET_MASK) >>> SWP_OFFSET_SHIFT; }

    /** An entry naming a slot of a swap device (not one of the special types). */
    public static boolean isSwap(long pte) { return isSwapLike(pte) && swapType(pte) < MAX_SWAPFILES; }

    public static long deviceExclusive(long pfn) { return swapEntry(SWP_DEVICE_EXCLUSIVE, pfn); }
    public static boolean isDeviceExclusive(long pte) {
        return isSwapLike(pte) && swapType(pte) == SWP_DEVICE_EXCLUSIVE;
    }

    /** Readable name of an entry, for errors and dumps. */
    public static String describe(Geometry g, long pte) {
        if (pte == 0) return "none";
        if (Pte.isValid(pte)) {
            return "present pa=0x" + Long.toHexString(pa(g, pte)) + (isUser(pte) ? "" : " prot-none")
                    + (isWrite(pte) ? " w" : " ro") + (isExec(pte) ? " x" : "") + (isYoung(pte) ? " young" : " old")
                    + (isDirty(pte) ? " dirty" : "") + ((pte & SOFT_DIRTY) != 0 ? " soft-dirty" : "");
        }
        String type;
        int t = swapType(pte);
        if (t < MAX_SWAPFILES) type = "swap(" + t + ")";
        else if (t == SWP_DEVICE_EXCLUSIVE) type = "device-exclusive";
        else if (t == SWP_HWPOISON) type = "hwpoison";
        else if (t <= SWP_MIGRATION_WRITE) type = "migration";
        else if (t <= SWP_DEVICE_READ) type = "device-private";
        else type = "pte-marker";
        return type + " offset=0x" + Long.toHexString(swapOffset(pte)) + ((pte & SWP_SOFT_DIRTY) != 0 ? " soft-dirty" : "")
                + ((pte & SWP_EXCLUSIVE) != 0 ? " exclusive" : "");
    }
}
