package dev.ptlab.mm;

import dev.ptlab.core.arch.Granule;

/** Shared set-up for mm tests: a 4K host in checking mode. */
final class MmFixture {
    static final int RW = Mman.PROT_READ | Mman.PROT_WRITE;
    static final int PRIVATE = Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS;
    static final int SHARED = Mman.MAP_SHARED | Mman.MAP_ANONYMOUS;
    static final long PAGE = 4096;
    static final long M2 = 2L << 20;
    static final long G1 = 1L << 30;

    private MmFixture() {}

    /** A 4K host with {@code gib} GiB of data memory, checking mode on. */
    static Host host(int gib) {
        return new Host(Granule.G4K, (long) gib << 30, 48, true);
    }

    /** Every folio, slot and table frame is back: only the live spaces' roots remain. */
    static void assertAllReturned(Host host) {
        host.checkInvariants(true);
        if (host.memory().pagesInUse() != 0) throw new AssertionError(host.memory().pagesInUse() + " pages still in use");
        if (host.swapSlotsInUse() != 0) throw new AssertionError(host.swapSlotsInUse() + " swap slots still in use");
        long roots = host.addressSpaces().size();
        if (host.tableMemory().framesInUse() != roots) {
            throw new AssertionError(host.tableMemory().framesInUse() + " table frames in use, expected the " + roots + " roots");
        }
    }
}
