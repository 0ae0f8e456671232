package dev.ptlab.mm;

import dev.ptlab.core.Errno;

/**
 * A host-mm operation failed the way the kernel's would: {@link #errno()} is what the syscall or
 * kernel function returns (ENOMEM for a fork that cannot lock a device-exclusive folio, EFAULT for
 * GUP on an unmapped or forbidden address, EOPNOTSUPP for device-exclusive on hugetlb or shared
 * memory, ...). Nothing was changed unless the message says otherwise.
 */
public final class MmException extends RuntimeException {
    private final Errno errno;
    private final long addr;

    public MmException(Errno errno, long addr, String message) {
        super(errno + " at 0x" + Long.toHexString(addr) + ": " + message);
        this.errno = errno;
        this.addr = addr;
    }

    public Errno errno() { return errno; }
    public long addr() { return addr; }
}
