package dev.ptlab.mm;

/** Things an address space counts ({@link MmStats}). */
public enum MmEvent {
    /** CPU or GUP faults handled (any outcome). */
    FAULT,
    /** A fault allocated a zeroed anonymous page. */
    ANON_PAGE,
    /** A fault allocated a PMD-sized THP. */
    THP_PAGE,
    /** A fault mapped a hugetlb page. */
    HUGETLB_PAGE,
    /** A fault mapped a shared-memory page. */
    SHMEM_PAGE,
    /** A write fault copied a COW-shared page. */
    COW_COPY,
    /** A write fault reused an exclusively owned read-only anonymous page (made it writable). */
    COW_REUSE,
    /** A fault read a page back from swap. */
    SWAP_IN,
    /** A CPU or GUP fault restored a device-exclusive entry. */
    EXCLUSIVE_RESTORE,
    /** fork restored a device-exclusive entry before copying it. */
    FORK_RESTORE,
    /** A fault returned RETRY (it slept on a folio lock). */
    FAULT_RETRY,
    /** A fault found the entry already allowed the access. */
    SPURIOUS_FAULT,
    /** A fault ended in SIGSEGV. */
    SEGV,
    /** make_device_exclusive converted a page. */
    EXCLUSIVE_CONVERSION,
    /** A page was reclaimed to swap. */
    RECLAIM,
    /** A PMD-mapped THP was split (remapped by PTEs). */
    THP_SPLIT,
    /** fork succeeded. */
    FORK,
    /** fork failed (ENOMEM). */
    FORK_FAILED,
    /** Pages whose entries a zap removed (munmap, MADV_DONTNEED, exit). */
    ZAPPED_PAGE,
    /** Page-table frames freed. */
    TABLE_FREED
}
