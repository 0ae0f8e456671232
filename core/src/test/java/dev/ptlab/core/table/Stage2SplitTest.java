package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.Walker;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Off-table subtrees (createUnlinked / freeUnlinked) and eager split (kvm-pgtable.md §6.8):
 * a subtree maps exactly what one block at its level would, fully to pages with force-pte, else
 * with the largest leaves below; split swaps each block for such a subtree, fully when the cache
 * holds enough frames, one level at a time otherwise, and fails with ENOMEM (table intact) when
 * the cache is empty. Structure expectations are computed here from the granule's geometry.
 *
 * <p>The subtree's pages are rebuilt from the block's prot as the kernel's split walker does
 * (Linux 7.1-rc4: {@code kvm_pgtable_stage2_pte_prot}, then {@code stage2_set_prot_attr}), so
 * what they translate to is compared with a fresh Normal map of the block's rights in a second
 * table, not with the block itself: a device or non-cacheable block, or one whose AF was
 * cleared, comes out Normal with AF set. Split caches have capacity = their minimum, as the
 * kernel's eager-split cache, so a top-up gives exactly the frames asked for.
 */
class Stage2SplitTest {
    static final long A = 0x4000_0000L, P = 0x8000_0000L;
    static final long K4 = 0x1000, M2 = 2L << 20, G1 = 1L << 30;

    // ------------------------------------------------------------------------------------------
    // createUnlinked / freeUnlinked

    /** Largest number of frames a createUnlinked case may build (keeps heap use small). */
    static final long MAX_FRAMES = 2100;

    static Stream<Arguments> unlinkedCases() {
        List<Arguments> out = new ArrayList<>();
        Object[][] shapes = {
            {Granule.G4K, 48, OutputAddressFormat.PA48}, {Granule.G4K, 40, OutputAddressFormat.PA48},
            {Granule.G16K, 48, OutputAddressFormat.PA48}, {Granule.G16K, 52, OutputAddressFormat.LPA2},
            {Granule.G64K, 48, OutputAddressFormat.PA48}, {Granule.G64K, 42, OutputAddressFormat.PA48},
        };
        for (Object[] s : shapes) {
            Granule g = (Granule) s[0];
            Geometry geo = Geometry.stage2(g, (Integer) s[1], (OutputAddressFormat) s[2]);
            for (int level = geo.startLevel(); level <= 2; level++) {
                for (boolean force : new boolean[] {false, true}) {
                    if (expectedFrames(g, level, force) <= MAX_FRAMES) out.add(Arguments.of(g, s[1], s[2], level, force));
                }
            }
        }
        return out.stream();
    }

    /** Level of every leaf: pages with force-pte, else the first level below that allows blocks. */
    static int leafLevel(Granule g, int level, boolean force) {
        return force ? 3 : Math.max(level + 1, g.minBlockLevel());
    }

    /** One table at level + 1, then a full level of tables at each level down to the leaves. */
    static long expectedFrames(Granule g, int level, boolean force) {
        long frames = 0, perLevel = 1;
        for (int k = level + 1; k <= leafLevel(g, level, force); k++) {
            frames += perLevel;
            perLevel *= g.entriesPerTable();
        }
        return frames;
    }

    @ParameterizedTest(name = "{0} ipa{1} {2} level {3} forcePte={4}")
    @MethodSource("unlinkedCases")
    void createUnlinkedMapsExactlyOneBlocksWorthAndFreeUnlinkedReturnsEveryFrame(Granule g, int ipaBits,
                                                                                  OutputAddressFormat fmt, int level, boolean force) {
        OpsRig r = new OpsRig(g, ipaBits, 0, 64L << 20);
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(g, ipaBits, fmt), r.mem, r.log, OpsRig.VMID, 0);
        long span = g.levelSize(level);
        long pa = span * (level <= 0 ? 1 : 3);
        long frames = expectedFrames(g, level, force);
        int leafLevel = leafLevel(g, level, force);
        long leafSpan = g.levelSize(leafLevel);
        r.cache.topUp((int) frames + 2);
        long inUse = r.mem.framesInUse();
        int cached = r.cache.size();

        UnlinkedTable sub = t.createUnlinked(pa, level, Prot.parse("rw+sw3"), r.cache, force);

