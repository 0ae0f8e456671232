package dev.ptlab.cli;

import dev.ptlab.cli.scenario.ScenarioParser;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code ptlab bench}: quick figures without JMH. Each figure is warmed up, then timed over
 * several repetitions with {@link System#nanoTime()}; the median is reported with the min and max.
 * For publishable numbers use the JMH benchmarks of the {@code bench} module.
 */
@Command(name = "bench",
        header = "Quick timings of map, unmap and MMU translation (no JMH).",
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "Quick timings without JMH (median of --reps repetitions after --warmup rounds): map and unmap of 1 GiB "
                + "in 4K pages in an empty 48-bit 4K stage-2 table (flags FWB|RANGE_TLBI, checking off), MMU "
                + "translation with a TLB miss (full walk) and a TLB hit, and the heap cost of the table frames."})
final class BenchCommand implements Callable<Integer> {
    private static final long IPA = 0x4000_0000L;
    /** 4K past a 2M boundary relative to the IPA: no block can be used, every leaf is a page. */
    private static final long PA = 0x8000_1000L;
    private static final long SIZE = 1L << 30;
    private static final int HIT_SET = 256;
    private static final int HIT_ROUNDS = 4096;
    /** Heap bytes of one frame's metadata in PhysicalMemory: array reference, refcount, state. */
    static final int FRAME_METADATA_BYTES = 8 + 4 + 1;
    /** Heap bytes of a long[] header (HotSpot, 64-bit, compressed class pointers). */
    static final int ARRAY_HEADER_BYTES = 16;

    /** Most --reps and --warmup rounds (each a few tenths of a second). */
    static final int MAX_REPS = 10_000;

    /** Defeats dead-code elimination of the translation loops. */
    static volatile long sink;

    @Spec
    CommandSpec spec;

    @Mixin
    HelpOption help;

    @Option(names = "--reps", paramLabel = "N", defaultValue = "10",
            description = "timed repetitions per figure; the median is reported (default: ${DEFAULT-VALUE})")
    int reps;

    @Option(names = "--warmup", paramLabel = "N", defaultValue = "5",
            description = "untimed rounds before timing, for the JIT (default: ${DEFAULT-VALUE})")
    int warmup;

