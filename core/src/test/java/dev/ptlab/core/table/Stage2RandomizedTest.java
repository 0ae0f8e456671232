package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Random map/unmap sequences on a stage-2 table, checked after every operation against a
 * reference model through a software MMU whose TLB only the table's own TLBIs keep coherent.
 *
 * <p>The model is a sorted map of leaves (base IPA → level, PA, prot), so a page's translation is
 * the leaf at or below it. Its rules are the table's documented ones (kvm-pgtable.md §6.4, §6.6),
 * written here independently of the code:
 * <ul>
 *   <li>map walks the levels top-down over the range; at each entry a leaf is placed iff the level
 *       allows leaves, the entry's span lies inside the range and the PA is aligned to it;</li>
 *   <li>a placed leaf replaces whatever the entry held (a leaf, or a whole subtree: coalescing),
 *       except that an existing leaf of the same level and PA (identical, or differing only in
 *       permissions) is left unchanged — and in a fault walk that ends the walk (RACED);</li>
 *   <li>where no leaf fits, an existing block there is dropped whole and only the requested part
 *       is mapped below it;</li>
 *   <li>unmap removes every leaf that overlaps the range, whole.</li>
 * </ul>
 * Pages checked after each operation: every page of the operation's range and of every leaf the
 * model replaced or dropped (ranges beyond 4096 pages: the first and last 16 pages, both ends of
 * each smallest-block chunk and 1024 random pages), plus random pages of the window. The expected level
 * of a translation fault is derived from the model too (a table exists exactly where a leaf lies
 * below it), which also proves that emptied tables are freed.
 *
 * <p>Seed: random per run, printed in every failure; set {@code -Dptlab.seed=N} to replay.
 */
class Stage2RandomizedTest {
    private static final int OPS = 2000;

    /** One leaf of the model. Prot bits: 1 = write, 2 = execute (all leaves are readable). */
    record MLeaf(int level, long pa, int prot) {}

    static final Prot[] PROTS = {Prot.R, Prot.RW, Prot.RX, Prot.RWX};

    static final class Model {
        final Granule g;
        final int startLevel;
        final int minBlock;
        final TreeMap<Long, MLeaf> leaves = new TreeMap<>();
        /** Regions [a, b) whose translation the last operation may have changed. */
        final List<long[]> dirty = new ArrayList<>();

        Model(Granule g, int startLevel) {
            this.g = g;
            this.startLevel = startLevel;
            this.minBlock = g == Granule.G4K ? 1 : 2;
        }

        long span(int level) {
            return Stage2MapTest.span(g, level);
        }

        void removeRange(long lo, long hi) {
            NavigableMap<Long, MLeaf> sub = leaves.subMap(lo, true, hi, false);
            for (Map.Entry<Long, MLeaf> e : sub.entrySet()) dirty.add(new long[] {e.getKey(), e.getKey() + span(e.getValue().level())});
            sub.clear();
        }

        /** @return false if a fault walk was stopped by an unchanged leaf (RACED) */
        boolean map(long ipa, long size, long pa, int prot, boolean fault) {
            dirty.add(new long[] {ipa, ipa + size});
            return mapLevel(startLevel, ipa, ipa + size, ipa, pa, prot, fault);
        }

        private boolean mapLevel(int level, long lo, long hi, long start, long pa, int prot, boolean fault) {
            long s = span(level);
            for (long b = lo & -s; b < hi; b += s) {
                long a = Math.max(lo, b), e = Math.min(hi, b + s);
                long phys = pa + (a - start);
                boolean fits = level >= minBlock && a == b && (phys & (s - 1)) == 0 && hi - a >= s;
                MLeaf here = leaves.get(b);
                boolean leafHere = here != null && here.level() == level;
                if (fits) {
                    if (leafHere && here.pa() == phys) {
                        if (fault) return false;
                        continue; // identical or permissions-only: unchanged
                    }
                    removeRange(b, b + s);
                    leaves.put(b, new MLeaf(level, phys, prot));
                } else {
                    if (leafHere) {
                        leaves.remove(b); // the block shrinks: its other pages are dropped
                        dirty.add(new long[] {b, b + s});
                    }
                    if (!mapLevel(level + 1, a, e, start, pa, prot, fault)) return false;
                }
            }
            return true;
        }

