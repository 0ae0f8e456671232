package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.longs;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Random;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * The public Stage2PageTable and HypPageTable API driven with hostile arguments (issue 16):
 * addresses, sizes and PAs around every boundary (0, 1, page - 1, page, block ± 1, the input
 * limit ± 1, 2^63 - 1, negative), memory caches of other memories, walk flags the operations do
 * not take, null arguments and operations re-entered from a visitor. After every call: it either
 * succeeded or failed with an error naming the argument (or one of the documented errnos:
 * ERANGE outside the address space, ENOMEM, EEXIST and EPERM for the hyp table, an
 * IllegalStateException for re-entry); and the table is consistent (the invariant checker,
 * getLeaf). At the end destroy gives every frame back.
 *
 * <p>Seeded and bounded: {@value #DEFAULT_EXAMPLES} sequences of {@value #CALLS} calls by default
 * ({@code -Dptlab.hostile.examples=N} for more, {@code -Dptlab.seed=S} for another seed).
 */
class HostileApiPropertyTest {
    static final int DEFAULT_EXAMPLES = 40;
    static final int CALLS = 30;
    static final int EXAMPLES = Integer.getInteger("ptlab.hostile.examples", DEFAULT_EXAMPLES);
    static final long SEED = Long.getLong("ptlab.seed", 0x16_16_16L);
    static final long MEM_BASE = 0x10_0000_0000L;
    static final long A = 0x4000_0000L;

    /** What the calls ended in ("ok", an argument's name, an errno, "re-entry"): the run must have reached them all. */
    static final Set<String> OUTCOMES = ConcurrentHashMap.newKeySet();

    @Test
    void stage2TableSurvivesHostileCalls() {
        OUTCOMES.clear();
        qt().withFixedSeed(SEED).withExamples(EXAMPLES)
                .forAll(longs().all(), integers().between(0, 3))
                .checkAssert((seed, variant) -> runStage2(seed, variant));
        assertThat(OUTCOMES).as("outcomes reached").contains("ok", "cache", "flags", "ipa", "size", "visitor", "level",
                "re-entry", "ERANGE", "ENOMEM");
    }

    @Test
    void hypTableSurvivesHostileCalls() {
        OUTCOMES.clear();
        qt().withFixedSeed(SEED + 1).withExamples(EXAMPLES)
                .forAll(longs().all(), integers().between(0, 1))
                .checkAssert((seed, variant) -> runHyp(seed, variant));
        assertThat(OUTCOMES).as("outcomes reached").contains("ok", "va", "size", "pa", "visitor", "re-entry", "ERANGE",
                "EPERM");
    }

    /** Values around every boundary of a table with {@code g}: what addresses, sizes and PAs are drawn from. */
    static long[] boundaries(Geometry g) {
        long page = g.granule().pageSize();
        long block = g.granule().levelSize(2);
        long limit = g.iaLimit();
        long paLimit = 1L << g.paBits();
        return new long[] {0, 1, page - 1, page, page + 1, block - 1, block, block + 1, 2 * block, block - page,
            limit - 1, limit, limit + 1, limit - page, limit - block, Long.MAX_VALUE, -1, -page, Long.MIN_VALUE,
            A, A + page, A + block, MEM_BASE, MEM_BASE + page, paLimit - page, paLimit, paLimit - block};
    }

    static final int[] FLAGS = {0, 0, WalkFlags.SHARED, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT, WalkFlags.SKIP_CMO,
        WalkFlags.SKIP_BBM_TLBI, WalkFlags.LEAF, WalkFlags.TABLE_PRE, 1 << 7, 1 << 30, -1, Integer.MIN_VALUE};
    static final Prot[] PROTS = {Prot.RW, Prot.R, Prot.RX, Prot.RWX, Prot.DEVICE_RW, Prot.NONE, null};

    /** One sequence's state: the random source and what each call is judged against. */
    static final class Run {
        final Random rnd;
        final long[] values;
        final List<String> log = new ArrayList<>();

        Run(long seed, Geometry g) {
            rnd = new Random(seed);
            values = boundaries(g);
        }

        long value() {
            // Mostly boundaries, sometimes a boundary nudged by a page, sometimes anything.
            int k = rnd.nextInt(10);
            long v = values[rnd.nextInt(values.length)];
            if (k == 0) return rnd.nextLong();
            if (k == 1) return v + (rnd.nextBoolean() ? 4096 : -4096);
            return v;
        }

        int flags() { return FLAGS[rnd.nextInt(FLAGS.length)]; }
        Prot prot() { return PROTS[rnd.nextInt(PROTS.length)]; }

        /** Runs one call; it must succeed or fail with an acceptable error. */
        void call(String what, Supplier<Object> op) {
            log.add(what);
            try {
                op.get();
                if (!what.startsWith("re-entry")) OUTCOMES.add("ok");
            } catch (Throwable e) {
                judge(e);
            }
        }

        private void judge(Throwable e) {
            String where = "call " + log.size() + " of " + log + "\nthrew " + e;
            if (e instanceof PageTableException p) {
                if (p.argument() != null) {
                    assertThat(p.getMessage()).as(where).startsWith(p.argument() + ": ");
                    OUTCOMES.add(p.argument());
                    return;
                }
                switch (p.errno()) {
                    case ERANGE, ENOMEM, EEXIST, EPERM -> {
                        OUTCOMES.add(p.errno().name());
                        return;
                    }
                    default -> throw new AssertionError(where + ": an errno without a named argument", e);
                }
            }
            if (e instanceof IllegalStateException && e.getMessage() != null
                    && (e.getMessage().contains("visitor") || e.getMessage().contains("destroyed"))) {
                OUTCOMES.add("state");
                return;
            }
            if (e instanceof IllegalArgumentException && e.getMessage() != null && e.getMessage().matches("^[\\w-]+: .*")) {
                return; // the older "name: why" argument errors
            }
            throw new AssertionError(where + ": not an argument error", e);
        }
    }

    private static void runStage2(long seed, int variant) {
        Granule gr = variant % 2 == 0 ? Granule.G4K : Granule.G16K;
        PhysicalMemory mem = new PhysicalMemory(MEM_BASE, 32L << 20, gr, true);
        long baseline = mem.framesInUse();
        int tableFlags = variant >= 2 ? Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI : 0;
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(gr, 40), mem, new TlbSystem(), 5, tableFlags);
        Run r = new Run(seed, t.geometry());
        MemCache cache = new MemCache(mem);
        MemCache sameBase = new MemCache(new PhysicalMemory(MEM_BASE, 4L << 20, gr, true));
        MemCache otherBase = new MemCache(new PhysicalMemory(0x80_0000_0000L, 4L << 20, gr, true));
        sameBase.topUp(16);
        otherBase.topUp(16);
        MemCache[] caches = {cache, cache, cache, null, sameBase, otherBase};
        for (int i = 0; i < CALLS; i++) {
            cache.topUp(64);
            long a = r.value(), s = r.value(), p = r.value();
            int f = r.flags();
            Prot prot = r.prot();
            MemCache c = caches[r.rnd.nextInt(caches.length)];
            String args = String.format("(0x%x, 0x%x, 0x%x, %s, %s, %s)", a, s, p, prot, c == cache ? "cache" : c == null
                    ? "null" : "foreign", WalkFlags.toString(f));
            switch (r.rnd.nextInt(16)) {
                case 0, 1, 2 -> r.call("map" + args, () -> t.map(a, s, p, prot, c, f));
                case 3 -> r.call("unmap" + args, () -> { t.unmap(a, s); return null; });
                case 4 -> r.call("wrprotect" + args, () -> { t.wrprotect(a, s); return null; });
                case 5 -> r.call("mkyoung" + args, () -> t.mkyoung(a, f));
                case 6 -> r.call("relaxPerms" + args, () -> t.relaxPerms(a, prot, f, null));
                case 7 -> r.call("testClearYoung" + args, () -> t.testClearYoung(a, s, f % 2 == 0));
                case 8 -> r.call("flush" + args, () -> { t.flush(a, s); return null; });
                case 9 -> r.call("split" + args, () -> { t.split(a, s, c); return null; });
                case 10 -> r.call("setOwner" + args, () -> { t.setOwner(a, s, c, f & 0xff); return null; });
                case 11 -> r.call("framesForFullSplit(" + f + ")", () -> t.framesForFullSplit(f));
                case 12 -> r.call("createUnlinked+free" + args, () -> {
                    t.freeUnlinked(t.createUnlinked(p, f & 7, prot, c, (f & 8) != 0));
                    return null;
                });
                case 13 -> r.call("getLeaf" + args, () -> t.getLeaf(a));
                case 14 -> r.call("walk" + args, () -> t.walk(a, s, r.rnd.nextBoolean() ? null : (ctx, v) -> null, f, null));
                default -> r.call("re-entry" + args, () -> reenter(t, a, s, f, () -> {
                    if ((f & 1) == 0) t.unmap(a, s); else t.destroy();
                }));
            }
            assertConsistent(t, r);
        }
        t.destroy();
        cache.release();
        sameBase.release();
        otherBase.release();
        assertThat(mem.framesInUse()).as("frames after destroy, calls %s", r.log).isEqualTo(baseline);
    }

    private static void runHyp(long seed, int variant) {
        Granule gr = variant == 0 ? Granule.G4K : Granule.G64K;
        PhysicalMemory mem = new PhysicalMemory(MEM_BASE, 32L << 20, gr, true);
        long baseline = mem.framesInUse();
        HypPageTable h = new HypPageTable(Geometry.hyp(gr, 48), mem, new TlbSystem());
        Run r = new Run(seed, h.geometry());
        for (int i = 0; i < CALLS; i++) {
            long a = r.value(), s = r.value(), p = r.value();
            int f = r.flags();
            Prot prot = r.prot();
            String args = String.format("(0x%x, 0x%x, 0x%x, %s, %s)", a, s, p, prot, WalkFlags.toString(f));
            switch (r.rnd.nextInt(6)) {
                case 0, 1, 2 -> r.call("map" + args, () -> { h.map(a, s, p, prot); return null; });
                case 3 -> r.call("unmap" + args, () -> h.unmap(a, s));
                case 4 -> r.call("walk" + args, () -> h.walk(a, s, r.rnd.nextBoolean() ? null : (ctx, v) -> null, f, null));
                default -> r.call("re-entry" + args, () -> reenter(h, a, s, f, () -> {
                    if ((f & 1) == 0) h.unmap(a, s); else h.destroy();
                }));
            }
            assertConsistent(h, r);
        }
        h.destroy();
        assertThat(mem.framesInUse()).as("frames after destroy, calls %s", r.log).isEqualTo(baseline);
    }

    /**
     * A walk whose visitor calls {@code inner} on the same table: the inner call must be refused
     * with an IllegalStateException (the walk itself may fail on its own arguments).
     */
    private static Object reenter(PageTable t, long a, long s, int flags, Runnable inner) {
        int walkFlags = WalkFlags.LEAF | (flags & WalkFlags.SHARED);
        Throwable[] seen = {null};
        boolean[] visited = {false};
        t.walk(a, s, (ctx, v) -> {
            if (!visited[0]) {
                visited[0] = true;
                try {
                    inner.run();
                } catch (Throwable e) {
                    seen[0] = e;
                }
            }
            return Status.OK;
        }, walkFlags, null);
        if (visited[0]) {
            assertThat(seen[0]).as("re-entered call refused").isInstanceOf(IllegalStateException.class);
            OUTCOMES.add("re-entry");
        }
        return null;
    }

    private static void assertConsistent(PageTable t, Run r) {
        assertThat(t.destroyed()).as("destroyed by %s", r.log).isFalse();
        try {
            t.checkRefcounts();
            t.getLeaf(A);
            t.getLeaf(0);
            t.getLeaf(t.geometry().iaLimit() - 1);
        } catch (Throwable e) {
            throw new AssertionError("table inconsistent after " + r.log, e);
        }
    }
}
