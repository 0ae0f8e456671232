package dev.ptlab.mm;

/**
 * A virtual memory area: {@code [start, end)} with one protection and one kind of backing.
 * Immutable; operations that change an area (mprotect, partial munmap, madvise) replace it by
 * new ones (split at the boundaries), as the kernel splits vm_area_structs.
 *
 * <p>Anonymous private areas hold anonymous folios (COW after fork). Shared areas
 * ({@code MAP_SHARED|MAP_ANONYMOUS}) are backed by a {@link SharedMemory} object (shmem): their
 * folios are not anonymous, survive fork without COW, and cannot become device-exclusive.
 * Hugetlb areas map pages of {@link #hugePageSize()} only, at block level, never split.
 */
public final class Vma {
    private final long start;
    private final long end;
    private final int prot;
    private final boolean shared;
    private final long hugePageSize;
    private final boolean thp;
    private final SharedMemory shmem;
    private final long shmemOffset;

    Vma(long start, long end, int prot, boolean shared, long hugePageSize, boolean thp, SharedMemory shmem, long shmemOffset) {
        this.start = start;
        this.end = end;
        this.prot = prot;
        this.shared = shared;
        this.hugePageSize = hugePageSize;
        this.thp = thp;
        this.shmem = shmem;
        this.shmemOffset = shmemOffset;
    }

    public long start() { return start; }
    public long end() { return end; }
    public long length() { return end - start; }
    /** {@link Mman#PROT_READ} | {@link Mman#PROT_WRITE} | {@link Mman#PROT_EXEC}. */
    public int prot() { return prot; }
    public boolean readable() { return (prot & Mman.PROT_READ) != 0; }
    public boolean writable() { return (prot & Mman.PROT_WRITE) != 0; }
    public boolean executable() { return (prot & Mman.PROT_EXEC) != 0; }
    public boolean shared() { return shared; }
    /** Private anonymous memory (the only kind that can hold device-exclusive entries). */
    public boolean anonymous() { return !shared && hugePageSize == 0; }
    public boolean hugetlb() { return hugePageSize != 0; }
    /** The hugetlb page size, 0 if not hugetlb. */
    public long hugePageSize() { return hugePageSize; }
    /** MADV_HUGEPAGE: anonymous faults may allocate a PMD-sized THP. */
    public boolean thp() { return thp; }
    public SharedMemory sharedMemory() { return shmem; }
    /** Offset into {@link #sharedMemory()} of {@link #start()}. */
    public long sharedOffset() { return shmemOffset; }
    public boolean contains(long addr) { return addr >= start && addr < end; }

    /** A copy covering {@code [s, e)} (inside this area) with protection {@code p}. */
    Vma slice(long s, long e, int p) {
        return new Vma(s, e, p, shared, hugePageSize, thp, shmem, shmemOffset + (s - start));
    }

    Vma withThp(boolean on) {
        return new Vma(start, end, prot, shared, hugePageSize, on, shmem, shmemOffset);
    }

    @Override
    public String toString() {
        return String.format("[0x%x, 0x%x) %s %s%s%s", start, end, Mman.protString(prot), shared ? "shared" : "private",
                hugePageSize != 0 ? " hugetlb " + (hugePageSize >> 20) + "M" : "", thp ? " thp" : "");
    }
}