        assertThat(sub.level()).isEqualTo(level);
        assertThat(sub.freed()).isFalse();
        assertThat(cached - r.cache.size()).as("frames taken from the cache").isEqualTo(frames);
        assertThat(r.mem.framesInUse()).isEqualTo(inUse);
        assertThat(r.log.events).as("invisible to hardware: no TLBI, no CMO").isEmpty();
        assertThat(r.mem.cacheMaintenance().dcacheOps() + r.mem.cacheMaintenance().icacheOps()).isZero();
        assertThat(r.mem.count(sub.pa)).as("root count: 1 + a full table of entries").isEqualTo(1 + g.entriesPerTable());

        long[] tally = new long[3]; // leaves, tables, mismatches
        long expectedAttr = Stage2Descriptor.attributes(Prot.parse("rw+sw3"), false, fmt);
        Walker.walkSubtree(t.geometry(), r.mem, sub.pa, level + 1, 0, WalkFlags.LEAF | WalkFlags.TABLE_PRE, (ctx, v) -> {
            long e = ctx.old();
            if (v == dev.ptlab.core.walk.Visit.TABLE_PRE) {
                tally[1]++;
                return Status.OK;
            }
            tally[0]++;
            boolean ok = ctx.level() == leafLevel && Pte.isValidLeaf(e, ctx.level())
                    && t.geometry().outputAddress(e) == pa + ctx.addr()
                    && (e & ~t.geometry().addressMask() & ~Pte.TYPE_MASK) == expectedAttr
                    && (e & Pte.TYPE_MASK) == Pte.leafType(leafLevel);
            if (!ok && tally[2]++ == 0) throw new AssertionError("leaf at 0x" + Long.toHexString(ctx.addr()) + " level " + ctx.level() + ": 0x" + Long.toHexString(e));
            return Status.OK;
        });
        assertThat(tally[0]).as("leaves").isEqualTo(span / leafSpan);
        assertThat(tally[1] + 1).as("table frames").isEqualTo(frames);

