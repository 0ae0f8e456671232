package dev.ptlab.bench;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import java.lang.management.ManagementFactory;

/**
 * Heap cost of table frames (not a JMH benchmark): builds the benchmark table (1 GiB of 4K pages
 * under a 48-bit, 4-level stage-2 root) and compares the heap it took with the raw bytes of its
 * frames (frames in use x 4096). Heap is measured as the bytes this thread allocated (exact, from
 * the JVM's per-thread allocation counter), so it includes every array, the per-frame metadata of
 * the simulated memory and any garbage the walk produced. Also reports what {@code map} itself
 * allocates with the memory cache already filled (the hot path should allocate nothing per page).
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar dev.ptlab.bench.TableMemory}. Exits with
 * status 1 if the ratio is above 1.1.
 */
public final class TableMemory {
    private TableMemory() {}

    public static void main(String[] args) {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        if (!threads.isThreadAllocatedMemorySupported()) throw new IllegalStateException("no per-thread allocation counter");
        // Warm up (class initialisation, JIT) so neither is charged to the table.
        for (int i = 0; i < 5; i++) build(threads, 8L << 20);
        Result r = build(threads, 4L << 20);
        double ratio = (double) r.allocated / r.raw;
        System.out.printf("simulated memory:              %d frames of 4 KiB (%d KiB), checking off%n", r.frameCount, r.frameCount * 4);
        System.out.printf("frames in use:                 %d (root + 514 tables + %d left in the memory cache)%n", r.inUse, r.cacheLeft);
        System.out.printf("raw frame bytes:               %d%n", r.raw);
        System.out.printf("heap allocated (all of it):    %d  -> %.4fx raw%n", r.allocated, ratio);
        System.out.printf("PhysicalMemory.tableHeapBytes: %d  -> %.4fx raw%n", r.tableHeap, (double) r.tableHeap / r.raw);
        System.out.printf("map of %d pages allocated:  %d bytes (%.4f per page)%n", Fixture.PAGES, r.mapAllocated,
                (double) r.mapAllocated / Fixture.PAGES);
        System.out.printf("unmap of %d pages allocated: %d bytes (%.4f per page: free-frame stack growth and a TLBI iterator per freed table, nothing per page)%n",
                Fixture.PAGES, r.unmapAllocated, (double) r.unmapAllocated / Fixture.PAGES);
        if (ratio > 1.1) {
            System.out.println("FAIL: table heap is more than 1.1x the raw frame bytes");
            System.exit(1);
        }
        System.out.println("OK: table heap is within 1.1x of the raw frame bytes");
    }

    private record Result(int frameCount, long inUse, int cacheLeft, long raw, long allocated, long tableHeap,
                          long mapAllocated, long unmapAllocated) {}

    private static Result build(com.sun.management.ThreadMXBean threads, long memSize) {
        long t0 = threads.getCurrentThreadAllocatedBytes();
        PhysicalMemory memory = new PhysicalMemory(0x1_0000_0000L, memSize, Granule.G4K, false);
        Stage2PageTable table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 48), memory, new TlbSystem(), Fixture.VMID,
                Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI);
        MemCache cache = new MemCache(memory);
        cache.topUp(Fixture.TABLES);
        long t1 = threads.getCurrentThreadAllocatedBytes();
        table.map(Fixture.IPA, Fixture.SIZE, Fixture.PA, Prot.RW, cache);
        long t2 = threads.getCurrentThreadAllocatedBytes();
        if (table.counters().leavesInstalled() != Fixture.PAGES) throw new IllegalStateException("wrong leaf count");
        long inUse = memory.framesInUse();
        long raw = inUse * Granule.G4K.pageSize();
        long tableHeap = memory.tableHeapBytes();
        long t3 = threads.getCurrentThreadAllocatedBytes();
        table.unmap(Fixture.IPA, Fixture.SIZE);
        long t4 = threads.getCurrentThreadAllocatedBytes();
        return new Result(memory.frameCount(), inUse, cache.size(), raw, t2 - t0, tableHeap, t2 - t1, t4 - t3);
    }
}
