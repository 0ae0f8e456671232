package dev.ptlab.core;

/** The kernel errno a ptlab error corresponds to, for people comparing behaviour with KVM. */
public enum Errno {
    EPERM(1), ENOMEM(12), EEXIST(17), EINVAL(22), ERANGE(34), EAGAIN(11), E2BIG(7), EFAULT(14), EBUSY(16),
    EOPNOTSUPP(95);

    private final int value;

    Errno(int value) {
        this.value = value;
    }

    /** The negative value the kernel function would have returned, e.g. -12 for ENOMEM. */
    public int kernelReturn() {
        return -value;
    }
}