        long before = r.mem.framesInUse();
        t.freeUnlinked(sub);
        assertThat(sub.freed()).isTrue();
        assertThat(r.mem.framesInUse()).as("every frame returned").isEqualTo(before - frames);
        assertThat(r.mem.isLive(sub.pa)).isFalse();
        assertThatThrownBy(() -> t.freeUnlinked(sub))
                .isInstanceOf(IllegalStateException.class)
                .hasMessage("UnlinkedTable[level " + level + " entry, base 0x0, freed] was already freed");
        assertThat(r.mem.framesInUse()).isEqualTo(before - frames);
    }

    @Test
    void createUnlinkedRejectsBadArgumentsWithoutTakingFrames() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.cache.topUp(4);
        int cached = r.cache.size();
        long inUse = r.mem.framesInUse();
        assertThatThrownBy(() -> r.table.createUnlinked(P + K4, 2, Prot.RW, r.cache, false))
                .isInstanceOf(PageTableException.class)
                .hasMessage("pa: 0x80001000 is not aligned to the level-2 span 0x200000 (EINVAL)");
        assertThatThrownBy(() -> r.table.createUnlinked(P + M2, 1, Prot.RW, r.cache, false))
                .hasMessage("pa: 0x80200000 is not aligned to the level-1 span 0x40000000 (EINVAL)");
        assertThatThrownBy(() -> r.table.createUnlinked(P, 3, Prot.RW, r.cache, false))
                .hasMessage("level: 3 is outside 1..2 (the level of the entry the subtree hangs under) (EINVAL)");
        assertThatThrownBy(() -> r.table.createUnlinked(P, 0, Prot.RW, r.cache, false))
                .hasMessage("level: 0 is outside 1..2 (the level of the entry the subtree hangs under) (EINVAL)");
        assertThatThrownBy(() -> r.table.createUnlinked(P, 2, null, r.cache, false))
                .hasMessage("prot: null is required (EINVAL)");
        assertThatThrownBy(() -> r.table.freeUnlinked(null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("subtree: null");
        assertThat(r.cache.size()).isEqualTo(cached);
        assertThat(r.mem.framesInUse()).isEqualTo(inUse);
    }

    @Test
    void createUnlinkedOutOfFramesFreesThePartialSubtree() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        MemCache small = new MemCache(r.mem);
        small.topUp(100);
        long inUse = r.mem.framesInUse();
        assertThatThrownBy(() -> r.table.createUnlinked(P, 1, Prot.RW, small, true))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOMEM));
        assertThat(small.size()).isZero();
        assertThat(r.mem.framesInUse()).as("the 100 frames built into the partial tree are freed").isEqualTo(inUse - 100);
        MemCache none = new MemCache(r.mem);
        assertThatThrownBy(() -> r.table.createUnlinked(P, 2, Prot.RW, none, false))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOMEM));
    }

    // ------------------------------------------------------------------------------------------
    // split

    /**
     * What a vCPU sees at one address (PA, memory type and rights, or the fault type: its level
     * moves to the new leaf's level), and the leaf's bits other than output address and type.
     */
    record Seen(String mmu, long attrs) {}

    static Seen seen(OpsRig r, long addr) {
        Translation t = r.mmu.translateDetailed(addr, Access.READ);
        String s = t.isFault() ? t.fault().toString()
                : Long.toHexString(t.pa()) + " " + t.memAttr() + (t.readable() ? "r" : "-") + (t.writable() ? "w" : "-")
                        + (t.executable() ? "x" : "-");
        long pte = r.table.getLeaf(addr).pte();
        return new Seen(s, pte & ~r.table.geometry().addressMask() & ~Pte.TYPE_MASK);
    }

    /** Addresses to compare: first and last page of every sub-block of every block, and random pages. */
    static List<Long> samples(long base, long size, long subBlock, long page, long seed) {
        TreeSet<Long> out = new TreeSet<>();
        for (long b = base; b < base + size; b += subBlock) {
            out.add(b);
            out.add(b + subBlock - page);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < 300; i++) out.add(base + rnd.nextLong(size / page) * page + rnd.nextLong(page));
        return new ArrayList<>(out);
    }

    static final String[] PROTS = {"rwx", "r", "rw+device", "rw+nc", "rw+sw0+sw2", "rpx", "rux"};

    static Stream<Arguments> protsAndAge() {
        List<Arguments> out = new ArrayList<>();
        for (String p : PROTS) {
            out.add(Arguments.of(p, false));
            out.add(Arguments.of(p, true));
        }
        return out.stream();
    }

    /** The same rights and software bits, Normal memory: what the kernel rebuilds a block's pages from. */
    static String normalOf(String prot) {
        return Prot.parse(prot).without(Prot.DEVICE_BIT).without(Prot.NORMAL_NC_BIT).toString();
    }

    /** What each address translates to in a fresh table that maps {@code [a, a + size)} with {@code prot}. */
    static List<Seen> freshMap(Granule g, int ipaBits, long a, long size, long pa, String prot, List<Long> addrs) {
        OpsRig ref = new OpsRig(g, ipaBits, 0);
        ref.map(a, size, pa, prot);
        List<Seen> out = new ArrayList<>();
        for (long x : addrs) out.add(seen(ref, x));
        return out;
    }

    @ParameterizedTest(name = "{0} old={1}")
    @MethodSource("protsAndAge")
    void fullSplitOfA1GBlockWith513FramesGivesPagesRebuiltFromTheBlocksProt(String prot, boolean old) {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, G1, P, prot);
        if (old) r.table.testClearYoung(A, G1, true);
        List<Long> addrs = samples(A, G1, M2, K4, 1);
        List<Seen> before = new ArrayList<>();
        for (long a : addrs) before.add(seen(r, a));
        // The kernel's rebuild: Normal memory, AF = 1, the block's R/W/X and software bits.
        List<Seen> expected = freshMap(Granule.G4K, 40, A, G1, P, normalOf(prot), addrs);
        assertThat(r.table.framesForFullSplit(1)).isEqualTo(1 + 512);
        MemCache c = new MemCache(r.mem);
        c.topUp(513);
        long inUse = r.mem.framesInUse();
        r.table.counters().reset();

        r.table.split(A, G1, c);

        assertThat(c.size()).isZero();
        assertThat(r.mem.framesInUse()).as("the 513 cached frames became the tables").isEqualTo(inUse);
        assertThat(r.table.counters().tablesInstalled()).isEqualTo(513);
        assertThat(r.table.counters().splits()).isEqualTo(1);
        List<long[]> leaves = Fixture.leaves(r.table, A, G1);
        assertThat(leaves).hasSize(512 * 512);
        assertThat(leaves).allSatisfy(l -> assertThat(l[1]).isEqualTo(3));
        List<Seen> after = new ArrayList<>();
        for (long a : addrs) {
            after.add(seen(r, a));
            assertThat(r.mmu.lastLevel()).as("walked the new page table at 0x%x", a).isEqualTo(3);
        }
        assertThat(after).isEqualTo(expected);
        // Only a young Normal block splits into pages that translate exactly as it did (before
        // Linux's rebuild was followed, every case did: memory type and AF were copied).
        boolean same = !old && prot.equals(normalOf(prot));
        assertThat(after.equals(before)).as("pages translate as the block did").isEqualTo(same);
        r.table.checkRefcounts();
    }

    @ParameterizedTest(name = "{0} frames")
    @ValueSource(ints = {1, 2, 3, 100, 512})
    void splitWithFewerFramesGoesOneLevelThenDeeperAsFramesLast(int n) {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, G1, P, "rw");
        List<Long> addrs = samples(A, G1, M2, K4, n);
        List<Seen> before = new ArrayList<>();
        for (long a : addrs) before.add(seen(r, a));
        MemCache c = new MemCache(r.mem, n);
        c.topUp(n);

        // one frame for the table of 2M blocks, then one per 2M block split to pages
        int paged = n - 1;
        assertThatThrownBy(() -> r.table.split(A, G1, c))
                .isInstanceOfSatisfying(PageTableException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
                    assertThat(e.address()).as("the first block left whole").isEqualTo(A + paged * M2);
                    assertThat(e.level()).isEqualTo(2);
                });

        assertThat(c.size()).isZero();
        List<long[]> leaves = Fixture.leaves(r.table, A, G1);
        long pages = leaves.stream().filter(l -> l[1] == 3).count();
        long blocks = leaves.stream().filter(l -> l[1] == 2).count();
        assertThat(pages).isEqualTo(paged * 512L);
        assertThat(blocks).isEqualTo(512L - paged);
        for (long[] l : leaves) {
            assertThat(l[1] == 3 ? l[0] < A + paged * M2 : l[0] >= A + paged * M2).as("leaf at 0x%x", l[0]).isTrue();
            assertThat(r.table.geometry().outputAddress(l[2])).isEqualTo(P + (l[0] - A));
        }
        List<Seen> after = new ArrayList<>();
        for (long a : addrs) after.add(seen(r, a));
        assertThat(after).isEqualTo(before);
        r.table.checkRefcounts();
    }

    @Test
    void splitWithAnEmptyCacheIsEnomemAndLeavesTheTableUnchanged() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, G1, P, "rwx");
        r.map(A + G1, 8 * K4, P, "rw");
        Map<Long, List<Long>> snap = Fixture.snapshot(r.table);
        r.log.clear();
        r.table.counters().reset();
        MemCache empty = new MemCache(r.mem);
        assertThatThrownBy(() -> r.table.split(A, 2 * G1, empty))
                .isInstanceOfSatisfying(PageTableException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
                    assertThat(e.address()).isEqualTo(A);
                    assertThat(e.level()).isEqualTo(1);
                    assertThat(e.getMessage()).isEqualTo("at 0x40000000 level 1: splitting a block needs at least one table"
                            + " frame and the memory cache is empty (ENOMEM)");
                });
        assertThat(Fixture.snapshot(r.table)).isEqualTo(snap);
        assertThat(r.log.events).isEmpty();
        assertThat(r.table.counters().splits()).isZero();
        assertThat(r.mmu.translate(A + 0x1234_5678L, Access.EXEC)).isEqualTo(P + 0x1234_5678L);
        r.table.checkRefcounts();
        // pages and holes need no frames: splitting a range without blocks succeeds with none
        r.table.split(A + G1, G1, empty);
        assertThat(Fixture.snapshot(r.table)).isEqualTo(snap);
    }

    static Stream<Arguments> blockGranules() {
        return Stream.of(Arguments.of(Granule.G16K, 40), Arguments.of(Granule.G64K, 42));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("blockGranules")
    void splitOfTheOnlyBlockSizeTakesOneFrameAndRebuildsFromTheBlocksProt(Granule g, int ipaBits) {
        OpsRig r = new OpsRig(g, ipaBits, 0);
        long span = g.levelSize(2);
        long a = span * 3, pa = span * 5;
        r.map(a, span, pa, "rx");
        r.map(a + span, span, pa + span, "rw+device");
        r.table.testClearYoung(a + span, g.pageSize(), true);
        assertThat(r.table.framesForFullSplit(2)).isEqualTo(1);
        List<Long> addrs = samples(a, 2 * span, span, g.pageSize(), 7);
        List<Long> first = addrs.stream().filter(x -> x < a + span).toList();
        List<Long> second = addrs.stream().filter(x -> x >= a + span).toList();
        // The old device block's pages: Normal, AF set (the kernel's rebuild from its prot).
        List<Seen> before = freshMap(g, ipaBits, a, span, pa, "rx", first);
        before.addAll(freshMap(g, ipaBits, a + span, span, pa + span, "rw", second));
        MemCache c = new MemCache(r.mem, 2);
        c.topUp(2);

        r.table.split(a, 2 * span, c);

        assertThat(c.size()).isZero();
        assertThat(Fixture.leaves(r.table, a, 2 * span)).hasSize(2 * g.entriesPerTable())
                .allSatisfy(l -> assertThat(l[1]).isEqualTo(3));
        List<Seen> after = new ArrayList<>();
        for (long x : addrs) after.add(seen(r, x));
        assertThat(after).isEqualTo(before);
        r.table.checkRefcounts();
    }

    /** Table frames reachable from the roots, roots excluded. */
    static long nonRootTables(Stage2PageTable t) {
        return Fixture.snapshot(t).size() - t.geometry().rootPages();
    }

    @Test
    void tableCountersStayBalancedThroughSplitCoalesceAndUnlinkedSubtrees() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        TableCounters c = r.table.counters();
        r.map(A, G1, P, "rw");
        r.map(A + G1, 3 * M2, P, "rw");
        assertThat(c.tablesInstalled() - c.tablesFreed()).isEqualTo(nonRootTables(r.table));
        MemCache mc = new MemCache(r.mem);
        mc.topUp(600);
        r.table.split(A, G1, mc);                       // 1 + 512 tables
        assertThat(c.tablesInstalled() - c.tablesFreed()).as("after a full split").isEqualTo(nonRootTables(r.table));
        r.table.split(A + G1, 3 * M2, mc);              // 3 tables
        assertThat(c.tablesInstalled() - c.tablesFreed()).as("after 2M splits").isEqualTo(nonRootTables(r.table));
        r.map(A, G1, P, "rw");                           // coalesce: frees all 513
        assertThat(c.tablesInstalled() - c.tablesFreed()).as("after coalescing").isEqualTo(nonRootTables(r.table));
        UnlinkedTable u = r.table.createUnlinked(P, 2, Prot.RW, mc, false);
        r.table.freeUnlinked(u);
        mc.topUp(600);
        UnlinkedTable v = r.table.createUnlinked(P, 1, Prot.RW, mc, true);
        r.table.freeUnlinked(v);
        assertThat(c.tablesInstalled() - c.tablesFreed()).as("after create/free unlinked").isEqualTo(nonRootTables(r.table));
        r.table.unmap(0, r.table.geometry().iaLimit());
        assertThat(nonRootTables(r.table)).isZero();
        assertThat(c.tablesInstalled()).isEqualTo(c.tablesFreed());
    }

    @Test
    void splitOnlyTouchesBlocksAndSplitsAPartiallyCoveredBlockWhole() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, M2, P, "rw");                 // block
        r.map(A + M2, 3 * K4, P + K4, "rw");   // pages
        r.map(A + 4 * M2, M2, P + 4 * M2, "r"); // block, only its second half in range
        MemCache c = new MemCache(r.mem, 5);
        c.topUp(5);
        r.log.clear();
        r.table.split(A, 4 * M2 + M2 / 2 + M2 / 4, c);
        assertThat(c.size()).isEqualTo(3);
        assertThat(r.table.getLeaf(A + 0x3000).level()).isEqualTo(3);
        assertThat(r.table.getLeaf(A + 4 * M2 + M2 - K4).level()).isEqualTo(3);
        assertThat(r.table.geometry().outputAddress(r.table.getLeaf(A + 4 * M2 + M2 - K4).pte())).isEqualTo(P + 5 * M2 - K4);
        assertThat(r.log.tlbis()).hasSize(2);
        r.table.checkRefcounts();
    }
}
