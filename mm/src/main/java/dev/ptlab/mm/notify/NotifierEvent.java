package dev.ptlab.mm.notify;

/**
 * Why a range of an address space is being invalidated (the kernel's {@code enum
 * mmu_notifier_event}). Subscribers may treat events differently, e.g. a device ignores the
 * {@link #EXCLUSIVE} event its own conversion sends (by {@link NotifierRange#owner()}).
 */
public enum NotifierEvent {
    /** The range is unmapped (munmap): the VMA goes away. */
    UNMAP,
    /**
     * Pages are cleared but the VMA stays (MADV_DONTNEED, reclaim, COW replacing a page, a THP
     * split) or a device-exclusive entry is restored to a present one by a CPU or GUP fault
     * (since 6.15; earlier kernels sent EXCLUSIVE with no owner there).
     */
    CLEAR,
    /** mprotect changes the protection of a VMA range. */
    PROTECTION_VMA,
    /** Pages are write-protected individually (fork write-protecting COW pages). */
    PROTECTION_PAGE,
    /** Soft-dirty tracking is reset. */
    SOFT_DIRTY,
    /** The address space is being torn down. */
    RELEASE,
    /** Pages are migrated (owner = the device doing it). */
    MIGRATE,
    /**
     * A present entry is being converted to device-exclusive (make_device_exclusive), and
     * nothing else: the owner is the converting caller's cookie, so that caller can ignore its
     * own conversion. Kernel 7.1-rc4's enum comment says the same; from 5.14 to 6.14 a restore
     * also sent EXCLUSIVE (with no owner), which the 2025 series (merged for 6.15) made a
     * {@link #CLEAR}.
     */
    EXCLUSIVE
}