        void unmap(long ipa, long size) {
            dirty.add(new long[] {ipa, ipa + size});
            Map.Entry<Long, MLeaf> below = leaves.lowerEntry(ipa);
            if (below != null && below.getKey() + span(below.getValue().level()) > ipa) {
                dirty.add(new long[] {below.getKey(), below.getKey() + span(below.getValue().level())});
                leaves.remove(below.getKey());
            }
            removeRange(ipa, ipa + size);
        }

        /** The leaf translating {@code addr}, with its base, or null. */
        Map.Entry<Long, MLeaf> lookup(long addr) {
            Map.Entry<Long, MLeaf> e = leaves.floorEntry(addr);
            if (e == null || e.getKey() + span(e.getValue().level()) <= addr) return null;
            return e;
        }

        /** Level of the translation fault for an unmapped address: the first entry with nothing below it. */
        int faultLevel(long addr) {
            int level = startLevel;
            while (level < 3) {
                long s = span(level), region = addr & -s;
                Long k = leaves.ceilingKey(region);
                if (k == null || k >= region + s) break;
                level++;
            }
            return level;
        }

        /** Table frames (excluding roots) the table needs for these leaves: one under each entry with a deeper leaf. */
        long tablesNeeded() {
            long n = 0;
            for (int level = startLevel; level < 3; level++) {
                long s = span(level), last = -1;
                for (Map.Entry<Long, MLeaf> e : leaves.entrySet()) {
                    if (e.getValue().level() <= level) continue;
                    long entry = e.getKey() / s; // leaves are sorted, so equal entries are adjacent
                    if (entry != last) n++;
                    last = entry;
                }
            }
            return n;
        }
    }

    @Test
    void granule4k() {
        run(Granule.G4K, 40, 0, 510L << 30, 4L << 30);
    }

    @Test
    void granule16k() {
        run(Granule.G16K, 40, Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI, 62L << 30, 4L << 30);
    }

    @Test
    void granule64k() {
        run(Granule.G64K, 48, Stage2PageTable.RANGE_TLBI, (4L << 40) - (3L << 30), 6L << 30);
    }

    private static long seed() {
        String s = System.getProperty("ptlab.seed");
        return s != null ? Long.parseLong(s) : new SplittableRandom().nextLong();
    }

    /**
     * @param winBase start of the IPA window the operations touch (chosen to cross a root or
     *     start-level entry boundary)
     */
    private void run(Granule g, int ipaBits, int tableFlags, long winBase, long winSize) {
        long seed = seed();
        SplittableRandom rnd = new SplittableRandom(seed);
        Fixture f = new Fixture(g, ipaBits, tableFlags, 1L << 30);
        Model m = new Model(g, f.table.geometry().startLevel());
        long page = m.span(3), block = m.span(2), big = m.span(m.minBlock);
        String ctx = "seed " + seed + " (" + g.label() + ", flags " + tableFlags + ")";
        String op = "";
        try {
            for (int i = 0; i < OPS; i++) {
                m.dirty.clear();
                int kind = rnd.nextInt(100);
                long ipa, size;
                if (kind < 30) {
                    // unmap
                    long[] r = randomRange(rnd, winBase, winSize, page, block, big);
                    ipa = r[0];
                    size = r[1];
                    op = String.format("#%d unmap 0x%x+0x%x", i, ipa, size);
                    f.table.unmap(ipa, size);
                    m.unmap(ipa, size);
                } else {
                    long pa;
                    if (kind < 45 && !m.leaves.isEmpty()) {
                        // remap around an existing leaf with its PA: identical / perms-only / shrinking
                        Long key = m.leaves.ceilingKey(winBase + rnd.nextLong(winSize));
                        if (key == null) key = m.leaves.firstKey();
                        MLeaf l = m.leaves.get(key);
                        long ls = m.span(l.level());
                        long[] r = aroundLeaf(rnd, key, ls, page, winBase, winSize);
                        ipa = r[0];
                        size = r[1];
                        pa = l.pa() + (ipa - key);
                        if (pa < 0) {
                            ipa = key;
                            size = ls;
                            pa = l.pa();
                        }
                    } else {
                        long[] r = randomRange(rnd, winBase, winSize, page, block, big);
                        ipa = r[0];
                        size = r[1];
                        // page-granular PAs only for ranges of up to two blocks, so the model stays small
                        int align = rnd.nextInt(size > 2 * block ? 3 : 4);
                        long modulus = align < 2 ? big : align == 2 ? block : page;
                        pa = (1L << 39) + rnd.nextLong((1L << 38) / big) * big + (ipa & (modulus - 1));
                        if (align == 3) pa += page * rnd.nextLong(1, block / page);
                    }
                    int prot = rnd.nextInt(4);
                    int flags = 0;
                    int fk = rnd.nextInt(10);
                    if (fk < 2) flags = WalkFlags.SHARED;
                    else if (fk < 4) flags = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
                    else if (fk < 5) flags = WalkFlags.HANDLE_FAULT;
                    boolean fault = (flags & WalkFlags.HANDLE_FAULT) != 0;
                    op = String.format("#%d map 0x%x+0x%x -> 0x%x %s %s", i, ipa, size, pa, PROTS[prot], WalkFlags.toString(flags));
                    f.topUpFor(size);
                    Status st = f.table.map(ipa, size, pa, PROTS[prot], f.cache, flags);
                    boolean done = m.map(ipa, size, pa, prot, fault);
                    assertThat(st).as("status").isEqualTo(done ? Status.OK : Status.RACED);
                }
                f.table.checkRefcounts();
                verify(f, m, rnd, winBase, winSize);
                if (i % 50 == 49) verifyStructure(f, m, winBase, winSize);
            }
            op = "final";
            verifyStructure(f, m, winBase, winSize);
            assertThat(f.tlb.conflicts()).as("TLB conflicts").isZero();
            op = "teardown";
            f.destroyAndCheck();
        } catch (AssertionError | RuntimeException e) {
            throw new AssertionError(ctx + ", " + op + ": " + e.getMessage(), e);
        }
    }

