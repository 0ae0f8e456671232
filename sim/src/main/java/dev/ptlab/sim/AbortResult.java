package dev.ptlab.sim;

/**
 * What the guest-abort handler tells the vCPU after a stage-2 fault (as mm's
 * {@code FaultResult} tells the CPU after a host fault): re-enter the guest, re-enter it once an
 * invalidation is over, or exit.
 */
public enum AbortResult {
    /** Re-enter the guest, which retries the access (the fault mapped, relaxed, or raced another vCPU). */
    RESUME(null),
    /**
     * Nothing was mapped because an MMU-notifier invalidation ended since the fault read the
     * invalidation sequence (KVM's mmu_invalidate_retry): the host page may have changed under
     * GUP; fault again at once.
     */
    INVALIDATED(null),
    /**
     * Nothing was mapped because an invalidation covering the address is still in progress: the
     * vCPU waits for it to end ({@link Vm#awaitInvalidationEnd}) before faulting again.
     */
    INVALIDATING(null),
    /** Exit to the VMM: {@link VmExit#MMIO}. */
    EXIT_MMIO(VmExit.MMIO),
    /** Address-size fault into the guest: {@link VmExit#ADDRESS_SIZE}. */
    EXIT_ADDRESS_SIZE(VmExit.ADDRESS_SIZE),
    /** -EFAULT from KVM_RUN: {@link VmExit#EFAULT}. */
    EXIT_EFAULT(VmExit.EFAULT);

    private final VmExit exit;

    AbortResult(VmExit exit) {
        this.exit = exit;
    }

    /** The exit this result is, or null if the vCPU re-enters the guest. */
    public VmExit exit() {
        return exit;
    }

    /** Whether the fault mapped nothing because it lost to an MMU-notifier invalidation. */
    public boolean lostToInvalidation() {
        return this == INVALIDATED || this == INVALIDATING;
    }
}
