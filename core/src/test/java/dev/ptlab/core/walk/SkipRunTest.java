package dev.ptlab.core.walk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link VisitContext#skipRun} moves a leaf run exactly as a loop of {@link VisitContext#nextInRun}
 * until it returns false does: same entries passed, same place where the walk carries on, at the
 * last level (where it reads nothing) and above (where a table ends the run).
 */
class SkipRunTest {
    private static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;

    /** Records each run's start and length and each ordinary visit; skips runs one way or the other. */
    private static final class Skipper implements LeafRunVisitor {
        final boolean useSkip;
        final List<String> log = new ArrayList<>();

        Skipper(boolean useSkip) {
            this.useSkip = useSkip;
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            log.add(visit + " L" + ctx.level() + " 0x" + Long.toHexString(ctx.addr()) + " [" + ctx.index() + "]");
            return Status.OK;
        }

        @Override
        public void visitLeafRun(VisitContext ctx) {
            String at = "run L" + ctx.level() + " 0x" + Long.toHexString(ctx.addr()) + " [" + ctx.index() + "]";
            int n;
            if (useSkip) {
                n = ctx.skipRun();
            } else {
                n = 1;
                while (ctx.nextInRun()) n++;
            }
            log.add(at + " x" + n + " -> 0x" + Long.toHexString(ctx.addr()) + " [" + ctx.index() + "]");
        }
    }

    @Test
    void skipRunEndsWhereNextInRunEnds() {
        PhysicalMemory mem = new PhysicalMemory(0x10_0000_0000L, 64L << 20, Granule.G4K, true);
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, new TlbSystem(), 1, 0);
        MemCache cache = new MemCache(mem);
        cache.topUp(64);
        // Pages, a block, a hole and pages in another 1 GiB: runs at levels 1, 2 and 3, with
        // tables in the middle of level-2 and level-1 runs.
        t.map(G1 + 3 * K4, 700 * K4, 0x8000_0000L + 3 * K4, Prot.RW, cache);
        t.map(G1 + 4 * M2, 2 * M2, 0x9000_0000L, Prot.RW, cache);
        t.map(G1 + 9 * M2 + 5 * K4, 3 * K4, 0xA000_0000L, Prot.R, cache);
        t.map(3 * G1 + 17 * K4, 40 * K4, 0xB000_0000L, Prot.RW, cache);
        SplittableRandom rnd = new SplittableRandom(7);
        List<long[]> ranges = new ArrayList<>(List.of(
                new long[] {0, 4 * G1}, new long[] {G1, G1}, new long[] {G1 + 100 * K4, 3 * K4},
                new long[] {G1 + M2 - K4, 2 * K4}, new long[] {G1 + 600 * K4, 5 * M2 + 7 * K4}));
        for (int i = 0; i < 200; i++) {
            long start = rnd.nextLong(4 * G1 / K4) * K4;
            long size = (1 + rnd.nextLong(rnd.nextBoolean() ? 1024 : (4 * G1 - start) / K4)) * K4;
            ranges.add(new long[] {start, Math.min(size, 4 * G1 - start)});
        }
        int skippedAtLastLevel = 0;
        for (long[] r : ranges) {
            Skipper loop = new Skipper(false), skip = new Skipper(true);
            int flags = WalkFlags.LEAF | WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST;
            assertThat(t.walk(r[0], r[1], loop, flags, WalkPolicy.RANGE)).isEqualTo(Status.OK);
            assertThat(t.walk(r[0], r[1], skip, flags, WalkPolicy.RANGE)).isEqualTo(Status.OK);
            assertThat(skip.log).as("range 0x%x + 0x%x", r[0], r[1]).isEqualTo(loop.log);
            skippedAtLastLevel += (int) skip.log.stream().filter(s -> s.startsWith("run L3")).count();
        }
        assertThat(skippedAtLastLevel).as("runs at the last level").isGreaterThan(20);
        t.checkRefcounts();
        t.destroy();
        cache.release();
    }
}
