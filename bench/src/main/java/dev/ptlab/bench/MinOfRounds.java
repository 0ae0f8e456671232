package dev.ptlab.bench;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * A noise-resistant cross-check of the JMH figures (not a replacement): the same operations as
 * {@link MapBench}, {@link TranslateBench}, {@link WrprotectBench}, {@link SplitBench} and
 * {@link CoalesceBench} (same setup and checks, untimed), each timed over many short rounds in one JVM, and
 * the fastest round reported. On a shared machine a JMH average includes the time the thread
 * spent descheduled; the minimum of short rounds mostly does not. Minima are optimistic by
 * construction; quote them as such.
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar dev.ptlab.bench.MinOfRounds [rounds [groups]]}
 * (default 200 rounds of each table operation, and a quarter as many rounds of 2^20
 * translations). {@code groups} is a comma-separated subset of {@code map,translate,wrprotect,
 * split,coalesce} (default: all).
 */
public final class MinOfRounds {
    private MinOfRounds() {}

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        java.util.Set<String> groups = new java.util.HashSet<>(java.util.Arrays.asList(
                (args.length > 1 ? args[1] : "map,translate,wrprotect,split,coalesce").split(",")));
        if (groups.contains("map") || groups.contains("translate")) mapAndTranslate(rounds, groups);
        if (groups.contains("wrprotect")) wrprotect(rounds);
        if (groups.contains("split")) split(rounds);
        if (groups.contains("coalesce")) {
            coalesce(rounds, CoalescePolicy.INSTALL_FIRST);
            coalesce(rounds, CoalescePolicy.UNMAP_FIRST);
        }
    }

    /** As {@link WrprotectBench}: write permission restored (untimed), then one wrprotect of the GiB. */
    private static void wrprotect(int rounds) {
        Fixture f = new Fixture();
        f.mapAll();
        WrprotectBench b = new WrprotectBench();
        b.f = f;
        double best = Double.MAX_VALUE;
        for (int r = 0; r < rounds; r++) {
            f.table.walk(Fixture.IPA, Fixture.SIZE, WrprotectBench.RESTORE_W, WalkFlags.LEAF, WalkPolicy.RANGE);
            b.updatesBefore = f.table.counters().attrUpdates();
            long t0 = System.nanoTime();
            f.table.wrprotect(Fixture.IPA, Fixture.SIZE);
            long t1 = System.nanoTime();
            b.check();
            best = Math.min(best, (t1 - t0) / (double) Fixture.PAGES);
        }
        System.out.printf("%-24s %6.2f ns/page%n", "wrprotect", best);
    }

    /** As {@link SplitBench}: 512 blocks mapped and the cache filled (untimed), then one split. */
    private static void split(int rounds) {
        SplitBench b = new SplitBench();
        b.trial();
        double best = Double.MAX_VALUE;
        for (int r = 0; r < rounds; r++) {
            b.blocks();
            long t0 = System.nanoTime();
            b.f.table.split(Fixture.IPA, Fixture.SIZE, b.f.cache);
            long t1 = System.nanoTime();
            b.check();
            best = Math.min(best, (t1 - t0) / (double) Fixture.PAGES);
        }
        System.out.printf("%-24s %6.2f ns/page%n", "split", best);
    }

    /** As {@link CoalesceBench}: the GiB mapped in pages (untimed), then mapped again as 2 MiB blocks. */
    private static void coalesce(int rounds, CoalescePolicy policy) {
        CoalesceBench b = new CoalesceBench();
        b.policy = policy;
        b.trial();
        double best = Double.MAX_VALUE;
        for (int r = 0; r < rounds; r++) {
            b.pages();
            long t0 = System.nanoTime();
            b.f.table.map(Fixture.IPA, Fixture.SIZE, Fixture.BLOCK_PA, Prot.RW, b.f.cache);
            long t1 = System.nanoTime();
            b.check();
            best = Math.min(best, (t1 - t0) / (double) Fixture.PAGES);
        }
        System.out.printf("%-24s %6.2f ns/page%n", "coalesce " + policy, best);
    }

    private static void mapAndTranslate(int rounds, java.util.Set<String> groups) {
        Fixture f = new Fixture();
        f.mapAll();
        f.unmapAll();
        double map = Double.MAX_VALUE, unmap = Double.MAX_VALUE;
        for (int r = 0; r < (groups.contains("map") ? rounds : 0); r++) {
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
        for (int r = 0; r < (groups.contains("translate") ? Math.max(1, rounds / 4) : 0); r++) {
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
        if (groups.contains("map")) {
            System.out.printf("%-24s %6.2f ns/page%n", "map", map);
            System.out.printf("%-24s %6.2f ns/page%n", "unmap", unmap);
        }
        if (groups.contains("translate")) {
            System.out.printf("%-24s %6.2f ns%n", "miss, stride 1", missSeq);
            System.out.printf("%-24s %6.2f ns%n", "miss, stride 40503", missScatter);
            System.out.printf("%-24s %6.2f ns%n", "hit", hit);
        }
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
