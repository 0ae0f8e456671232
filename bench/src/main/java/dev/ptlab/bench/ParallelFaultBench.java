package dev.ptlab.bench;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;

/**
 * Throughput of stage-2 faults by one and two vCPU threads on one table (issue 4): each
 * benchmark operation is one fault, i.e. one {@code map} call with the fault path's flags. The
 * 1- and 2-thread figures come from separate methods ({@code ...1} with {@code @Threads(1)},
 * {@code ...2} with {@code @Threads(2)}) of the same run; with two threads JMH reports the sum
 * of both threads' faults per second.
 *
 * <p>The table is a 48-bit IPA, 4K-granule stage-2 table (four levels) with FWB and range TLBI,
 * checking mode off, as in {@link Fixture}. {@code protocol}:
 * <ul>
 *   <li>{@code SHARED}: the faults are {@code SHARED | HANDLE_FAULT} walks (read side of the MMU
 *       lock, compare-and-swap updates, reclaimer read section): the protocol since Linux 6.2.</li>
 *   <li>{@code WRITE_LOCK}: the same faults with {@code HANDLE_FAULT} only, i.e. exclusive walks
 *       under the write lock, one fault at a time (the pre-6.2 kernel).</li>
 * </ul>
 *
 * <p>{@code distinct1}/{@code distinct2}: each thread owns a region of {@link #REGION_PAGES}
 * pages in its own 512 GiB of IPA space (its own level-0 entry, so its own L1, L2 and L3
 * tables) and faults on the next page of it: {@code map(page, 4K, pa, RW, cache, flags)} from
 * its own {@link MemCache}, topped up to {@link #CACHE_MIN} frames before every fault as KVM
 * does. Every fault installs one leaf (one new L3 table every 512 faults). When its region is
 * exhausted the thread unmaps the whole region (write lock; every table of the region is freed
 * and refaulted later): one reset per 65536 faults (0.0015% of the operations). The trial
 * tear-down prints the share of the threads' time spent in resets (about 1-2%, JIT warm-up
 * included; the other thread waits for the write lock meanwhile).
 *
 * <p>{@code block1}/{@code block2}: every thread faults on the same 2 MiB block, mapped as a
 * block before the measurement: {@code map(blockIpa, 2M, blockPa, RW, cache, flags)}, which
 * finds the identical block and returns RACED. This is the steady state of many vCPUs touching
 * one huge page: the first fault installs the block (the cost measured by the distinct-page
 * benchmark, bar the leaf level), every later one is a losing fault (the vCPU retries and then
 * hits the TLB). It measures what a losing fault costs and whether losing faults scale: they
 * write no table entry and no refcount, so under the read lock they should.
 *
 * <p>Checks (trial tear-down): every distinct-page fault returned OK and every block fault
 * RACED (checked per call), the table's counters show exactly the leaves and races the threads
 * counted, the trial's tables are consistent ({@code checkRefcounts}), and after
 * {@code destroy} and releasing each thread's cache no frame is left in use.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
public class ParallelFaultBench {
    public enum Protocol { SHARED, WRITE_LOCK }

    static final long PAGE = 4096;
    /** Pages a thread faults in before it unmaps its region and starts over (256 MiB, 128 level-3 tables). */
    static final int REGION_PAGES = 65536;
    static final long REGION_SIZE = REGION_PAGES * PAGE;
    /** Frames each thread's cache holds before a fault: one per level a fault may have to add below the root. */
    static final int CACHE_MIN = 3;
    static final long BLOCK = 2L << 20;
    /** The shared 2 MiB block: IPA and PA both 2 MiB-aligned (and in their own level-0 entry). */
    static final long BLOCK_IPA = 0x0000_7F00_0000_0000L;
    static final long BLOCK_PA = 0x0000_0060_0000_0000L;

    @Param({"SHARED", "WRITE_LOCK"})
    public Protocol protocol;

    PhysicalMemory memory;
    TlbSystem tlbs;
    Stage2PageTable table;
    MemCache setupCache;
    int flags;
    final AtomicInteger nextId = new AtomicInteger();
    final ConcurrentLinkedQueue<Vcpu> vcpus = new ConcurrentLinkedQueue<>();
    long trialStart;

    @Setup(Level.Trial)
    public void trial() {
        trialStart = System.nanoTime();
        memory = new PhysicalMemory(0x1_0000_0000L, 16L << 20, Granule.G4K, false);
        tlbs = new TlbSystem();
        tlbs.register(new Tlb("cpu0", Granule.G4K));
        tlbs.register(new Tlb("cpu1", Granule.G4K));
        table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 48), memory, tlbs, Fixture.VMID,
                Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI);
        flags = protocol == Protocol.SHARED ? WalkFlags.SHARED | WalkFlags.HANDLE_FAULT : WalkFlags.HANDLE_FAULT;
        // The shared block, mapped once (as a first fault would): every measured block fault loses.
        setupCache = new MemCache(memory);
        setupCache.topUp(CACHE_MIN);
        Status s = table.map(BLOCK_IPA, BLOCK, BLOCK_PA, Prot.RW, setupCache, flags);
        Leaf l = table.getLeaf(BLOCK_IPA);
        if (s != Status.OK || l.level() != 2 || !l.valid()) {
            throw new IllegalStateException("block map: " + s + ", leaf " + l);
        }
    }

    @TearDown(Level.Trial)
    public void finish() {
        long faults = 0, raced = 0, leaves = 0, resets = 0, resetNanos = 0;
        for (Vcpu v : vcpus) {
            faults += v.faults;
            raced += v.raced;
            leaves += v.leaves;
            resets += v.resets;
            resetNanos += v.resetNanos;
        }
        if (resets > 0) {
            // Share of the threads' time (warm-up included) spent unmapping their regions.
            double threadNanos = (double) vcpus.size() * (System.nanoTime() - trialStart);
            System.out.printf("%n%d faults, %d region resets (one per %d faults), %.2f%% of the threads' time in resets%n",
                    faults, resets, REGION_PAGES, 100.0 * resetNanos / threadNanos);
        }
        // The setup's block map is the one leaf no thread counted.
        long tableLeaves = table.counters().leavesInstalled() - 1;
        if (tableLeaves != leaves || table.counters().raced() != raced) {
            throw new IllegalStateException("threads counted " + leaves + " leaves and " + raced + " races in "
                    + faults + " faults; the table counted " + tableLeaves + " and " + table.counters().raced());
        }
        if (faults != leaves + raced) {
            throw new IllegalStateException(faults + " faults, " + leaves + " leaves, " + raced + " races");
        }
        table.checkRefcounts();
        table.destroy();
        setupCache.release();
        for (Vcpu v : vcpus) v.cache.release();
        if (memory.framesInUse() != 0) {
            throw new IllegalStateException(memory.framesInUse() + " frames in use after destroy");
        }
    }

    /** One vCPU thread: its own memory cache and its own region of IPA space. */
    @State(Scope.Thread)
    public static class Vcpu {
        MemCache cache;
        long regionIpa;
        long regionPa;
        int next;
        long faults, leaves, raced, resets;
        /** Time spent in resets (unmapping the region), to report their share. */
        long resetNanos;

        @Setup(Level.Trial)
        public void trial(ParallelFaultBench b) {
            int id = b.nextId.getAndIncrement();
            cache = new MemCache(b.memory);
            // Level-0 entries 1, 2, ...: 512 GiB apart, so no table below the root is shared.
            regionIpa = (id + 1L) << 39;
            regionPa = (id + 1L) << 36;
            b.vcpus.add(this);
        }
    }

    /** One fault on the next page of the thread's region; unmaps the region once it is full. */
    Status distinct(Vcpu v) {
        v.cache.topUp(CACHE_MIN);
        long off = (long) v.next * PAGE;
        Status s = table.map(v.regionIpa + off, PAGE, v.regionPa + off, Prot.RW, v.cache, flags);
        if (s != Status.OK) throw new IllegalStateException("fault at 0x" + Long.toHexString(v.regionIpa + off) + ": " + s);
        v.faults++;
        v.leaves++;
        if (++v.next == REGION_PAGES) {
            long t0 = System.nanoTime();
            table.unmap(v.regionIpa, REGION_SIZE);
            v.resetNanos += System.nanoTime() - t0;
            v.next = 0;
            v.resets++;
        }
        return s;
    }

    /** One losing fault on the shared, already mapped 2 MiB block. */
    Status block(Vcpu v) {
        v.cache.topUp(CACHE_MIN);
        Status s = table.map(BLOCK_IPA, BLOCK, BLOCK_PA, Prot.RW, v.cache, flags);
        if (s != Status.RACED) throw new IllegalStateException("fault on the mapped block: " + s + ", expected RACED");
        v.faults++;
        v.raced++;
        return s;
    }

    @Benchmark
    @Threads(1)
    public Status distinct1(Vcpu v) {
        return distinct(v);
    }

    @Benchmark
    @Threads(2)
    public Status distinct2(Vcpu v) {
        return distinct(v);
    }

    @Benchmark
    @Threads(1)
    public Status block1(Vcpu v) {
        return block(v);
    }

    @Benchmark
    @Threads(2)
    public Status block2(Vcpu v) {
        return block(v);
    }
}
