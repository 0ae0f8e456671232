package dev.ptlab.mm;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.mm.notify.MmuNotifiers;
import java.util.List;

/**
 * A host process's address space (the kernel's mm_struct): VMAs, an mmap lock, a process page
 * table in the arm64 stage-1 format walked by ptlab's walker, and the MMU-notifier hub through
 * which secondary MMUs (a VM's stage-2, a device) stay coherent with it.
 *
 * <p>Locking (outermost first): the mmap lock ({@link #mmapLock()}; read for faults, GUP,
 * device-exclusive conversion, reclaim and aging; write for mmap, munmap, mprotect, madvise and
 * fork), then a folio lock, then the page-table lock (PTL; one per address space, where Linux
 * splits it per table page). Every public method takes the locks it needs itself: callers hold
 * none of them. Notifier callbacks run with the mmap lock held but never the PTL.
 *
 * <p>Sleeping on a folio lock while holding the mmap lock could deadlock against a driver that
 * holds the folio lock and waits for the mmap lock behind a writer, so a fault that would sleep
 * on a folio lock gives up the mmap lock first, waits, and returns {@link FaultResult#RETRY}
 * (the kernel's VM_FAULT_RETRY); {@link #access} and {@link #getUserPage} retry themselves.
 */
public final class AddressSpace implements AutoCloseable {

    AddressSpace(Host host) {
        throw new UnsupportedOperationException("issue 7: in progress");
    }

    public Host host() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public Geometry geometry() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public MmuNotifiers notifiers() { throw new UnsupportedOperationException("issue 7: in progress"); }
    /** The mmap lock, for tests and for callers that must order against mm operations (callers of this class's methods must not hold it). */
    public MmuLock mmapLock() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public MmStats stats() { throw new UnsupportedOperationException("issue 7: in progress"); }

    // ---- VMAs ----

    /**
     * Maps {@code length} bytes of anonymous memory (always {@code MAP_ANONYMOUS}): private or
     * shared, optionally hugetlb ({@code MAP_HUGETLB | MAP_HUGE_2MB/1GB}). {@code addr} 0 picks a
     * free range (aligned to the largest block size that fits, so THP and hugetlb can be used);
     * with {@code MAP_FIXED} existing mappings there are unmapped first.
     *
     * @return the start address
     * @throws MmException EINVAL (bad length, flags or alignment), ENOMEM (no free range)
     */
    public long mmap(long addr, long length, int prot, int flags) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /** Unmaps {@code [addr, addr + length)}: UNMAP notifier, zap, free the page tables left empty. */
    public void munmap(long addr, long length) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /** Changes protection (PROTECTION_VMA notifier; entries lose write/exec as the new protection requires). */
    public void mprotect(long addr, long length, int prot) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /** MADV_DONTNEED (zap, CLEAR notifier), MADV_HUGEPAGE / MADV_NOHUGEPAGE, MADV_PAGEOUT (reclaim each page). */
    public void madvise(long addr, long length, int advice) { throw new UnsupportedOperationException("issue 7: in progress"); }

    public List<Vma> vmas() { throw new UnsupportedOperationException("issue 7: in progress"); }
    /** The VMA containing {@code addr}, or null. */
    public Vma findVma(long addr) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /**
     * Copies this address space (fork): private writable areas become COW on both sides (a
     * PROTECTION_PAGE notifier over each first), shared areas are shared, device-exclusive entries
     * are restored first.
     *
     * @throws MmException ENOMEM if a device-exclusive folio's lock cannot be taken (a driver holds
     *         it); then nothing is changed and no child exists
     */
    public AddressSpace fork() { throw new UnsupportedOperationException("issue 7: in progress"); }

    // ---- CPU side ----

    /** Handles one CPU fault at {@code addr} (the arch fault handler + handle_mm_fault). */
    public FaultResult handleFault(long addr, Access access) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /**
     * A CPU access: faults (retrying RETRY) until the entry allows it, marks it young (and dirty
     * for a write) as the hardware would, and returns the physical address.
     *
     * @throws SegmentationFault if a fault ends in SIGSEGV
     * @throws MmException ENOMEM on OOM
     */
    public long access(long addr, Access access) { throw new UnsupportedOperationException("issue 7: in progress"); }

    public int readInt(long addr) { throw new UnsupportedOperationException("issue 7: in progress"); }
    public void writeInt(long addr, int value) { throw new UnsupportedOperationException("issue 7: in progress"); }
    public long readLong(long addr) { throw new UnsupportedOperationException("issue 7: in progress"); }
    public void writeLong(long addr, long value) { throw new UnsupportedOperationException("issue 7: in progress"); }

    // ---- kernel-internal users ----

    /**
     * get_user_pages for one page: faults it in (unless FOLL_NOFAULT), breaking COW for
     * FOLL_WRITE, splitting a PMD-mapped THP for FOLL_SPLIT_PMD, and returns it in {@code out}
     * with a reference the caller must put.
     *
     * @throws MmException EFAULT (no VMA, access not allowed, or FOLL_NOFAULT and not mapped),
     *         ENOMEM, EOPNOTSUPP (FOLL_SPLIT_PMD on hugetlb)
     */
    public void getUserPage(long addr, int gupFlags, GupResult out) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /**
     * make_device_exclusive (6.15): converts the page at {@code addr} to a device-exclusive
     * entry and returns its folio locked, with a reference; the caller unlocks and puts it.
     * EXCLUSIVE notifier with {@code owner} over the page.
     *
     * @throws MmException EOPNOTSUPP (hugetlb or not anonymous), EFAULT (no VMA or not writable)
     */
    public Folio makeDeviceExclusive(long addr, Object owner) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /**
     * Reclaims the page at {@code addr} to swap (try_to_unmap + pageout): a present or
     * device-exclusive entry of an unlocked, unpinned, anonymous order-0 folio becomes a swap
     * entry after a CLEAR notifier. Returns false (changing nothing) if the page cannot be
     * reclaimed now.
     */
    public boolean reclaimPage(long addr) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /**
     * Ages {@code [addr, addr + length)}: clears the young bit of present entries and asks the
     * notifiers to clear-and-flush theirs; returns how many pages were young in either.
     */
    public long age(long addr, long length) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /** The leaf entry mapping {@code addr} (0 if none): present, swap or device-exclusive. */
    public long pte(long addr) { throw new UnsupportedOperationException("issue 7: in progress"); }

    /** Resident pages (present or device-exclusive entries, counted in pages). */
    public long rss() { throw new UnsupportedOperationException("issue 7: in progress"); }

    /**
     * Checks this space's own invariants: table refcounts exact, every present or
     * device-exclusive entry names a live folio whose flags match its VMA, no entry outside a
     * VMA. {@link Host#checkInvariants()} adds the cross-space counts.
     *
     * @throws dev.ptlab.core.InvariantViolation on the first violation
     */
    public void checkInvariants() { throw new UnsupportedOperationException("issue 7: in progress"); }

    /** exit_mmap: RELEASE notifier, unmaps everything, frees every table frame (the root too). */
    @Override
    public void close() { throw new UnsupportedOperationException("issue 7: in progress"); }

    public boolean closed() { throw new UnsupportedOperationException("issue 7: in progress"); }
}
