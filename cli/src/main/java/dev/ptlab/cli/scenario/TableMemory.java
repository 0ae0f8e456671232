package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Failures;
import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Geometry;

/**
 * Checks a table line's table-memory window ({@code stage2}/{@code hyp} mem-base= and mem-size=,
 * {@code vm} mem-size=) while parsing, before anything is built: what the library would refuse
 * (a window outside the PA space, not granule-aligned, more than 2^31 frames, too small for the
 * root) and what the heap cannot hold, each as the line's own error with its own hint.
 */
final class TableMemory {
    private TableMemory() {}

    /**
     * Heap bytes per frame of the window that PhysicalMemory allocates up front, before any table
     * exists: a long[] reference (8 bytes without compressed oops), an int refcount, a byte state
     * and an int generation (8 + 4 + 1 + 4).
     */
    static final long HEAP_BYTES_PER_FRAME = 8 + 4 + 1 + 4;
    /** PhysicalMemory's limit on frames (array sizes below Integer.MAX_VALUE - 8). */
    static final long MAX_FRAMES = Integer.MAX_VALUE - 8;

    static void check(Line l, Geometry g, long base, long size) throws ScenarioException {
        String granule = g.granule().label();
        long page = g.granule().pageSize();
        long paLimit = 1L << g.paBits();
        String typed = "mem-size=" + Numbers.size(size);
        if (size == 0 || size % page != 0) {
            throw l.error("table memory " + typed + " is not a positive multiple of the " + granule + " granule",
                    "mem-size= a multiple of " + Numbers.size(page) + ", e.g. 256M");
        }
        if (base % page != 0) {
            throw l.error("table memory mem-base=" + Numbers.hex(base) + " is not aligned to the " + granule + " granule",
                    "mem-base= a multiple of " + Numbers.size(page));
        }
        if (base >= paLimit || size > paLimit - base) {
            throw l.error("table memory [" + Numbers.hex(base) + ", +" + Numbers.size(size) + ") is not inside the " + g.paBits()
                    + "-bit physical address space", "a window below " + Numbers.hex(paLimit) + " (a smaller mem-size=)");
        }
        long frames = size / page;
        if (frames > MAX_FRAMES) {
            throw l.error("table memory " + typed + " is " + frames + " frames of " + Numbers.size(page) + ", more than the "
                    + MAX_FRAMES + " a table memory can have", "mem-size= below " + Numbers.size((1L << 31) * page));
        }
        // The root's frames are allocated together, at a physical address aligned to their count.
        int roots = g.rootPages();
        long firstAligned = (roots - (base / page) % roots) % roots;
        if (firstAligned + roots > frames) {
            throw l.error("table memory " + typed + " holds " + frames + (frames == 1 ? " frame" : " frames") + " and the root table needs "
                    + roots + (roots == 1 ? " frame" : " aligned contiguous frames"), "mem-size= of at least "
                    + Numbers.size((firstAligned + roots) * page) + ", e.g. 256M");
        }
        long heap = frames * HEAP_BYTES_PER_FRAME;
        if (Failures.exceedsHeap(heap)) {
            throw new ScenarioException(Failures.outOfMemory(l.where(), "table memory " + typed + " needs "
                    + Numbers.bytes(heap) + " of it for frame bookkeeping (" + HEAP_BYTES_PER_FRAME + " bytes per "
                    + Numbers.size(page) + " frame)", heap));
        }
    }
}
