package dev.ptlab.bench;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage1Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.NestedMmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage1PageTable;
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
 * Two-stage ({@link NestedMmu}): a guest stage-1 table (48-bit VA, 4K, four levels) maps
 * {@link #NESTED_VA} page by page onto the fixture's GiB of IPA (one page off a 2 MiB boundary,
 * so no stage-1 block); its table frames sit in a 4 MiB window at IPA = PA {@link #GUEST_TABLES}
 * mapped at stage 2 page by page, so every table read is a 4-level stage-2 translation.
 * <ul>
 *   <li>{@code nestedMiss}, {@code walkEntries=0}: a TLB of one entry per level and no walk
 *       cache, so every translation misses everything and makes the full 4 × (4 + 1) + 4 = 24
 *       descriptor reads (checked in the tear-down).</li>
 *   <li>{@code nestedMiss}, {@code walkEntries=64}: the default-sized TLB with walk caches; the
 *       VA pattern misses the combined and stage-1 leaf entries every time, while the stage-1 and
 *       stage-2 walk caches and the stage-2 leaves of the table frames are warm (with stride 1,
 *       about one stage-1 and one stage-2 descriptor read per translation).</li>
 *   <li>{@code nestedHit}: 512 consecutive pages, each a combined-entry hit.</li>
 * </ul>
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

    Tlb tlb;

    static final long NESTED_VA = 0x40_0000_1000L;
    static final long GUEST_TABLES = 0x2_0000_0000L;
    static final long GUEST_TABLES_SIZE = 4L << 20;
    NestedMmu nestedMiss, nestedHit;
    long nestedWalksBefore, nestedReadsBefore, combinedHitsBefore, hitWalksBefore;

    Fixture f;
    Mmu mmu;
    int i;
    long hitsBefore, missesBefore;

    @Setup(Level.Trial)
    public void setup() {
        f = new Fixture();
        f.mapAll();
        tlb = new Tlb("cpu0", Granule.G4K, 512, 64, walkEntries);
        f.tlbs.register(tlb);
        mmu = new Mmu(f.table.geometry(), f.memory, tlb, f.table.rootPa(), Fixture.VMID, true, false);
        long pa = mmu.translate(Fixture.IPA + 0x1234, Access.READ);
        if (pa != Fixture.PA + 0x1234) throw new IllegalStateException("translate gave 0x" + Long.toHexString(pa));
        // Start cold: the check above cached page 1, which the first miss access would hit.
        tlb.invalidateAll();
        setupNested();
    }

    private void setupNested() {
        Granule g = Granule.G4K;
        PhysicalMemory guest = new PhysicalMemory(GUEST_TABLES, GUEST_TABLES_SIZE, g, false);
        // Page by page: one map of the window would use 2 MiB blocks.
        for (long off = 0; off < GUEST_TABLES_SIZE; off += g.pageSize()) {
            f.cache.topUp(8);
            f.table.map(GUEST_TABLES + off, g.pageSize(), GUEST_TABLES + off, Prot.RW, f.cache);
        }
        Stage1PageTable s1 = new Stage1PageTable(Geometry.guestStage1(g, 48), guest, f.tlbs, Fixture.VMID, 1);
        s1.map(NESTED_VA, Fixture.SIZE, Fixture.IPA, Prot.RW, false, true);
        Tlb cold = new Tlb("nested-cold", g, 1, 1, 0);
        Tlb missTlb = walkEntries == 0 ? cold : new Tlb("nested-warm", g, 512, 64, walkEntries);
        nestedMiss = nested(missTlb, guest, s1);
        nestedHit = nested(new Tlb("nested-hit", g, 512, 64, walkEntries), guest, s1);
        long pa = nestedMiss.translate(NESTED_VA + 0x1234, Access.READ);
        if (pa != Fixture.PA + 0x1234) throw new IllegalStateException("nested translate gave 0x" + Long.toHexString(pa));
        missTlb.invalidateAll();
    }

    private NestedMmu nested(Tlb t, PhysicalMemory guest, Stage1PageTable s1) {
        f.tlbs.register(t);
        NestedMmu m = new NestedMmu(new Mmu(f.table.geometry(), f.memory, t, f.table.rootPa(), Fixture.VMID, true, false), guest);
        // SCTLR_EL1.M; TCR_EL1: T0SZ 16, TG0 4K, EPD1, IPS 48-bit, 16-bit ASIDs.
        long tcr = 16L | 1L << NestedMmu.EPD1_SHIFT | 5L << NestedMmu.IPS_SHIFT | 1L << NestedMmu.AS_SHIFT;
        m.loadEl1(1, tcr, s1.ttbr(), 0, Stage1Descriptor.MAIR_EL1);
        return m;
    }

    @Setup(Level.Iteration)
    public void iteration() {
        hitsBefore = tlb.hits();
        missesBefore = tlb.misses();
        nestedWalksBefore = nestedMiss.walks();
        nestedReadsBefore = nestedMiss.walkReads();
        combinedHitsBefore = nestedMiss.tlb().combinedHits();
        hitWalksBefore = nestedHit.walks();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long nestedMiss() {
        NestedMmu m = nestedMiss;
        int j = i, st = stride;
        long sum = 0;
        for (int k = 0; k < BATCH; k++) {
            j += st;
            sum += m.translate(NESTED_VA + ((long) (j & (Fixture.PAGES - 1)) << 12) + 8, Access.READ);
        }
        i = j;
        return sum;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long nestedHit() {
        NestedMmu m = nestedHit;
        int j = i, st = stride;
        long sum = 0;
        for (int k = 0; k < BATCH; k++) {
            j += st;
            sum += m.translate(NESTED_VA + ((long) (j & 511) << 12) + 8, Access.READ);
        }
        i = j;
        return sum;
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
        String name = params.getBenchmark();
        if (name.endsWith(".nestedMiss")) {
            long walks = nestedMiss.walks() - nestedWalksBefore, reads = nestedMiss.walkReads() - nestedReadsBefore;
            long hits = nestedMiss.tlb().combinedHits() - combinedHitsBefore;
            if (hits != 0 || (walkEntries == 0 && reads != 24 * walks)) {
                throw new IllegalStateException(name + ": " + hits + " combined hits, " + reads + " reads in " + walks + " walks");
            }
            return;
        }
        if (name.endsWith(".nestedHit")) {
            long walks = nestedHit.walks() - hitWalksBefore;
            if (walks > 512) throw new IllegalStateException(name + ": " + walks + " walks");
            return;
        }
        long hits = tlb.hits() - hitsBefore, misses = tlb.misses() - missesBefore;
        boolean missBench = params.getBenchmark().endsWith(".miss");
        // hit: only the first pass over the 512 pages may miss; miss: nothing may hit.
        if (missBench ? hits != 0 : misses > 512) {
            throw new IllegalStateException(params.getBenchmark() + ": " + hits + " TLB hits, " + misses + " misses");
        }
    }
}
