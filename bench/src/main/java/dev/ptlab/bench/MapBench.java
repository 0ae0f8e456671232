package dev.ptlab.bench;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.walk.Status;
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
 * Stage-2 map and unmap of 1 GiB in 4K pages (262144 leaves plus 514 tables), reported per page.
 * Each invocation is one {@code map} or one {@code unmap} call: one exclusive walk.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class MapBench {

    /** An empty table (every table below the root freed) and a memory cache holding enough frames. */
    @State(Scope.Thread)
    public static class Empty {
        Fixture f;
        long leavesBefore;

        @Setup(Level.Trial)
        public void trial() {
            f = new Fixture();
            // Check the shape once: the walk installs 262144 page leaves.
            f.mapAll();
            f.unmapAll();
        }

        @Setup(Level.Invocation)
        public void invocation() {
            f.cache.topUp(Fixture.TABLES + 8);
            leavesBefore = f.table.counters().leavesInstalled();
        }

        @TearDown(Level.Invocation)
        public void after() {
            f.checkMapped(leavesBefore);
            f.unmapAll();
        }
    }

    /** The whole GiB mapped in pages. */
    @State(Scope.Thread)
    public static class Mapped {
        Fixture f;
        long leavesBefore;

        @Setup(Level.Trial)
        public void trial() {
            f = new Fixture();
        }

        @Setup(Level.Invocation)
        public void invocation() {
            f.mapAll();
            leavesBefore = f.table.counters().leavesRemoved();
        }

        @TearDown(Level.Invocation)
        public void after() {
            f.checkUnmapped(leavesBefore);
        }
    }

    @Benchmark
    @OperationsPerInvocation(Fixture.PAGES)
    public Status map(Empty s) {
        return s.f.table.map(Fixture.IPA, Fixture.SIZE, Fixture.PA, Prot.RW, s.f.cache);
    }

    @Benchmark
    @OperationsPerInvocation(Fixture.PAGES)
    public void unmap(Mapped s) {
        s.f.table.unmap(Fixture.IPA, Fixture.SIZE);
    }
}