    /**
     * A range over an existing leaf at {@code key} spanning {@code ls}: the leaf exactly, a few of
     * its pages, or the leaf with a few pages either side (clipped to the window).
     */
    static long[] aroundLeaf(SplittableRandom rnd, long key, long ls, long page, long winBase, long winSize) {
        long ipa, size;
        int shape = rnd.nextInt(4);
        if (shape == 0 || ls == page) {
            ipa = key;
            size = ls;
        } else if (shape == 1) {
            long pages = ls / page;
            long first = rnd.nextLong(pages);
            ipa = key + first * page;
            size = page * (1 + rnd.nextLong(Math.min(pages - first, 64)));
        } else {
            long before = page * rnd.nextLong(4), after = page * rnd.nextLong(4);
            ipa = Math.max(winBase, key - before);
            size = Math.min(winBase + winSize, key + ls + after) - ipa;
        }
        return new long[] {ipa, size};
    }

    /** A random range inside the window: a few pages, a few blocks, or (4K) a whole 1G block or two. */
    static long[] randomRange(SplittableRandom rnd, long winBase, long winSize, long page, long block, long big) {
        int k = rnd.nextInt(100);
        long ipa, size;
        if (k < 45) {
            size = page * (1 + rnd.nextLong(16));
            ipa = winBase + rnd.nextLong((winSize - size) / page + 1) * page;
        } else if (k < 70) {
            size = block * (1 + rnd.nextLong(3));
            ipa = winBase + rnd.nextLong((winSize - size) / block + 1) * block;
            if (rnd.nextInt(3) == 0) {
                long shift = page * rnd.nextLong(1, block / page);
                if (ipa + shift + size <= winBase + winSize) ipa += shift;
            }
        } else if (k < 92) {
            size = page * (1 + rnd.nextLong(Math.min(2 * block / page, 2048)));
            ipa = winBase + rnd.nextLong((winSize - size) / page + 1) * page;
        } else {
            size = big * (1 + rnd.nextLong(2));
            if (big == block) size += page * rnd.nextLong(block / page);
            ipa = winBase + rnd.nextLong((winSize - size) / big + 1) * big;
            if (rnd.nextBoolean() && ipa + size + page <= winBase + winSize) ipa += page;
        }
        return new long[] {ipa, size};
    }

