package dev.ptlab.mm.notify;

/**
 * Why a range of an address space is being invalidated (the kernel's {@code enum
 * mmu_notifier_event}). Subscribers may treat events differently, e.g. a device ignores the
 * {@link #EXCLUSIVE} event its own conversion sends (by {@link NotifierRange#owner()}).
 */
public enum NotifierEvent {
    /** The range is unmapped (munmap): the VMA goes away. */
    UNMAP,
    /** Pages are cleared but the VMA stays (MADV_DONTNEED, reclaim, COW replacing a page). */
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
     * Device-exclusive access: with an owner, a page is being made exclusive to that owner's
     * device; with no owner, a device is losing exclusive access (a CPU access restored the PTE).
     */
    EXCLUSIVE
}