    @Override
    public Integer call() {
        // Each rep maps and unmaps 1 GiB (tenths of a second) and keeps a few longs: a bound far
        // above any useful run keeps --reps 2147483647 from allocating gigabytes of timings.
        if (reps < 1 || reps > MAX_REPS) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--reps: " + reps + " is outside 1.." + MAX_REPS);
        }
        if (warmup < 0 || warmup > MAX_REPS) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--warmup: " + warmup + " is outside 0.." + MAX_REPS);
        }
        PrintWriter out = spec.commandLine().getOut();
        Granule g = Granule.G4K;
        Geometry geo = Geometry.stage2(g, 48);
        PhysicalMemory mem = new PhysicalMemory(ScenarioParser.DEFAULT_MEM_BASE, 64L << 20, g, false);
        TlbSystem tlbs = new TlbSystem();
        // No walk cache: the "TLB miss" figures are full 4-level walks, comparable across versions
        // (the JMH TranslateBench measures the walk cache's effect).
        Tlb tlb = new Tlb("cpu0", g, 512, 64, 0);
        tlbs.register(tlb);
        Stage2PageTable table = new Stage2PageTable(geo, mem, tlbs, 1, Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI);
        MemCache cache = new MemCache(mem);
        Mmu mmu = new Mmu(geo, mem, tlb, table.rootPa(), 1, true, false);
        int pages = (int) (SIZE >>> g.shift());
        // Tables a 1G page map needs in a 4-level table: 1 L1 + 1 L2 + 512 L3 (+ slack).
        int tablesNeeded = pages / g.entriesPerTable() + 8;

        out.printf(Locale.ROOT, "ptlab bench: stage-2 table, %s granule, %d-bit IPA (levels %d..3), flags FWB|RANGE_TLBI, "
                + "checking off; median of %d reps after %d warm-up rounds [min, max]%n",
                g.label(), geo.iaBits(), geo.startLevel(), reps, warmup);
        out.flush();

        // ---- map / unmap of 1 GiB in pages ----
        long[] mapNs = new long[reps];
        long[] unmapNs = new long[reps];
        long rangeTlbis = 0, ipaTlbis = 0, vmidTlbis = 0;
        for (int r = -warmup; r < reps; r++) {
            cache.topUp(tablesNeeded);
            long t0 = System.nanoTime();
            table.map(IPA, SIZE, PA, Prot.RW, cache);
            long t1 = System.nanoTime();
            tlbs.resetCounters();
            long t2 = System.nanoTime();
            table.unmap(IPA, SIZE);
            long t3 = System.nanoTime();
            if (r >= 0) {
                mapNs[r] = t1 - t0;
                unmapNs[r] = t3 - t2;
            }
            rangeTlbis = tlbs.rangeFlushes();
            ipaTlbis = tlbs.ipaFlushes();
            vmidTlbis = tlbs.vmidFlushes();
        }
        out.printf(Locale.ROOT, "map        1G as %d x 4K pages (IPA %s -> PA %s): %s per map, %s/page%n",
                pages, Numbers.hex(IPA), Numbers.hex(PA), ms(mapNs), nsPer(mapNs, pages));
        out.printf(Locale.ROOT, "unmap      1G of 4K pages: %s per unmap, %s/page; TLBIs per unmap: %d range, %d by IPA "
                + "(one per freed table), %d VMID%n", ms(unmapNs), nsPer(unmapNs, pages), rangeTlbis, ipaTlbis, vmidTlbis);
        out.flush();

        // ---- the mapped table for translation and memory figures ----
        cache.topUp(tablesNeeded);
        table.map(IPA, SIZE, PA, Prot.RW, cache);
        long frames = mem.framesInUse() - cache.size();

        // TLB miss: every page once per rep, so the direct-mapped TLB (512 page entries) never holds the next
        // page and each lookup is a full walk from the root. In address order the walk's descriptors are in
        // the host's caches; in a scattered order (an odd multiplier permutes the 2^18 pages) they mostly are not.
        long[] sequential = new long[pages];
        long[] scattered = new long[pages];
        for (int i = 0; i < pages; i++) {
            sequential[i] = IPA + ((long) i << g.shift()) + 0x123;
            scattered[i] = IPA + (((i * 0x9E3779B1L) & (pages - 1)) << g.shift()) + 0x123;
        }
        for (long[] addrs : new long[][] {sequential, scattered}) {
            long walks0 = mmu.walks(), lookups0 = tlb.hits() + tlb.misses();
            long[] ns = timeTranslations(mmu, addrs, 1);
            out.printf(Locale.ROOT, "translate  TLB miss, %d-level walk, %d pages in %s order: %s/op (%d walks in %d lookups)%n",
                    geo.levels(), pages, addrs == sequential ? "address" : "scattered", nsPer(ns, pages),
                    mmu.walks() - walks0, tlb.hits() + tlb.misses() - lookups0);
            out.flush();
        }

        // TLB hit: a few pages that all fit in the TLB (distinct direct-mapped slots), looked up over and over.
        long[] hot = new long[HIT_SET];
        for (int i = 0; i < HIT_SET; i++) hot[i] = IPA + ((long) i << g.shift()) + 0x40;
        for (long a : hot) mmu.translate(a, Access.READ);
        long hits0 = tlb.hits(), misses0 = tlb.misses();
        long[] hitNs = timeTranslations(mmu, hot, HIT_ROUNDS);
        long hitOps = (long) HIT_SET * HIT_ROUNDS;
        out.printf(Locale.ROOT, "translate  TLB hit, %d resident pages, %d lookups per rep: %s/op (%d hits, %d misses)%n",
                HIT_SET, hitOps, nsPer(hitNs, hitOps), tlb.hits() - hits0, tlb.misses() - misses0);

        // ---- memory ----
        long pageSize = g.pageSize();
        long perFrameHeap = ARRAY_HEADER_BYTES + (long) Granule.BYTES_PER_ENTRY * g.entriesPerTable() + FRAME_METADATA_BYTES;
        long tableBytes = frames * pageSize;
        long heapBytes = frames * perFrameHeap;
        out.printf(Locale.ROOT, "memory     %d table frames x %s = %s of table memory (%.2f bytes per mapped page); heap %d bytes "
                        + "= %d x (%d B array header + %d B x %d entries + %d B frame metadata); heap/table ratio %.4f%n",
                frames, Numbers.size(pageSize), Numbers.size(tableBytes), (double) tableBytes / pages, heapBytes, frames,
                ARRAY_HEADER_BYTES, Granule.BYTES_PER_ENTRY, g.entriesPerTable(), FRAME_METADATA_BYTES,
                (double) heapBytes / tableBytes);
        out.printf(Locale.ROOT, "           (PhysicalMemory.tableHeapBytes() of the whole %s window, counting metadata of all "
                + "%d frames and %d cached spare frames: %d bytes)%n", Numbers.size(mem.size()), mem.frameCount(), cache.size(),
                mem.tableHeapBytes());
        out.flush();
        return Main.EXIT_OK;
    }

    /** Nanoseconds of each timed rep of {@code rounds} passes over {@code addrs}, after the warm-up reps. */
    private long[] timeTranslations(Mmu mmu, long[] addrs, int rounds) {
        long[] ns = new long[reps];
        for (int r = -warmup; r < reps; r++) {
            long t0 = System.nanoTime();
            long acc = 0;
            for (int round = 0; round < rounds; round++) {
                for (long a : addrs) acc += mmu.translate(a, Access.READ);
            }
            long t1 = System.nanoTime();
            sink = acc;
            if (r >= 0) ns[r] = t1 - t0;
        }
        return ns;
    }

    static long median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private static String ms(long[] ns) {
        long[] s = ns.clone();
        Arrays.sort(s);
        return String.format(Locale.ROOT, "%.2f ms [%.2f, %.2f]", median(ns) / 1e6, s[0] / 1e6, s[s.length - 1] / 1e6);
    }

    private static String nsPer(long[] ns, long ops) {
        long[] s = ns.clone();
        Arrays.sort(s);
        return String.format(Locale.ROOT, "%.1f ns [%.1f, %.1f]", (double) median(ns) / ops, (double) s[0] / ops,
                (double) s[s.length - 1] / ops);
    }
}
