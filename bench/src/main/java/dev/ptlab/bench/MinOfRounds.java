package dev.ptlab.bench;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;

/**
 * A noise-resistant cross-check of the JMH figures (not a replacement): the same operations as
 * {@link MapBench} and {@link TranslateBench}, each timed over many short rounds in one JVM, and
 * the fastest round reported. On a shared machine a JMH average includes the time the thread
 * spent descheduled; the minimum of short rounds mostly does not. Minima are optimistic by
 * construction; quote them as such.
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar dev.ptlab.bench.MinOfRounds [rounds]}
 * (default 200 map/unmap rounds, and a quarter as many rounds of 2^20 translations).
 */
public final class MinOfRounds {
    private MinOfRounds() {}

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        Fixture f = new Fixture();
        f.mapAll();
        f.unmapAll();
        double map = Double.MAX_VALUE, unmap = Double.MAX_VALUE;
        for (int r = 0; r < rounds; r++) {
            f.cache.topUp(Fixture.TABLES + 8);
            long before = f.table.counters().leavesInstalled();
            long t0 = System.nanoTime();
            f.table.map(Fixture.IPA, Fixture.SIZE, Fixture.PA, Prot.RW, f.cache);
            long t1 = System.nanoTime();
            f.checkMapped(before);
            long removed = f.table.counters().leavesRemoved();
            long t2 = System.nanoTime();
            f.table.unmap(Fixture.IPA, Fixture.SIZE);
            long t3 = System.nanoTime();
            f.checkUnmapped(removed);
            map = Math.min(map, (t1 - t0) / (double) Fixture.PAGES);
            unmap = Math.min(unmap, (t3 - t2) / (double) Fixture.PAGES);
        }
        f.mapAll();
        Mmu mmu = new Mmu(f.table.geometry(), f.memory, f.tlb, f.table.rootPa(), Fixture.VMID, true, false);
        int n = 1 << 20;
        double missSeq = Double.MAX_VALUE, missScatter = Double.MAX_VALUE, hit = Double.MAX_VALUE;
        long sink = 0;
        for (int r = 0; r < Math.max(1, rounds / 4); r++) {
            f.tlb.invalidateAll(); // the previous hit round cached pages 0..511
            long hits = f.tlb.hits();
            long t0 = System.nanoTime();
            sink += translate(mmu, n, 1, Fixture.PAGES - 1);
            long t1 = System.nanoTime();
            sink += translate(mmu, n, 40503, Fixture.PAGES - 1);
            long t2 = System.nanoTime();
            if (f.tlb.hits() != hits) throw new IllegalStateException("a miss round hit the TLB");
            long misses = f.tlb.misses();
            sink += translate(mmu, n, 1, 511);
            long t3 = System.nanoTime();
            if (f.tlb.misses() - misses > 512) throw new IllegalStateException("a hit round missed the TLB");
            missSeq = Math.min(missSeq, (t1 - t0) / (double) n);
            missScatter = Math.min(missScatter, (t2 - t1) / (double) n);
            hit = Math.min(hit, (t3 - t2) / (double) n);
        }
        System.out.printf("map                %6.2f ns/page%n", map);
        System.out.printf("unmap              %6.2f ns/page%n", unmap);
        System.out.printf("miss, stride 1     %6.2f ns%n", missSeq);
        System.out.printf("miss, stride 40503 %6.2f ns%n", missScatter);
        System.out.printf("hit                %6.2f ns%n", hit);
        if (sink == 42) System.out.println(); // keep the results live
    }

    /** Translates n addresses, page i*stride masked to pageMask, as TranslateBench does. */
    private static long translate(Mmu mmu, int n, int stride, int pageMask) {
        long sum = 0;
        int j = 0;
        for (int k = 0; k < n; k++) {
            j += stride;
            sum += mmu.translate(Fixture.IPA + ((long) (j & pageMask) << 12) + 8, Access.READ);
        }
        return sum;
    }
}
