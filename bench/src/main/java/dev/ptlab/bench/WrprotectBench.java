package dev.ptlab.bench;

import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.core.walk.LeafRunVisitor;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
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
 * Stage-2 {@code wrprotect} (dirty logging's write-protect pass) of the 1 GiB of 4K pages of
 * {@link Fixture}, reported per page: one exclusive walk clearing S2AP_W in 262144 leaves. No
 * TLBI is part of it (the caller flushes once afterwards).
 *
 * <p>Before each invocation (untimed) write permission is given back to every page by one walk
 * ({@link #RESTORE_W}), so each measured call really changes every entry; the tear-down checks
 * that it did ({@code attrUpdates}, and W clear at both ends).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@State(Scope.Thread)
public class WrprotectBench {
    /** Sets S2AP_W in every valid leaf: the relax half of a dirty-logging round, as one walk. */
    static final LeafRunVisitor RESTORE_W = new LeafRunVisitor() {
        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            long old = ctx.old();
            if (Pte.isValid(old)) ctx.trySet(old | Stage2Descriptor.S2AP_W);
            return Status.OK;
        }

        @Override
        public void visitLeafRun(VisitContext ctx) {
            do {
                if (!Pte.isValid(ctx.old()) || ctx.updateRun(Stage2Descriptor.S2AP_W, 0) == 0) return;
            } while (ctx.nextInRun());
        }
    };

    Fixture f;
    long updatesBefore;

    @Setup(Level.Trial)
    public void trial() {
        f = new Fixture();
        f.mapAll();
    }

    @Setup(Level.Invocation)
    public void restoreWrite() {
        f.table.walk(Fixture.IPA, Fixture.SIZE, RESTORE_W, WalkFlags.LEAF, WalkPolicy.RANGE);
        updatesBefore = f.table.counters().attrUpdates();
    }

    @TearDown(Level.Invocation)
    public void check() {
        long updates = f.table.counters().attrUpdates() - updatesBefore;
        if (updates != Fixture.PAGES) {
            throw new IllegalStateException("wrprotect updated " + updates + " leaves, expected " + Fixture.PAGES);
        }
        Leaf first = f.table.getLeaf(Fixture.IPA);
        Leaf last = f.table.getLeaf(Fixture.IPA + Fixture.SIZE - 1);
        if (!writeProtectedPage(first) || !writeProtectedPage(last)) {
            throw new IllegalStateException("expected write-protected pages at both ends, got " + first + " and " + last);
        }
    }

    static boolean writeProtectedPage(Leaf l) {
        return l.valid() && l.level() == 3 && (l.pte() & Stage2Descriptor.S2AP_W) == 0
                && (l.pte() & Stage2Descriptor.S2AP_R) != 0;
    }

    @Benchmark
    @OperationsPerInvocation(Fixture.PAGES)
    public void wrprotect() {
        f.table.wrprotect(Fixture.IPA, Fixture.SIZE);
    }
}
