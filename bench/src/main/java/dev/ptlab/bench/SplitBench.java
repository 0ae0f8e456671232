package dev.ptlab.bench;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Eager {@code split} (dirty logging's eager page splitting) of 1 GiB mapped as 512 level-2
 * blocks, reported per resulting page (262144): one exclusive walk that builds a level-3 table
 * off-table for each block, swaps it in with break-before-make (TLBI by IPA) and walks on
 * through the new pages.
 *
 * <p>Before each invocation (untimed): the GiB is unmapped and mapped again as 2 MiB blocks to
 * {@link Fixture#BLOCK_PA}, and the memory cache is topped up with enough frames for a full
 * split of every block (one level-3 table each, 512, plus a few). The tear-down checks that
 * 512 blocks were split and that both ends are pages with the block's PA.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@State(Scope.Thread)
public class SplitBench {
    Fixture f;
    long splitsBefore;

    @Setup(Level.Trial)
    public void trial() {
        f = new Fixture();
        int need = f.table.framesForFullSplit(2);
        if (need != 1) throw new IllegalStateException("a 2 MiB block needs " + need + " frames to split, expected 1");
    }

    @Setup(Level.Invocation)
    public void blocks() {
        f.mapBlocks();
        f.cache.topUp(Fixture.BLOCKS + 8);
        splitsBefore = f.table.counters().splits();
    }

    @TearDown(Level.Invocation)
    public void check() {
        long splits = f.table.counters().splits() - splitsBefore;
        if (splits != Fixture.BLOCKS) throw new IllegalStateException("split " + splits + " blocks, expected " + Fixture.BLOCKS);
        f.checkLeafLevel(3);
        f.unmapAll();
    }

    @Benchmark
    @OperationsPerInvocation(Fixture.PAGES)
    public void split() {
        f.table.split(Fixture.IPA, Fixture.SIZE, f.cache);
    }
}
