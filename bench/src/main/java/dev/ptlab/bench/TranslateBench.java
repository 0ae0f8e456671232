package dev.ptlab.bench;

import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
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
 * {@link Mmu#translate} on the 1 GiB of 4K pages of {@link Fixture}, one read per operation;
 * each benchmark call translates {@link #BATCH} addresses in a loop (reported per translation),
 * which keeps JMH's own per-call cost out of a figure of a few nanoseconds.
 *
 * <ul>
 *   <li>{@code miss}: every access misses the TLB and walks all four levels. Addresses visit
 *       the 262144 pages as {@code page = i * stride mod 262144} (stride odd), so consecutive
 *       accesses land in different TLB slots and a slot is refilled every 512 accesses, long
 *       before its page comes round again. {@code stride=1} walks the pages in order (each L3
 *       table is reused 512 times in a row); {@code stride=40503} scatters them over all 512 L3
 *       tables (2 MiB of descriptors).</li>
 *   <li>{@code hit}: cycles over 512 consecutive pages, which the 512-entry page TLB holds
 *       all at once, so every access hits at level 3.</li>
 * </ul>
 * {@code walkEntries} sizes the stage-2 walk cache: 0 is no walk cache (every miss reads all four
 * levels), 64 the default (a miss with stride 1 starts at the cached level-2 table descriptor and
 * reads one level; with stride 40503 the 512 level-2 descriptors do not fit, the level-1 one does,
 * so it reads two or three).
 * The tear-down checks the hit/miss counts, so a benchmark that measures the wrong path fails.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@State(Scope.Thread)
public class TranslateBench {
    static final int BATCH = 1024;

    @Param({"1", "40503"})
    public int stride;

    @Param({"0", "64"})
    public int walkEntries;

    dev.ptlab.core.hw.Tlb tlb;

    Fixture f;
    Mmu mmu;
    int i;
    long hitsBefore, missesBefore;

    @Setup(Level.Trial)
    public void setup() {
        f = new Fixture();
        f.mapAll();
        tlb = new dev.ptlab.core.hw.Tlb("cpu0", dev.ptlab.core.arch.Granule.G4K, 512, 64, walkEntries);
        f.tlbs.register(tlb);
        mmu = new Mmu(f.table.geometry(), f.memory, tlb, f.table.rootPa(), Fixture.VMID, true, false);
        long pa = mmu.translate(Fixture.IPA + 0x1234, Access.READ);
        if (pa != Fixture.PA + 0x1234) throw new IllegalStateException("translate gave 0x" + Long.toHexString(pa));
        // Start cold: the check above cached page 1, which the first miss access would hit.
        tlb.invalidateAll();
    }

    @Setup(Level.Iteration)
    public void iteration() {
        hitsBefore = tlb.hits();
        missesBefore = tlb.misses();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long miss() {
        Mmu m = mmu;
        int j = i, st = stride;
        long sum = 0;
        for (int k = 0; k < BATCH; k++) {
            j += st;
            sum += m.translate(Fixture.IPA + ((long) (j & (Fixture.PAGES - 1)) << 12) + 8, Access.READ);
        }
        i = j;
        return sum;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long hit() {
        Mmu m = mmu;
        int j = i, st = stride;
        long sum = 0;
        for (int k = 0; k < BATCH; k++) {
            j += st;
            sum += m.translate(Fixture.IPA + ((long) (j & 511) << 12) + 8, Access.READ);
        }
        i = j;
        return sum;
    }

    @TearDown(Level.Iteration)
    public void check(org.openjdk.jmh.infra.BenchmarkParams params) {
        long hits = tlb.hits() - hitsBefore, misses = tlb.misses() - missesBefore;
        boolean missBench = params.getBenchmark().endsWith(".miss");
        // hit: only the first pass over the 512 pages may miss; miss: nothing may hit.
        if (missBench ? hits != 0 : misses > 512) {
            throw new IllegalStateException(params.getBenchmark() + ": " + hits + " TLB hits, " + misses + " misses");
        }
    }
}
