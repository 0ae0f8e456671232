package dev.ptlab.mm;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.mem.PhysicalMemory;
import java.util.List;

/**
 * One host machine: the page allocator for data pages ({@link HostMemory}), the physical memory
 * page tables are built in, a swap device, and the address spaces living on it. Address spaces
 * of one host share pages (fork, shared memory), so the cross-space invariants (a folio's map
 * count equals the entries mapping it in every space) are checked here.
 */
public final class Host {
    /** Where data pages start in the host's physical address space. */
    public static final long MEMORY_BASE = 1L << 40;
    /** Where page-table frames of process page tables live. */
    public static final long TABLE_MEMORY_BASE = 0x7E00_0000_0000L;

    /**
     * @param memoryBytes data memory, rounded up to the largest folio size
     * @param vaBits process virtual-address size (48 is Linux's arm64 default)
     */
    public Host(Granule granule, long memoryBytes, int vaBits, boolean checking) {
        throw new UnsupportedOperationException("issue 7: in progress");
    }

    public Granule granule() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public HostMemory memory() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public PhysicalMemory tableMemory() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public boolean checking() { throw new UnsupportedOperationException("issue 7: in progress"); }
    /** Swap slots in use. */
    public long swapSlotsInUse() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public AddressSpace newAddressSpace() { throw new UnsupportedOperationException("issue 7: in progress"); }
    public List<AddressSpace> addressSpaces() { throw new UnsupportedOperationException("issue 7: in progress"); }

    /**
     * Quiescent check across every live address space: each one's own invariants, every folio's
     * map count equals the entries mapping it, its reference count is at least that (more only
     * while GUP references are held; exactly that with {@code noExtraRefs}), swap slot counts
     * equal the entries naming them.
     */
    public void checkInvariants(boolean noExtraRefs) { throw new UnsupportedOperationException("issue 7: in progress"); }
}
