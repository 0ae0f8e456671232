package dev.ptlab.mm;

/** Outcome of a CPU fault (the kernel's vm_fault_t, as the arch fault handler sees it). */
public enum FaultResult {
    /** The entry now allows the access (or already did: a spurious fault); replay the access. */
    DONE,
    /**
     * The handler gave up the mmap lock to sleep (on a folio lock) and must be called again
     * (VM_FAULT_RETRY).
     */
    RETRY,
    /** No VMA at the address: SIGSEGV with SEGV_MAPERR. */
    SEGV_MAPERR,
    /** The VMA does not allow the access: SIGSEGV with SEGV_ACCERR. */
    SEGV_ACCERR,
    /** No memory for a page or a table: VM_FAULT_OOM. */
    OOM
}
