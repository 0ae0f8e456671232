package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.MmException;

/**
 * A workload's one memslot and what backs it, as {@link VmConfig#hostMemory()} says: a fixed
 * host-physical range at {@link #HOST_BASE}, or a host process (a {@link Host} of
 * the VM's granule with the guest's memory plus some slack, and one address space with the guest
 * memory mmapped anonymous, MAP_SHARED for shmem and shared_hugetlb (ptlab's host has no memfd:
 * a shared anonymous mapping stands for it), else MAP_PRIVATE: THP backing adds MADV_HUGEPAGE,
 * hugetlb backing uses MAP_HUGETLB pages of the backing's size, or, for a contiguous size the host
 * mm does not hold, of the stage-2 mapping size it maps with (32M as 2M pages, 64K as base
 * pages: stage-2 sees the same, only the host's own fault counts differ). {@link #close()} ends the process after the VM
 * is destroyed, so every host page and page-table frame can be counted back.
 */
final class GuestMemory implements AutoCloseable {
    /** Process page tables walk a 48-bit virtual address space, Linux's arm64 default. */
    static final int VA_BITS = 48;
    /** Where the slot's host memory starts with fixed host memory (aligned for every backing). */
    static final long HOST_BASE = 1L << 40;

    final Memslot slot;
    /** Null with fixed host memory. */
    final Host host;
    final AddressSpace mm;

    private GuestMemory(Memslot slot, Host host, AddressSpace mm) {
        this.slot = slot;
        this.host = host;
        this.mm = mm;
    }

    /**
     * Adds the slot {@code [gpa, gpa + size)} to {@code vm}.
     *
     * @throws IllegalArgumentException naming the backing if the host mm cannot provide it
     */
    static GuestMemory add(Vm vm, long gpa, long size, Backing backing) {
        VmConfig c = vm.config();
        if (c.hostMemory() == HostMemoryModel.FIXED) {
            return new GuestMemory(vm.addMemslot(gpa, size, backing, HOST_BASE, false), null, null);
        }
        Granule g = c.granule();
        backing.check(g);
        // What the host mm can hold: hugetlb pages of a block size (a contiguous hugetlb size is
        // held as pages of the stage-2 mapping size it maps with; see Backing#mappingSize).
        long unit = backing.hugetlb() ? backing.mappingSize(g) : backing.size(g);
        // Slack for what the host itself may hold beyond the guest's pages (a COW copy, a THP
        // that cannot be split in place); the Host rounds up to its largest folio anyway.
        Host host = new Host(g, size + Math.max(unit, size / 16), VA_BITS, c.checking());
        AddressSpace mm = host.newAddressSpace();
        boolean added = false;
        try {
            int flags = (backing.shared() ? Mman.MAP_SHARED : Mman.MAP_PRIVATE) | Mman.MAP_ANONYMOUS;
            if (backing.hugetlb() && unit > g.pageSize()) flags |= Mman.MAP_HUGETLB | Long.numberOfTrailingZeros(unit) << Mman.MAP_HUGE_SHIFT;
            long hva;
            try {
                hva = mm.mmap(0, size, Mman.PROT_READ | Mman.PROT_WRITE, flags);
                if (backing.kind() == Backing.Kind.THP) mm.madvise(hva, size, Mman.MADV_HUGEPAGE);
            } catch (MmException e) {
                throw new IllegalArgumentException("backing: " + backing + " (" + Sizes.format(unit) + " host pages with the "
                        + g.label() + " granule) is not available from the host mm (" + e.getMessage()
                        + "); host memory fixed does not need it");
            }
            GuestMemory m = new GuestMemory(vm.addMemslot(gpa, size, mm, hva, false), host, mm);
            added = true;
            return m;
        } finally {
            if (!added) mm.close();
        }
    }

    /** Ends the host process (after the VM is destroyed); nothing with fixed memory. */
    @Override
    public void close() {
        if (mm != null && !mm.closed()) mm.close();
    }

    /** Host data pages still allocated (0 with fixed memory). */
    long hostPagesInUse() {
        return host == null ? 0 : host.memory().pagesInUse();
    }

    /** Host page-table frames still allocated (0 with fixed memory). */
    long hostTableFramesInUse() {
        return host == null ? 0 : host.tableMemory().framesInUse();
    }
}
