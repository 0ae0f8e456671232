package dev.ptlab.sim;

/**
 * Why a guest access did not complete in the guest: what {@link Vcpu#access} reports instead of
 * a host PA (each as a negative code, so the hot path returns a plain long) and what
 * {@link VcpuStats#exits(VmExit)} counts.
 */
public enum VmExit {
    /** The access left the guest for the VMM: no memslot, or a write to a read-only slot (KVM_EXIT_MMIO). */
    MMIO(Vcpu.EXIT_MMIO, "mmio exit"),
    /** The IPA is beyond the VM's size: the guest gets an address-size fault. */
    ADDRESS_SIZE(Vcpu.EXIT_ADDRESS_SIZE, "address-size error"),
    /**
     * The host could not provide the page of an address-space memslot (GUP failed with EFAULT:
     * the range was unmapped, or a write to a read-only VMA): -EFAULT from KVM_RUN.
     */
    EFAULT(Vcpu.EXIT_EFAULT, "efault exit");

    private final long code;
    private final String label;

    VmExit(long code, String label) {
        this.code = code;
        this.label = label;
    }

    /** The value {@link Vcpu#access} returns for this exit (negative: never a PA). */
    public long code() {
        return code;
    }

    /** The exit {@code accessResult} (a {@link Vcpu#access} result) stands for, or null for a host PA. */
    public static VmExit of(long accessResult) {
        for (VmExit e : values()) if (e.code == accessResult) return e;
        return null;
    }

    @Override
    public String toString() {
        return label;
    }
}
