package dev.ptlab.bench;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.walk.Status;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Coalescing (seed 001): 1 GiB mapped in 4K pages is mapped again to a 2 MiB-aligned PA
 * ({@link Fixture#BLOCK_PA}), so map replaces each of the 512 level-3 tables by one 2 MiB block
 * and frees the old subtree. Reported per page of the GiB (262144).
 *
 * <ul>
 *   <li>{@code INSTALL_FIRST} (the default): break the table entry (range TLBI over its 2 MiB),
 *       install the block, then hand the old level-3 table to the default
 *       {@code FreeUnlinkedHook.IMMEDIATE}, which tears it down at once.</li>
 *   <li>{@code UNMAP_FIRST}: LOCKED, TLBI of the whole VMID, tear down, then install.</li>
 * </ul>
 *
 * <p>Before each invocation (untimed) the GiB is mapped in pages ({@link Fixture#mapAll}); the
 * tear-down checks 512 coalesced tables, 2 MiB blocks at both ends and that the 512 level-3
 * frames went back to memory, then unmaps.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@State(Scope.Thread)
public class CoalesceBench {
    @Param({"INSTALL_FIRST", "UNMAP_FIRST"})
    public CoalescePolicy policy;

    Fixture f;
    long coalescedBefore;

    @Setup(Level.Trial)
    public void trial() {
        f = new Fixture();
        f.table.setCoalescePolicy(policy);
    }

    @Setup(Level.Invocation)
    public void pages() {
        f.mapAll();
        coalescedBefore = f.table.counters().coalesced();
    }

    @TearDown(Level.Invocation)
    public void check() {
        long coalesced = f.table.counters().coalesced() - coalescedBefore;
        if (coalesced != Fixture.BLOCKS) {
            throw new IllegalStateException("coalesced " + coalesced + " tables, expected " + Fixture.BLOCKS);
        }
        f.checkLeafLevel(2);
        // Root, L1 and L2 tables, and the cache: every level-3 table was freed.
        long expected = 3 + f.cache.size();
        if (f.memory.framesInUse() != expected) {
            throw new IllegalStateException(f.memory.framesInUse() + " frames in use after coalescing, expected " + expected);
        }
        f.unmapAll(Fixture.BLOCKS);
    }

    @Benchmark
    @OperationsPerInvocation(Fixture.PAGES)
    public Status coalesce() {
        return f.table.map(Fixture.IPA, Fixture.SIZE, Fixture.BLOCK_PA, Prot.RW, f.cache);
    }
}