    private static void verify(Fixture f, Model m, SplittableRandom rnd, long winBase, long winSize) {
        long page = m.span(3);
        TreeSet<Long> pages = new TreeSet<>();
        for (long[] r : m.dirty) {
            long lo = Math.max(r[0], winBase), hi = Math.min(r[1], winBase + winSize);
            if (lo >= hi) continue;
            long n = (hi - lo) / page;
            if (n <= 4096) {
                for (long p = lo; p < hi; p += page) pages.add(p);
            } else {
                for (int i = 0; i < 16; i++) {
                    pages.add(lo + i * page);
                    pages.add(hi - (i + 1) * page);
                }
                long chunk = m.span(2);
                for (long c = lo & -chunk; c < hi; c += chunk) {
                    if (c >= lo) pages.add(c);
                    if (c + chunk - page >= lo && c + chunk <= hi) pages.add(c + chunk - page);
                }
                for (int i = 0; i < 1024; i++) pages.add(lo + rnd.nextLong(n) * page);
            }
        }
        for (int i = 0; i < 16; i++) pages.add(winBase + rnd.nextLong(winSize / page) * page);
        for (long p : pages) checkPage(f, m, p + rnd.nextLong(page));
    }

    private static void checkPage(Fixture f, Model m, long addr) {
        Map.Entry<Long, MLeaf> e = m.lookup(addr);
        long r = f.mmu.translate(addr, Access.READ);
        if (e == null) {
            long want = Translation.encodeFault(FaultType.TRANSLATION, m.faultLevel(addr));
            if (r != want) mismatch(f, "read 0x%x (unmapped)", addr, r, want);
            return;
        }
        MLeaf l = e.getValue();
        long pa = l.pa() + (addr - e.getKey());
        if (r != pa) mismatch(f, "read 0x%x (leaf 0x" + Long.toHexString(e.getKey()) + " L" + l.level() + ")", addr, r, pa);
        if (f.mmu.lastLevel() != l.level()) {
            throw new AssertionError(String.format("level of 0x%x: %d, expected %d", addr, f.mmu.lastLevel(), l.level()));
        }
        long perm = Translation.encodeFault(FaultType.PERMISSION, l.level());
        long w = f.mmu.translate(addr, Access.WRITE);
        if (w != ((l.prot() & 1) != 0 ? pa : perm)) mismatch(f, "write 0x%x", addr, w, (l.prot() & 1) != 0 ? pa : perm);
        long x = f.mmu.translate(addr, Access.EXEC);
        if (x != ((l.prot() & 2) != 0 ? pa : perm)) mismatch(f, "exec 0x%x", addr, x, (l.prot() & 2) != 0 ? pa : perm);
    }

    private static void mismatch(Fixture f, String what, long addr, long got, long want) {
        throw new AssertionError(String.format(what, addr) + ": MMU gave " + Fixture.describe(got) + " (TLB hit " + f.mmu.lastTlbHit()
                + "), model expects " + Fixture.describe(want));
    }

    /** Every leaf of the window, found by a software walk, equals the model; table frames are exactly those needed. */
    private static void verifyStructure(Fixture f, Model m, long winBase, long winSize) {
        List<long[]> actual = Fixture.leaves(f.table, winBase, winSize);
        int i = 0;
        for (Map.Entry<Long, MLeaf> e : m.leaves.entrySet()) {
            MLeaf l = e.getValue();
            if (i >= actual.size()) {
                throw new AssertionError(String.format("leaf 0x%x L%d -> 0x%x p%d missing from the table", e.getKey(), l.level(), l.pa(), l.prot()));
            }
            long[] a = actual.get(i++);
            long pte = a[2];
            int prot = ((pte & Stage2Descriptor.S2AP_W) != 0 ? 1 : 0) | ((pte & Stage2Descriptor.XN_MASK) == 0 ? 2 : 0);
            long pa = f.table.geometry().outputAddress(pte);
            if (a[0] != e.getKey() || a[1] != l.level() || pa != l.pa() || prot != l.prot()) {
                assertThat(String.format("0x%x L%d -> 0x%x p%d", a[0], a[1], pa, prot)).as("leaf #%d", i - 1)
                        .isEqualTo(String.format("0x%x L%d -> 0x%x p%d", e.getKey(), l.level(), l.pa(), l.prot()));
            }
        }
        assertThat(actual.size()).as("leaves in the table beyond the model's").isEqualTo(i);
        assertThat(f.tableFrames()).as("table frames in use").isEqualTo(m.tablesNeeded());
    }
}
