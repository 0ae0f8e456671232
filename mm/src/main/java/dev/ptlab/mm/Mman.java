package dev.ptlab.mm;

/** mmap/mprotect/madvise constants with Linux's values (asm-generic/mman-common.h). */
public final class Mman {
    private Mman() {}

    public static final int PROT_NONE = 0;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int PROT_EXEC = 4;

    public static final int MAP_SHARED = 0x01;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_FIXED = 0x10;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_HUGETLB = 0x40000;
    public static final int MAP_HUGE_SHIFT = 26;
    public static final int MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT;
    public static final int MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT;

    public static final int MADV_DONTNEED = 4;
    public static final int MADV_HUGEPAGE = 14;
    public static final int MADV_NOHUGEPAGE = 15;
    public static final int MADV_PAGEOUT = 21;

    /** GUP flags (include/linux/mm_types.h FOLL_*): the caller always gets a reference (FOLL_GET). */
    public static final int FOLL_WRITE = 0x01;
    /** Do not fault: fail with EFAULT unless the page is already mapped with the access allowed. */
    public static final int FOLL_NOFAULT = 0x02;
    /** Remap a PMD-mapped THP by PTEs (and split the folio) before returning the page. */
    public static final int FOLL_SPLIT_PMD = 0x04;

    public static String protString(int prot) {
        if (prot == PROT_NONE) return "---";
        return ((prot & PROT_READ) != 0 ? "r" : "-") + ((prot & PROT_WRITE) != 0 ? "w" : "-") + ((prot & PROT_EXEC) != 0 ? "x" : "-");
    }
}
