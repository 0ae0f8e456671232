package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.check.InvariantChecker;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Random sequences of every stage-2 operation, checked after each one against a reference model
 * through a software MMU (hardware AF update off, so AF = 0 shows as an access-flag fault) whose
 * TLB only TLBIs keep coherent: the table's own, plus the ones the caller owes after
 * {@code wrprotect} and {@code testClearYoung(mkold)}, which the test issues as KVM does.
 *
 * <p>The model holds what the table holds, independently of the code: valid leaves (base IPA →
 * level, PA, R/W/PX/UX, AF, memory type, software bits), page owner annotations, and which entries
 * are table descriptors. Its rules (kvm-pgtable.md §2.7, §6.4–§6.8, §7):
 * <ul>
 *   <li><b>map</b> walks the levels top-down. Where the entry is a table and a leaf fits its whole
 *       span (level allows blocks, IPA and PA aligned, span inside the range, no force-pte), the
 *       table is replaced by that leaf and its subtree is dropped (coalescing; both
 *       {@link CoalescePolicy} orders give the same table). Where a leaf fits on a non-table
 *       entry it replaces what was there, except that an existing valid leaf that differs from
 *       the new one only in R/W/XN (or not at all) is left unchanged — this includes AF, memory
 *       type and software bits, so an old (AF = 0) leaf is replaced — and in a fault walk that
 *       ends the walk (RACED). Where no leaf fits and the entry is not a table, a table is
 *       installed; a block there is dropped whole and only the requested part is mapped
 *       below.</li>
 *   <li><b>unmap</b> removes every leaf and annotation overlapping the range, whole; a table
 *       visited by the walk is freed when nothing is left under it.</li>
 *   <li><b>wrprotect</b> clears W of every leaf overlapping the range, <b>mkyoung</b> sets AF of
 *       the leaf translating the address (NOT_MAPPED if none), <b>testClearYoung</b> reports
 *       whether any overlapping leaf has AF set and with mkold clears it, <b>relaxPerms</b> adds
 *       R/W and sets the exec field to exactly the exec rights given (Linux 7.1-rc4), refusing
 *       exec rights on device or non-cacheable leaves (EINVAL, nothing changed); none of them
 *       changes anything else.</li>
 *   <li><b>split</b> replaces each overlapping block by a subtree of the same output addresses
 *       rebuilt from the block's prot as the kernel does (R/W/PX/UX and software bits kept,
 *       memory type Normal write-back, AF set): down to pages if the cache holds a full split's frames
 *       (1 + entries × that of the next level), else one level of next-size blocks which are then
 *       split in turn where the range covers them; ENOMEM when the cache is empty at a block,
 *       with the splits so far kept.</li>
 *   <li><b>setOwner</b> (force-pte annotation) turns every non-table entry above the last level
 *       in the range into a table (a block there is dropped whole) and sets every page's
 *       annotation (owner 0: the zero entry). Tables it creates stay, even if left empty.</li>
 *   <li><b>flush</b> changes nothing; it cleans the D-cache for each overlapping cacheable leaf
 *       (none with FWB).</li>
 *   <li><b>idmapGreedy</b> (IDMAP tables only) maps, by map's rules above, the block that
 *       IdmapGreedyTest's brute-force rule derives from the model's pins (annotations, leaves with
 *       other permissions, memory type or software bits), falling back to the page around the
 *       address when the range holds no whole block (Linux 7.1-rc4); EPERM changes nothing.</li>
 * </ul>
 * The TLB invalidations each operation issues are counted against the model too (one by IPA per
 * valid leaf broken or removed and per table unmap frees, one range or VMID flush per table
 * broken by coalescing, for a relax one local by-IPA flush (OK, NOT_MAPPED) or one broadcast
 * by-IPA flush when it took an exec right away, one deferred range flush per unmap with FWB and
 * range TLBI whatever it removed, none for the attribute updates), as are the subtrees handed to the free-unlinked hook (sometimes deferred until after
 * the operation), the frames the split consumed, and the table frames in use after every
 * operation.
 *
 * <p>After every operation: {@link InvariantChecker} (checking-mode memory also checks the BBM
 * rule on every store), table-frame accounting, and every page the operation touched (its range
 * and every leaf it changed; ranges beyond 512 pages sampled: 16 pages at both ends, both ends of
 * up to 64 smallest-block chunks, 256 random pages) plus 16 random window pages: read, write and exec
 * through the MMU (PA or fault type and level), and the entry {@code getLeaf} returns (the exact
 * descriptor for a leaf, so UX, memory type and software bits are compared too; for an unmapped
 * page the zero entry or the owner annotation, at the level the model derives). Every 50
 * operations and at the end the whole window's leaves, annotations and table entries are compared
 * with the model. At the end the table is destroyed and every frame must be back.
 *
 * <p>Runs: the three granules on a plain table (4K without FWB, 16K with FWB and range TLBI, 64K
 * with range TLBI) and on an IDMAP table with a 52-bit output format and a window across a PA
 * boundary that uses the format's high address bits. Seed: random per run, printed in every
 * failure; {@code -Dptlab.seed=N} replays. Operation counts: {@code -Dptlab.modelOps=N} (plain
 * tables, default 2900 per granule) and {@code -Dptlab.modelIdmapOps=N} (IDMAP tables, default 500 per
 * granule): 10,200 operations in all.
 */
class Stage2ModelTest {
    private static final int OPS = Integer.getInteger("ptlab.modelOps", 2900);
    private static final int IDMAP_OPS = Integer.getInteger("ptlab.modelIdmapOps", 500);

    /** Permission bits of the model. */
    static final int R = 1, W = 2, PX = 4, UX = 8;
    /** Memory types of the model. */
    static final int MEM_WB = 0, MEM_NC = 1, MEM_DEVICE = 2;

    /** One valid leaf of the model. */
    record MLeaf(int level, long pa, int perms, boolean af, int mem, int sw) {
        MLeaf at(int lvl, long p) {
            return new MLeaf(lvl, p, perms, af, mem, sw);
        }

        MLeaf withPerms(int p) {
            return new MLeaf(level, pa, p, af, mem, sw);
        }

        MLeaf withAf(boolean young) {
            return new MLeaf(level, pa, perms, young, mem, sw);
        }

        /** What the kernel's split rebuilds from this leaf's prot: Normal write-back, AF set. */
        MLeaf rebuilt() {
            return new MLeaf(level, pa, perms, true, MEM_WB, sw);
        }

        @Override
        public String toString() {
            return "L" + level + "->0x" + Long.toHexString(pa) + " " + permString(perms) + (af ? "" : " old")
                    + (mem == MEM_NC ? " nc" : mem == MEM_DEVICE ? " device" : "") + (sw != 0 ? " sw" + sw : "");
        }
    }

    static String permString(int p) {
        StringBuilder sb = new StringBuilder();
        if ((p & R) != 0) sb.append('r');
        if ((p & W) != 0) sb.append('w');
        if ((p & PX) != 0) sb.append("px");
        if ((p & UX) != 0) sb.append("ux");
        return sb.length() == 0 ? "none" : sb.toString();
    }

    /** The model ran out of split frames where the table must report ENOMEM. */
    static final class ModelEnomem extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ModelEnomem() {
            super(null, null, false, false);
        }
    }

    static final class Model {
        final Geometry geo;
        final Granule g;
        final int startLevel;
        final TreeMap<Long, MLeaf> leaves = new TreeMap<>();
        /** Pages with a non-zero owner annotation. */
        final TreeMap<Long, Integer> owners = new TreeMap<>();
        /** Per level: bases of the entries at that level that are table descriptors. */
        @SuppressWarnings("unchecked")
        final TreeSet<Long>[] tables = new TreeSet[4];

        // Per operation: regions whose translation may have changed, and what the table must report.
        final List<long[]> dirty = new ArrayList<>();
        int coalesced;
        /** Table frames under subtrees coalescing detached (the detached table included). */
        long detachedTables;
        long ipaTlbis;
        long leavesRemoved;
        long tablesFreed;
        long splits;

        Model(Geometry geo) {
            this.geo = geo;
            this.g = geo.granule();
            this.startLevel = geo.startLevel();
            for (int l = 0; l < 4; l++) tables[l] = new TreeSet<>();
        }

        void beginOp() {
            dirty.clear();
            coalesced = 0;
            detachedTables = 0;
            ipaTlbis = 0;
            leavesRemoved = 0;
            tablesFreed = 0;
            splits = 0;
        }

        long span(int level) {
            return g.levelSize(level);
        }

        boolean isTable(int level, long base) {
            return level < 3 && tables[level].contains(base);
        }

        long tableCount() {
            long n = 0;
            for (TreeSet<Long> t : tables) n += t.size();
            return n;
        }

        void touch(long lo, long hi) {
            dirty.add(new long[] {lo, hi});
        }

        void touchLeaf(long base, MLeaf l) {
            touch(base, base + span(l.level()));
        }

        /** Frames a split of one level-{@code level} block all the way to pages takes (§6.8). */
        long fullSplitFrames(int level) {
            if (level >= 3) return 0;
            return 1 + (level + 1 >= 3 ? 0 : (long) g.entriesPerTable() * fullSplitFrames(level + 1));
        }

        /** The leaf translating {@code addr}, with its base, or null. */
        Map.Entry<Long, MLeaf> lookup(long addr) {
            Map.Entry<Long, MLeaf> e = leaves.floorEntry(addr);
            if (e == null || e.getKey() + span(e.getValue().level()) <= addr) return null;
            return e;
        }

        /** Leaves overlapping {@code [lo, hi)}, in address order (a snapshot). */
        List<Map.Entry<Long, MLeaf>> overlapping(long lo, long hi) {
            List<Map.Entry<Long, MLeaf>> out = new ArrayList<>();
            Map.Entry<Long, MLeaf> below = leaves.lowerEntry(lo);
            if (below != null && below.getKey() + span(below.getValue().level()) > lo) out.add(below);
            out.addAll(leaves.subMap(lo, true, hi, false).entrySet());
            return out;
        }

        /** Level where a walk for {@code addr} meets a non-table entry. */
        int entryLevel(long addr) {
            int level = startLevel;
            while (level < 3 && tables[level].contains(addr & -span(level))) level++;
            return level;
        }

        // ---- map ----

        /** @return false if a fault walk was stopped by an unchanged leaf (RACED) */
        boolean map(long ipa, long size, long pa, MLeaf tmpl, boolean forcePte, boolean fault, boolean shared) {
            touch(ipa, ipa + size);
            return mapLevel(startLevel, ipa, ipa + size, ipa, pa, tmpl, forcePte, fault, shared);
        }

        private boolean mapLevel(int level, long lo, long hi, long start, long pa, MLeaf tmpl, boolean forcePte,
                                 boolean fault, boolean shared) {
            long s = span(level);
            for (long b = lo & -s; b < hi; b += s) {
                long a = Math.max(lo, b), e = Math.min(hi, b + s);
                long phys = pa + (a - start);
                boolean fits = geo.leafAllowed(level) && (!forcePte || level == 3) && ((a | phys) & (s - 1)) == 0
                        && hi - a >= s;
                MLeaf nu = tmpl.at(level, phys);
                if (isTable(level, b)) {
                    if (fits) {
                        detachedTables += dropSubtree(level, b);
                        coalesced++;
                        leaves.put(b, nu);
                    } else if (!mapLevel(level + 1, a, e, start, pa, tmpl, forcePte, fault, shared)) {
                        return false;
                    }
                    continue;
                }
                MLeaf old = leaves.get(b);
                if (old != null && old.level() != level) {
                    throw new AssertionError("model: leaf " + old + " at 0x" + Long.toHexString(b) + " met at level " + level);
                }
                if (fits) {
                    if (old != null && old.pa() == nu.pa() && old.af() == nu.af() && old.mem() == nu.mem()
                            && old.sw() == nu.sw()) {
                        // identical, or only R/W/XN differ: left alone (RACED)
                        if (fault) return false;
                        continue;
                    }
                    if (old != null) {
                        boolean swOnly = old.pa() == nu.pa() && old.af() == nu.af() && old.mem() == nu.mem()
                                && old.perms() == nu.perms();
                        if (shared || !swOnly) ipaTlbis++;
                        touchLeaf(b, old);
                    }
                    if (level == 3) owners.remove(b);
                    leaves.put(b, nu);
                } else {
                    if (level == 3) throw new AssertionError("model: no leaf fits at level 3 for 0x" + Long.toHexString(a));
                    if (old != null) {
                        leaves.remove(b);
                        touchLeaf(b, old);
                        ipaTlbis++;
                    }
                    tables[level].add(b);
                    if (!mapLevel(level + 1, a, e, start, pa, tmpl, forcePte, fault, shared)) return false;
                }
            }
            return true;
        }

        /** Removes the table entry at (level, base) and everything under it; returns the table frames dropped. */
        private long dropSubtree(int level, long base) {
            long hi = base + span(level);
            touch(base, hi);
            long n = 1;
            tables[level].remove(base);
            for (int l = level + 1; l < 3; l++) {
                java.util.NavigableSet<Long> sub = tables[l].subSet(base, true, hi, false);
                n += sub.size();
                sub.clear();
            }
            leaves.subMap(base, true, hi, false).clear();
            owners.subMap(base, true, hi, false).clear();
            return n;
        }

        // ---- unmap ----

        void unmap(long lo, long hi) {
            touch(lo, hi);
            unmapLevel(startLevel, lo, hi);
        }

        private void unmapLevel(int level, long lo, long hi) {
            long s = span(level);
            for (long b = lo & -s; b < hi; b += s) {
                if (isTable(level, b)) {
                    unmapLevel(level + 1, Math.max(lo, b), Math.min(hi, b + s));
                    if (subtreeEmpty(level, b)) {
                        tables[level].remove(b);
                        tablesFreed++;
                    }
                    continue;
                }
                MLeaf old = leaves.remove(b);
                if (old != null) {
                    touchLeaf(b, old);
                    leavesRemoved++;
                }
                if (level == 3) owners.remove(b);
            }
        }

        private boolean subtreeEmpty(int level, long b) {
            long hi = b + span(level);
            return leaves.subMap(b, true, hi, false).isEmpty() && owners.subMap(b, true, hi, false).isEmpty()
                    && (level + 1 >= 3 || tables[level + 1].subSet(b, true, hi, false).isEmpty());
        }

        // ---- attribute updates ----

        void wrprotect(long lo, long hi) {
            touch(lo, hi);
            for (Map.Entry<Long, MLeaf> e : overlapping(lo, hi)) {
                touchLeaf(e.getKey(), e.getValue());
                leaves.put(e.getKey(), e.getValue().withPerms(e.getValue().perms() & ~W));
            }
        }

        boolean testClearYoung(long lo, long hi, boolean mkold) {
            touch(lo, hi);
            boolean young = false;
            for (Map.Entry<Long, MLeaf> e : overlapping(lo, hi)) {
                if (!e.getValue().af()) continue;
                young = true;
                if (mkold) {
                    touchLeaf(e.getKey(), e.getValue());
                    leaves.put(e.getKey(), e.getValue().withAf(false));
                }
            }
            return young;
        }

        Status mkyoung(long addr) {
            Map.Entry<Long, MLeaf> e = lookup(addr);
            if (e == null) return Status.NOT_MAPPED;
            touchLeaf(e.getKey(), e.getValue());
            leaves.put(e.getKey(), e.getValue().withAf(true));
            return Status.OK;
        }

        /** Whether the last OK relax took an exec right away (ptlab then broadcasts its TLBI). */
        boolean relaxDowngrade;

        /** @return the status, or null where the table must refuse with EINVAL (nothing changed) */
        Status relax(long addr, int perms) {
            relaxDowngrade = false;
            Map.Entry<Long, MLeaf> e = lookup(addr);
            if (e == null) return Status.NOT_MAPPED;
            MLeaf l = e.getValue();
            if ((perms & (PX | UX)) != 0 && l.mem() != MEM_WB) return null;
            // R/W are only added; the exec field becomes exactly the exec rights given.
            int p = (l.perms() | (perms & (R | W))) & ~(PX | UX) | (perms & (PX | UX));
            relaxDowngrade = (l.perms() & ~p & (PX | UX)) != 0;
            touchLeaf(e.getKey(), l);
            leaves.put(e.getKey(), l.withPerms(p));
            return Status.OK;
        }

        // ---- split ----

        /** @return the frames left in a cache that held {@code cache}; throws ModelEnomem where the table must */
        long split(long lo, long hi, long cache) {
            touch(lo, hi);
            for (Map.Entry<Long, MLeaf> e : overlapping(lo, hi)) {
                if (e.getValue().level() < 3) cache = splitBlock(e.getKey(), lo, hi, cache);
            }
            return cache;
        }

        private long splitBlock(long b, long lo, long hi, long cache) {
            MLeaf old = leaves.get(b);
            MLeaf l = old.rebuilt();
            int level = l.level();
            if (cache < 1) throw new ModelEnomem();
            long s = span(level);
            touchLeaf(b, old);
            leaves.remove(b);
            tables[level].add(b);
            splits++;
            ipaTlbis++;
            if (cache >= fullSplitFrames(level)) {
                cache -= fullSplitFrames(level);
                for (int t = level + 1; t < 3; t++) {
                    for (long k = b; k < b + s; k += span(t)) tables[t].add(k);
                }
                long page = span(3);
                for (long k = b; k < b + s; k += page) leaves.put(k, l.at(3, l.pa() + (k - b)));
                return cache;
            }
            cache -= 1;
            int c = level + 1;
            if (!geo.leafAllowed(c)) throw new AssertionError("model: a partial split of a level-" + level + " block needs level-" + c + " blocks");
            long cs = span(c);
            for (long k = b; k < b + s; k += cs) leaves.put(k, l.at(c, l.pa() + (k - b)));
            // The walk descends into the new table and splits the children it covers.
            if (c < 3) {
                for (long k = Math.max(b, lo) & -cs; k < Math.min(b + s, hi); k += cs) cache = splitBlock(k, lo, hi, cache);
            }
            return cache;
        }

        // ---- annotations ----

        void setOwner(long lo, long hi, int owner) {
            touch(lo, hi);
            ownLevel(startLevel, lo, hi, owner);
        }

        private void ownLevel(int level, long lo, long hi, int owner) {
            long s = span(level);
            for (long b = lo & -s; b < hi; b += s) {
                if (level < 3) {
                    if (!isTable(level, b)) {
                        MLeaf old = leaves.remove(b);
                        if (old != null) {
                            touchLeaf(b, old);
                            ipaTlbis++;
                        }
                        tables[level].add(b);
                    }
                    ownLevel(level + 1, Math.max(lo, b), Math.min(hi, b + s), owner);
                    continue;
                }
                MLeaf old = leaves.remove(b);
                if (old != null) ipaTlbis++;
                if (owner == 0) owners.remove(b);
                else owners.put(b, owner);
            }
        }
    }

    // ------------------------------------------------------------------------------------------

    @Test
    void granule4k() {
        new Run(Granule.G4K, 40, 0, 510L << 30, 4L << 30, OPS).go();
    }

    @Test
    void granule16k() {
        new Run(Granule.G16K, 40, Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI, 62L << 30, 4L << 30, OPS).go();
    }

    @Test
    void granule64k() {
        new Run(Granule.G64K, 48, Stage2PageTable.RANGE_TLBI, (4L << 40) - (3L << 30), 6L << 30, OPS).go();
    }

    /** LPA2 (PA[51:50] in descriptor bits [9:8]); the window crosses 2^50. */
    @Test
    void granule4kIdmap() {
        new Run(Granule.G4K, 52, Stage2PageTable.IDMAP | Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI,
                (1L << 50) - (2L << 30), 4L << 30, IDMAP_OPS).go();
    }

    /** LPA2; the window crosses 2^50. */
    @Test
    void granule16kIdmap() {
        new Run(Granule.G16K, 52, Stage2PageTable.IDMAP, (1L << 50) - (2L << 30), 4L << 30, IDMAP_OPS).go();
    }

    /** 52-bit PA with 64K pages (PA[51:48] in descriptor bits [15:12]); the window crosses 2^48. */
    @Test
    void granule64kIdmap() {
        new Run(Granule.G64K, 52, Stage2PageTable.IDMAP | Stage2PageTable.FWB, (1L << 48) - (3L << 30), 6L << 30,
                IDMAP_OPS).go();
    }

    private static long seed() {
        String s = System.getProperty("ptlab.seed");
        return s != null ? Long.parseLong(s) : new SplittableRandom().nextLong();
    }

    enum Op {
        MAP(20), MAP_OVER(14), COALESCE(7), UNMAP(13), WRPROTECT(8), MKYOUNG(6), CLEAR_YOUNG(7), RELAX(8), SPLIT(6),
        SET_OWNER(6), FLUSH(2), IDMAP_MISMATCH(1), IDMAP_GREEDY(8);

        final int weight;

        Op(int weight) {
            this.weight = weight;
        }
    }

    private final class Run {
        final Granule g;
        final int tableFlags;
        final long winBase;
        final long winSize;
        final int ops;
        final boolean idmap;
        final long seed = seed();
        final SplittableRandom rnd = new SplittableRandom(seed);
        final Fixture f;
        final Stage2PageTable table;
        final Geometry geo;
        final Model m;
        final MemCache splitCache;
        final List<UnlinkedTable> deferred = new ArrayList<>();
        final FreeUnlinkedHook deferHook = (t, s) -> deferred.add(s);
        final long page;
        final long block;
        final long big;
        final int[] opCounts = new int[Op.values().length];
        final int totalWeight;
        boolean forcePte;
        String op = "";
        int i;

        Run(Granule g, int ipaBits, int tableFlags, long winBase, long winSize, int ops) {
            this.g = g;
            this.tableFlags = tableFlags;
            this.winBase = winBase;
            this.winSize = winSize;
            this.ops = ops;
            this.idmap = (tableFlags & Stage2PageTable.IDMAP) != 0;
            f = new Fixture(g, ipaBits, tableFlags, 1L << 30);
            table = f.table;
            geo = table.geometry();
            m = new Model(geo);
            // Capacity 1: a top-up gives exactly the frames asked for (the eager-split cache's
            // capacity is its minimum), so small caches, and ENOMEM, stay reachable.
            splitCache = new MemCache(f.mem, 1);
            page = m.span(3);
            block = m.span(2);
            big = m.span(g == Granule.G4K ? 1 : 2);
            table.setForcePteCallback((a, e, p) -> forcePte);
            int w = 0;
            for (Op o : Op.values()) w += weight(o);
            totalWeight = w;
        }

        int weight(Op o) {
            return (o == Op.IDMAP_MISMATCH || o == Op.IDMAP_GREEDY) && !idmap ? 0 : o.weight;
        }

        Op pick() {
            int r = rnd.nextInt(totalWeight);
            for (Op o : Op.values()) {
                r -= weight(o);
                if (r < 0) return o;
            }
            throw new AssertionError();
        }

        void go() {
            String ctx = "seed " + seed + " (" + g.label() + ", ipa " + geo.iaBits() + " bits, " + geo.oaFormat()
                    + ", table flags " + tableFlags + "; replay with -Dptlab.seed=" + seed + ")";
            long t0 = System.nanoTime();
            int maxLeaves = 0;
            try {
                assertThat(table.framesForFullSplit(g == Granule.G4K ? 1 : 2)).as("framesForFullSplit")
                        .isEqualTo(m.fullSplitFrames(g == Granule.G4K ? 1 : 2));
                for (i = 0; i < ops; i++) {
                    m.beginOp();
                    Op o = pick();
                    opCounts[o.ordinal()]++;
                    switch (o) {
                        case MAP: opMap(); break;
                        case MAP_OVER: opMapOver(); break;
                        case COALESCE: opCoalesce(); break;
                        case UNMAP: opUnmap(); break;
                        case WRPROTECT: opWrprotect(); break;
                        case MKYOUNG: opMkyoung(); break;
                        case CLEAR_YOUNG: opClearYoung(); break;
                        case RELAX: opRelax(); break;
                        case SPLIT: opSplit(); break;
                        case SET_OWNER: opSetOwner(); break;
                        case FLUSH: opFlush(); break;
                        case IDMAP_MISMATCH: opIdmapMismatch(); break;
                        case IDMAP_GREEDY: opIdmapGreedy(); break;
                        default: throw new AssertionError(o);
                    }
                    afterOp();
                    maxLeaves = Math.max(maxLeaves, m.leaves.size());
                }
                op = "final";
                verifyStructure();
                assertThat(f.tlb.conflicts()).as("TLB conflicts").isZero();
                op = "teardown";
                splitCache.release();
                f.destroyAndCheck();
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError(ctx + ", " + op + ": " + e.getMessage(), e);
            }
            StringBuilder sb = new StringBuilder();
            for (Op o : Op.values()) if (opCounts[o.ordinal()] > 0) sb.append(' ').append(o.name().toLowerCase()).append('=').append(opCounts[o.ordinal()]);
            if (opCounts[Op.IDMAP_GREEDY.ordinal()] > 0) {
                sb.append(String.format(" [greedy: %d mapped (%d below the largest level), %d EPERM, %d page fallbacks]", greedyOutcomes[0],
                        greedyOutcomes[3], greedyOutcomes[1], greedyOutcomes[2]));
            }
            System.out.printf("Stage2ModelTest %s%s: seed %d, %d ops (%s), peak %d model leaves, %d ms%n", g.label(),
                    idmap ? " idmap" : "", seed, ops, sb.toString().trim(), maxLeaves, (System.nanoTime() - t0) / 1_000_000);
        }

        // ---- operations ----

        void opMap() {
            long[] r = randomRange();
            long ipa = r[0], size = r[1], pa;
            if (idmap) {
                pa = ipa;
            } else {
                // page-granular PAs only for ranges of up to two blocks, so the model stays small
                int align = rnd.nextInt(size > 2 * block ? 3 : 4);
                long modulus = align < 2 ? big : align == 2 ? block : page;
                pa = (1L << 39) + rnd.nextLong((1L << 38) / big) * big + (ipa & (modulus - 1));
                if (align == 3) pa += page * rnd.nextLong(1, block / page);
            }
            doMap(ipa, size, pa, randomTemplate(), "map");
        }

        /** Map around an existing leaf with its own PA: identical, permission-only, AF/type/SW changes, shrinking. */
        void opMapOver() {
            Map.Entry<Long, MLeaf> e = randomLeaf();
            if (e == null) {
                opMap();
                return;
            }
            long key = e.getKey();
            MLeaf l = e.getValue();
            long ls = m.span(l.level());
            long[] around = Stage2RandomizedTest.aroundLeaf(rnd, key, ls, page, winBase, winSize);
            long ipa = around[0], size = around[1];
            long pa = l.pa() + (ipa - key);
            if (pa < 0) {
                ipa = key;
                size = ls;
                pa = l.pa();
            }
            MLeaf t;
            int k = rnd.nextInt(10);
            if (k < 4) {
                t = mappable(l); // identical (or only AF differs: an old leaf gets replaced)
            } else if (k < 7) {
                t = mappable(l).withPerms(randomPerms(l.mem())); // permission-only
            } else if (k < 8) {
                MLeaf same = mappable(l);
                t = new MLeaf(0, 0, same.perms(), true, same.mem(), (l.sw() + 1 + rnd.nextInt(15)) & 15); // software bits only
            } else {
                t = randomTemplate();
            }
            doMap(ipa, size, pa, t, "map-over");
        }

        /** Map covering a whole table entry's span with an aligned PA, so the table becomes one block. */
        void opCoalesce() {
            List<Integer> levels = new ArrayList<>();
            for (int l = geo.startLevel(); l < 3; l++) if (geo.leafAllowed(l) && !m.tables[l].isEmpty()) levels.add(l);
            if (levels.isEmpty()) {
                opMap();
                return;
            }
            int level = levels.get(rnd.nextInt(levels.size()));
            long s = m.span(level);
            Long b = m.tables[level].ceiling(winBase + rnd.nextLong(winSize));
            if (b == null) b = m.tables[level].first();
            long paB;
            MLeaf t = randomTemplate();
            Map.Entry<Long, MLeaf> inside = m.leaves.ceilingEntry(b);
            if (idmap) {
                paB = b;
            } else {
                paB = (1L << 39) + rnd.nextLong((1L << 38) / s) * s;
                if (inside != null && inside.getKey() < b + s && rnd.nextBoolean()) {
                    long cand = inside.getValue().pa() - (inside.getKey() - b);
                    if (cand >= 0 && (cand & (s - 1)) == 0) paB = cand; // the subtree already mapped congruently
                }
            }
            if (inside != null && inside.getKey() < b + s && rnd.nextBoolean()) t = mappable(inside.getValue());
            long ipa = b, size = s;
            if (rnd.nextInt(3) == 0) {
                long before = page * rnd.nextLong(3), after = page * rnd.nextLong(3);
                if (ipa - before >= winBase && paB - before >= 0) ipa -= before;
                size = Math.min(b + s + after, winBase + winSize) - ipa;
            }
            doMap(ipa, size, paB - (b - ipa), t, "coalescing map");
        }

        void doMap(long ipa, long size, long pa, MLeaf tmpl, String what) {
            int flags = 0;
            int fk = rnd.nextInt(10);
            if (fk < 2) flags = WalkFlags.SHARED;
            else if (fk < 4) flags = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
            else if (fk < 5) flags = WalkFlags.HANDLE_FAULT;
            if (rnd.nextInt(8) == 0) flags |= WalkFlags.SKIP_CMO;
            boolean shared = (flags & WalkFlags.SHARED) != 0, fault = (flags & WalkFlags.HANDLE_FAULT) != 0;
            CoalescePolicy policy = rnd.nextBoolean() ? CoalescePolicy.INSTALL_FIRST : CoalescePolicy.UNMAP_FIRST;
            table.setCoalescePolicy(policy);
            boolean defer = rnd.nextInt(3) == 0;
            table.setFreeUnlinkedHook(defer ? deferHook : FreeUnlinkedHook.IMMEDIATE);
            forcePte = size <= 2 * block && rnd.nextInt(12) == 0;
            Prot prot = protOf(tmpl.perms(), tmpl.mem(), tmpl.sw());
            op = String.format("#%d %s 0x%x+0x%x -> 0x%x %s %s %s%s%s", i, what, ipa, size, pa, prot, WalkFlags.toString(flags),
                    policy, defer ? " deferred-free" : "", forcePte ? " force-pte" : "");
            f.topUpFor(size);
            long coalesced0 = table.counters().coalesced(), window0 = table.counters().invalidWindowSteps();
            long[] tlbi0 = tlbis();
            Status st = table.map(ipa, size, pa, prot, f.cache, flags);
            boolean done = m.map(ipa, size, pa, tmpl, forcePte, fault, shared);
            forcePte = false;
            assertThat(st).as("status").isEqualTo(done ? Status.OK : Status.RACED);
            assertMapAccounting(policy, shared, defer, coalesced0, window0, tlbi0);
        }

        /** Coalescing, invalid-window steps, TLBIs and deferred frees of a map the model has just replayed. */
        void assertMapAccounting(CoalescePolicy policy, boolean shared, boolean defer, long coalesced0, long window0, long[] tlbi0) {
            boolean unmapFirst = policy == CoalescePolicy.UNMAP_FIRST;
            // Exclusive unmap-first frees in the window and flushes the VMID; the shared form breaks
            // like install-first and defers the free, but still walks the subtree inside the window.
            boolean exclusiveUnmapFirst = unmapFirst && !shared;
            assertThat(table.counters().coalesced() - coalesced0).as("coalesced").isEqualTo(m.coalesced);
            long window = table.counters().invalidWindowSteps() - window0;
            if (unmapFirst && m.coalesced > 0) assertThat(window).as("invalid-window steps (unmap-first)").isPositive();
            else assertThat(window).as("invalid-window steps").isZero();
            long tableBreaks = m.coalesced;
            boolean range = (tableFlags & Stage2PageTable.RANGE_TLBI) != 0 && !exclusiveUnmapFirst;
            assertTlbis(tlbi0, m.ipaTlbis, 0, range ? tableBreaks : 0, range ? 0 : tableBreaks);
            if (defer && !exclusiveUnmapFirst) {
                pendingDetached = m.detachedTables;
                pendingSubtrees = m.coalesced;
            }
        }

        /** Table frames and subtrees the deferring hook holds after this operation. */
        long pendingDetached;
        long pendingSubtrees;

        void opUnmap() {
            long[] r = rnd.nextInt(3) == 0 ? leafRange() : randomRange();
            op = String.format("#%d unmap 0x%x+0x%x", i, r[0], r[1]);
            long[] tlbi0 = tlbis();
            table.unmap(r[0], r[1]);
            m.unmap(r[0], r[0] + r[1]);
            boolean deferred = table.fwb() && (tableFlags & Stage2PageTable.RANGE_TLBI) != 0;
            // Deferred: one range TLBI per MAX_TLBI_RANGE_PAGES pages of the range, always.
            long pages = r[1] / page;
            long chunks = (pages + Stage2PageTable.MAX_TLBI_RANGE_PAGES - 1) / Stage2PageTable.MAX_TLBI_RANGE_PAGES;
            assertTlbis(tlbi0, (deferred ? 0 : m.leavesRemoved) + m.tablesFreed, 0, deferred ? chunks : 0, 0);
        }

        void opWrprotect() {
            long[] r = rnd.nextBoolean() ? leafRange() : randomRange();
            long ipa = r[0], size = r[1];
            op = String.format("#%d wrprotect 0x%x+0x%x", i, ipa, size);
            // Stale-TLB check: a write cached before wrprotect still goes through until the caller's TLBI.
            long stale = -1, stalePa = 0;
            if (rnd.nextInt(3) == 0) {
                for (Map.Entry<Long, MLeaf> e : m.overlapping(ipa, ipa + size)) {
                    MLeaf l = e.getValue();
                    if ((l.perms() & W) == 0 || !l.af()) continue;
                    long lo = Math.max(ipa, e.getKey()), hi = Math.min(ipa + size, e.getKey() + m.span(l.level()));
                    stale = lo + rnd.nextLong((hi - lo) / page) * page;
                    stalePa = l.pa() + (stale - e.getKey());
                    long w = f.mmu.translate(stale, Access.WRITE);
                    if (w != stalePa) mismatch("write 0x%x before wrprotect", stale, w, stalePa);
                    break;
                }
            }
            long[] tlbi0 = tlbis();
            table.wrprotect(ipa, size);
            m.wrprotect(ipa, ipa + size);
            assertTlbis(tlbi0, 0, 0, 0, 0);
            if (stale >= 0) {
                long w = f.mmu.translate(stale, Access.WRITE);
                if (w != stalePa || !f.mmu.lastTlbHit()) mismatch("stale write 0x%x after wrprotect, before the TLBI", stale, w, stalePa);
            }
            callerTlbi(ipa, size);
        }

        void opMkyoung() {
            long addr;
            Map.Entry<Long, MLeaf> e = null;
            if (rnd.nextInt(10) < 7) {
                for (int k = 0; k < 8; k++) {
                    e = randomLeaf();
                    if (e == null || !e.getValue().af()) break;
                }
            }
            addr = e != null ? pageIn(e) : randomPage();
            int flags = rnd.nextInt(3) == 0 ? 0 : rnd.nextBoolean() ? WalkFlags.SHARED | WalkFlags.HANDLE_FAULT : WalkFlags.SHARED;
            long arg = addr + rnd.nextLong(page);
            op = String.format("#%d mkyoung 0x%x %s", i, arg, WalkFlags.toString(flags));
            long[] tlbi0 = tlbis();
            Status st = table.mkyoung(arg, flags);
            Status want = m.mkyoung(addr);
            m.touch(addr, addr + page);
            assertThat(st).as("status").isEqualTo(want);
            assertTlbis(tlbi0, 0, 0, 0, 0);
        }

        void opClearYoung() {
            long[] r = rnd.nextBoolean() ? leafRange() : randomRange();
            long ipa = r[0], size = r[1];
            boolean mkold = rnd.nextInt(5) != 0;
            op = String.format("#%d testClearYoung 0x%x+0x%x mkold=%b", i, ipa, size, mkold);
            // Stale-TLB check: an entry cached while young still translates until the TLBI.
            long stale = -1, staleWant = 0;
            if (mkold && rnd.nextInt(3) == 0) {
                for (Map.Entry<Long, MLeaf> e : m.overlapping(ipa, ipa + size)) {
                    MLeaf l = e.getValue();
                    if (!l.af()) continue;
                    long lo = Math.max(ipa, e.getKey()), hi = Math.min(ipa + size, e.getKey() + m.span(l.level()));
                    stale = lo + rnd.nextLong((hi - lo) / page) * page;
                    staleWant = (l.perms() & R) != 0 ? l.pa() + (stale - e.getKey()) : Translation.encodeFault(FaultType.PERMISSION, l.level());
                    long got = f.mmu.translate(stale, Access.READ);
                    if (got != staleWant) mismatch("read 0x%x before mkold", stale, got, staleWant);
                    break;
                }
            }
            long[] tlbi0 = tlbis();
            boolean young = table.testClearYoung(ipa, size, mkold);
            boolean want = m.testClearYoung(ipa, ipa + size, mkold);
            assertThat(young).as("young").isEqualTo(want);
            assertTlbis(tlbi0, 0, 0, 0, 0);
            if (stale >= 0) {
                long got = f.mmu.translate(stale, Access.READ);
                if (got != staleWant || !f.mmu.lastTlbHit()) mismatch("stale read 0x%x after mkold, before the TLBI", stale, got, staleWant);
            }
            // The aging path (clear_flush_young) invalidates; without it the MMU would keep using the young entry.
            if (mkold) callerTlbi(ipa, size);
        }

        void opRelax() {
            Map.Entry<Long, MLeaf> e = rnd.nextInt(10) < 7 ? randomLeaf() : null;
            long addr = e != null ? pageIn(e) : randomPage();
            int perms = rnd.nextInt(16);
            if (e != null && rnd.nextBoolean()) perms |= e.getValue().perms() & (PX | UX); // the union, as a caller should pass
            int flags = rnd.nextBoolean() ? 0 : WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
            Prot prot = protOf(perms, MEM_WB, 0);
            long arg = addr + rnd.nextLong(page);
            op = String.format("#%d relaxPerms 0x%x %s %s", i, arg, prot, WalkFlags.toString(flags));
            long[] tlbi0 = tlbis();
            Status st;
            try {
                st = table.relaxPerms(arg, prot, flags, f.tlb);
            } catch (PageTableException x) {
                if (x.errno() != Errno.EINVAL) throw x;
                st = null; // refused: exec rights on device / non-cacheable memory
            }
            Status want = m.relax(addr, perms);
            m.touch(addr, addr + page);
            assertThat(st).as("status (null: EINVAL)").isEqualTo(want);
            boolean broadcast = want == Status.OK && m.relaxDowngrade;
            assertTlbis(tlbi0, broadcast ? 1 : 0, want == null || broadcast ? 0 : 1, 0, 0);
        }

        void opSplit() {
            long[] r;
            Map.Entry<Long, MLeaf> blk = null;
            if (rnd.nextInt(10) < 6) {
                for (int k = 0; k < 8 && (blk == null || blk.getValue().level() == 3); k++) blk = randomLeaf();
            }
            if (blk != null && blk.getValue().level() < 3) {
                long key = blk.getKey(), ls = m.span(blk.getValue().level());
                long first = rnd.nextLong(ls / page);
                long ipa = key + first * page;
                long size = page * (1 + rnd.nextLong(Math.min(ls / page - first, 64)));
                if (rnd.nextInt(4) == 0) size = Math.min(winBase + winSize, key + ls + block) - ipa;
                r = new long[] {ipa, size};
            } else {
                r = randomRange();
            }
            long ipa = r[0], size = r[1];
            long worst = 0;
            boolean hugeBlock = false;
            for (Map.Entry<Long, MLeaf> e : m.overlapping(ipa, ipa + size)) {
                int l = e.getValue().level();
                worst += m.fullSplitFrames(l);
                if (l < 2) hugeBlock = true;
            }
            long give;
            if (hugeBlock) {
                // A full split of a 4K 1G block is 262144 model pages: usually split it partially.
                give = rnd.nextInt(10) == 0 ? worst : rnd.nextLong(Math.min(worst, 40) + 1);
            } else {
                give = rnd.nextInt(5) != 0 ? worst : rnd.nextLong(worst + 1);
            }
            splitCache.topUp((int) give);
            long avail = splitCache.size();
            op = String.format("#%d split 0x%x+0x%x with %d frames", i, ipa, size, avail);
            long splits0 = table.counters().splits();
            long[] tlbi0 = tlbis();
            boolean enomem = false;
            try {
                table.split(ipa, size, splitCache);
            } catch (PageTableException x) {
                if (x.errno() != Errno.ENOMEM) throw x;
                enomem = true;
            }
            boolean wantEnomem = false;
            long left;
            try {
                left = m.split(ipa, ipa + size, avail);
            } catch (ModelEnomem x) {
                wantEnomem = true;
                left = 0;
            }
            assertThat(enomem).as("ENOMEM").isEqualTo(wantEnomem);
            assertThat(table.counters().splits() - splits0).as("blocks split").isEqualTo(m.splits);
            assertThat((long) splitCache.size()).as("frames left in the split cache").isEqualTo(left);
            assertTlbis(tlbi0, m.ipaTlbis, 0, 0, 0);
            splitCache.release();
        }

        void opSetOwner() {
            long[] r;
            int k = rnd.nextInt(4);
            if (k < 2) {
                long size = page * (1 + rnd.nextLong(16));
                r = new long[] {winBase + rnd.nextLong((winSize - size) / page + 1) * page, size};
            } else if (k < 3) {
                r = leafRange();
            } else {
                Map.Entry<Long, Integer> o = m.owners.ceilingEntry(winBase + rnd.nextLong(winSize));
                long at = o != null ? o.getKey() : randomPage();
                long size = page * (1 + rnd.nextLong(32));
                long ipa = Math.max(winBase, at - page * rnd.nextLong(8));
                r = new long[] {ipa, Math.min(size, winBase + winSize - ipa)};
            }
            if (r[1] > 2 * block) r[1] = 2 * block;
            int owner = rnd.nextInt(4) == 0 ? 0 : 1 + rnd.nextInt(Pte.MAX_OWNER_ID);
            op = String.format("#%d setOwner 0x%x+0x%x owner %d", i, r[0], r[1], owner);
            f.topUpFor(r[1]);
            long[] tlbi0 = tlbis();
            table.setOwner(r[0], r[1], f.cache, owner);
            m.setOwner(r[0], r[0] + r[1], owner);
            assertTlbis(tlbi0, m.ipaTlbis, 0, 0, 0);
        }

        void opFlush() {
            long[] r = rnd.nextBoolean() ? leafRange() : randomRange();
            op = String.format("#%d flush 0x%x+0x%x", i, r[0], r[1]);
            CacheMaintenance cmo = f.mem.cacheMaintenance();
            long ops0 = cmo.dcacheOps(), bytes0 = cmo.dcacheBytes();
            long[] tlbi0 = tlbis();
            table.flush(r[0], r[1]);
            long wantOps = 0, wantBytes = 0;
            if (!table.fwb()) {
                for (Map.Entry<Long, MLeaf> e : m.overlapping(r[0], r[0] + r[1])) {
                    if (e.getValue().mem() != MEM_WB) continue;
                    wantOps++;
                    wantBytes += m.span(e.getValue().level());
                }
            }
            m.touch(r[0], r[0] + r[1]);
            assertThat(cmo.dcacheOps() - ops0).as("D-cache operations").isEqualTo(wantOps);
            assertThat(cmo.dcacheBytes() - bytes0).as("D-cache bytes").isEqualTo(wantBytes);
            assertTlbis(tlbi0, 0, 0, 0, 0);
        }

        /** An IDMAP table refuses ipa != pa, before touching anything. */
        void opIdmapMismatch() {
            long[] r = randomRange();
            op = String.format("#%d idmap map 0x%x+0x%x -> 0x%x (must fail)", i, r[0], r[1], r[0] + page);
            f.topUpFor(r[1]);
            long[] tlbi0 = tlbis();
            try {
                table.map(r[0], r[1], r[0] + page, Prot.RW, f.cache);
                throw new AssertionError("map with pa != ipa on an IDMAP table succeeded");
            } catch (PageTableException x) {
                assertThat(x.errno()).isEqualTo(Errno.EINVAL);
            }
            m.touch(r[0], r[0] + r[1]);
            assertTlbis(tlbi0, 0, 0, 0, 0);
        }

        /**
         * idmapGreedy around an address near the model's leaves or annotations, in a range inside
         * the window (aligned blocks, unaligned bytes, the whole window). Expected result from the
         * model alone, by IdmapGreedyTest's brute-force rule: the first leaf level, largest first,
         * whose aligned block around addr lies in the range and overlaps no pin (a model leaf whose
         * permissions, memory type or software bits differ from the template's, or an owner
         * annotation); none: the page around addr if it is not pinned, even where the range does
         * not hold it whole (the Linux 7.1-rc4 fallback; before: EINVAL), else EPERM with the
         * table unchanged. The block is then replayed as a plain map (flags 0).
         */
        void opIdmapGreedy() {
            long addr;
            MLeaf tmpl = null;
            int k = rnd.nextInt(10);
            Map.Entry<Long, Integer> own = k < 2 ? m.owners.ceilingEntry(winBase + rnd.nextLong(winSize)) : null;
            Map.Entry<Long, MLeaf> near = k >= 2 && k < 7 ? randomLeaf() : null;
            if (own != null) {
                addr = Math.max(winBase, Math.min(winBase + winSize - page, own.getKey() + page * (rnd.nextLong(9) - 4)));
            } else if (near != null) {
                addr = rnd.nextBoolean() ? pageIn(near) : Math.max(winBase, near.getKey() - page * (1 + rnd.nextLong(4)));
                if (rnd.nextBoolean()) tmpl = mappable(near.getValue()); // compatible with that leaf
            } else {
                addr = randomPage();
            }
            addr += rnd.nextLong(page);
            if (tmpl == null) tmpl = randomTemplate();
            int[] levels = IdmapGreedyTest.leafLevels(g);
            long lo, hi, winEnd = winBase + winSize;
            int shape = rnd.nextInt(10);
            if (shape < 4) {
                // aligned: one or a few blocks of a random leaf level around addr
                long s = m.span(levels[rnd.nextInt(levels.length)]);
                lo = Math.max(winBase, (addr & -s) - s * rnd.nextLong(2));
                hi = Math.min(winEnd, (addr & -s) + s * (1 + rnd.nextLong(2)));
            } else if (shape < 9) {
                // unaligned bytes either side, out to random powers of two (sometimes rounded to pages)
                int maxLog = Long.numberOfTrailingZeros(big) + 2;
                lo = Math.max(winBase, addr - rnd.nextLong(1L << rnd.nextInt(maxLog)));
                hi = Math.min(winEnd, addr + 1 + rnd.nextLong(1L << rnd.nextInt(maxLog)));
                if (rnd.nextBoolean()) {
                    lo &= -page;
                    hi = Math.min(winEnd, (hi + page - 1) & -page);
                }
            } else {
                lo = winBase;
                hi = winEnd;
            }
            AddressRange range = new AddressRange(lo, hi);
            Prot prot = protOf(tmpl.perms(), tmpl.mem(), tmpl.sw());

            int expected = -1;
            for (int level : levels) {
                AddressRange b = IdmapGreedyTest.around(g, addr, level);
                if (range.contains(b) && !pinned(b.start(), b.end(), tmpl)) {
                    expected = level;
                    break;
                }
            }
            long pageLo = addr & -page;
            boolean pageInRange = range.contains(new AddressRange(pageLo, pageLo + page));
            boolean pagePinned = pinned(pageLo, pageLo + page, tmpl);
            boolean fallback = expected < 0 && !pageInRange && !pagePinned;
            if (fallback) expected = 3;

            CoalescePolicy policy = rnd.nextBoolean() ? CoalescePolicy.INSTALL_FIRST : CoalescePolicy.UNMAP_FIRST;
            table.setCoalescePolicy(policy);
            boolean defer = rnd.nextInt(3) == 0;
            table.setFreeUnlinkedHook(defer ? deferHook : FreeUnlinkedHook.IMMEDIATE);
            op = String.format("#%d idmapGreedy 0x%x %s in %s %s%s (model: %s)", i, addr, prot, range, policy,
                    defer ? " deferred-free" : "", expected < 0 ? "EPERM" : "level " + expected + (fallback ? " (page fallback)" : ""));
            f.cache.topUp(8);
            Map<Long, List<Long>> before = expected < 0 ? Fixture.snapshot(table) : null;
            long coalesced0 = table.counters().coalesced(), window0 = table.counters().invalidWindowSteps();
            long[] tlbi0 = tlbis();
            AddressRange got;
            try {
                got = table.idmapGreedy(addr, prot, range, f.cache);
            } catch (PageTableException x) {
                assertThat(expected).as("failed (%s), model expects level", x.getMessage()).isEqualTo(-1);
                assertThat(x.errno()).as("errno (%s)", x.getMessage()).isEqualTo(Errno.EPERM);
                assertThat(pagePinned).as("model: addr's page pinned").isTrue();
                assertThat(Fixture.snapshot(table)).as("table unchanged after the failure").isEqualTo(before);
                assertTlbis(tlbi0, 0, 0, 0, 0);
                m.touch(pageLo, pageLo + page);
                greedyOutcomes[1]++;
                return;
            }
            assertThat(expected).as("idmapGreedy returned %s where the model expects EPERM", got).isNotEqualTo(-1);
            if (fallback) greedyOutcomes[2]++;
            assertThat(pagePinned).as("model: addr's page pinned, yet idmapGreedy returned %s", got).isFalse();
            assertThat(got).as("idmapGreedy result").isEqualTo(IdmapGreedyTest.around(g, addr, expected));
            m.map(got.start(), got.size(), got.start(), tmpl, false, false, false);
            assertMapAccounting(policy, false, defer, coalesced0, window0, tlbi0);
            greedyOutcomes[0]++;
            if (expected != levels[0]) greedyOutcomes[3]++;
        }

        /** idmapGreedy outcomes: mapped, EPERM, page fallbacks, mapped below the largest leaf level. */
        final int[] greedyOutcomes = new int[4];

        /** A pin of the model in {@code [lo, hi)}: an annotation, or a leaf with other permissions, type or software bits than {@code t}. */
        boolean pinned(long lo, long hi, MLeaf t) {
            if (!m.owners.subMap(lo, true, hi, false).isEmpty()) return true;
            Map.Entry<Long, MLeaf> below = m.leaves.lowerEntry(lo);
            if (below != null && below.getKey() + m.span(below.getValue().level()) > lo && !compatible(below.getValue(), t)) return true;
            for (MLeaf l : m.leaves.subMap(lo, true, hi, false).values()) {
                if (!compatible(l, t)) return true;
            }
            return false;
        }

        boolean compatible(MLeaf l, MLeaf t) {
            return l.perms() == t.perms() && l.mem() == t.mem() && l.sw() == t.sw();
        }

        /** The invalidation the caller owes after wrprotect / mkold (kvm_tlb_flush_vmid_range). */
        void callerTlbi(long ipa, long size) {
            if ((tableFlags & Stage2PageTable.RANGE_TLBI) != 0) f.tlbs.flushVmidRange(Fixture.VMID, ipa, size);
            else f.tlbs.flushVmid(Fixture.VMID);
        }

        long[] tlbis() {
            return new long[] {f.tlbs.ipaFlushes(), f.tlbs.localIpaFlushes(), f.tlbs.rangeFlushes(), f.tlbs.vmidFlushes(),
                f.tlbs.hypVaFlushes()};
        }

        void assertTlbis(long[] before, long ipa, long local, long range, long vmid) {
            long[] now = tlbis();
            String got = String.format("ipa %d, local %d, range %d, vmid %d, hyp %d", now[0] - before[0], now[1] - before[1],
                    now[2] - before[2], now[3] - before[3], now[4] - before[4]);
            assertThat(got).as("TLBIs issued").isEqualTo(String.format("ipa %d, local %d, range %d, vmid %d, hyp 0", ipa, local, range, vmid));
        }

        // ---- choosing addresses ----

        Map.Entry<Long, MLeaf> randomLeaf() {
            if (m.leaves.isEmpty()) return null;
            Map.Entry<Long, MLeaf> e = m.leaves.ceilingEntry(winBase + rnd.nextLong(winSize));
            return e != null ? e : m.leaves.firstEntry();
        }

        long pageIn(Map.Entry<Long, MLeaf> e) {
            return e.getKey() + rnd.nextLong(m.span(e.getValue().level()) / page) * page;
        }

        long randomPage() {
            return winBase + rnd.nextLong(winSize / page) * page;
        }

        /** A range around an existing leaf (partly covering a block, or spilling over its ends). */
        long[] leafRange() {
            Map.Entry<Long, MLeaf> e = randomLeaf();
            if (e == null) return randomRange();
            long key = e.getKey(), ls = m.span(e.getValue().level());
            long first = rnd.nextLong(ls / page);
            long ipa = key + first * page;
            long size = page * (1 + rnd.nextLong(Math.min(ls / page - first, 64)));
            if (rnd.nextInt(3) == 0) {
                ipa = Math.max(winBase, key - page * rnd.nextLong(4));
                size = Math.min(winBase + winSize, key + ls + page * rnd.nextLong(4)) - ipa;
            }
            return new long[] {ipa, size};
        }

        /** A random range inside the window: a few pages, a few blocks, or (4K) a whole 1G block or two. */
        long[] randomRange() {
            return Stage2RandomizedTest.randomRange(rnd, winBase, winSize, page, block, big);
        }

        /**
         * A map template with a leaf's attributes, young. Exec rights a relax put on a device or
         * non-cacheable leaf are dropped: map refuses such a prot (EINVAL).
         */
        MLeaf mappable(MLeaf l) {
            MLeaf t = l.withAf(true);
            return l.mem() == MEM_WB ? t : t.withPerms(l.perms() & ~(PX | UX));
        }

        int randomPerms(int mem) {
            int k = rnd.nextInt(20);
            int p = k < 5 ? R | W : k < 9 ? R | W | PX | UX : k < 12 ? R : k < 15 ? R | PX | UX : rnd.nextInt(16);
            return mem == MEM_WB ? p : p & ~(PX | UX);
        }

        MLeaf randomTemplate() {
            int k = rnd.nextInt(20);
            int mem = k < 17 ? MEM_WB : k < 19 ? MEM_NC : MEM_DEVICE;
            int sw = rnd.nextInt(4) == 0 ? rnd.nextInt(16) : 0;
            return new MLeaf(0, 0, randomPerms(mem), true, mem, sw);
        }

        Prot protOf(int perms, int mem, int sw) {
            long bits = 0;
            if ((perms & R) != 0) bits |= Prot.R_BIT;
            if ((perms & W) != 0) bits |= Prot.W_BIT;
            if ((perms & PX) != 0) bits |= Prot.PX_BIT;
            if ((perms & UX) != 0) bits |= Prot.UX_BIT;
            if (mem == MEM_NC) bits |= Prot.NORMAL_NC_BIT;
            if (mem == MEM_DEVICE) bits |= Prot.DEVICE_BIT;
            bits |= (long) sw << 55;
            return Prot.of(bits);
        }

        // ---- checking ----

        void afterOp() {
            InvariantChecker.check(table);
            assertThat(tableFrames()).as("table frames in use (incl. %d in subtrees awaiting the deferred free)", pendingDetached)
                    .isEqualTo(m.tableCount() + pendingDetached);
            assertThat((long) deferred.size()).as("subtrees handed to the deferring hook").isEqualTo(pendingSubtrees);
            for (UnlinkedTable s : deferred) table.freeUnlinked(s);
            deferred.clear();
            pendingDetached = 0;
            pendingSubtrees = 0;
            assertThat(tableFrames()).as("table frames in use").isEqualTo(m.tableCount());
            verifyPages();
            if (i % 50 == 49) verifyStructure();
        }

        long tableFrames() {
            return f.mem.framesInUse() - f.baseline - geo.rootPages() - f.cache.size() - splitCache.size();
        }

        void verifyPages() {
            TreeSet<Long> pages = new TreeSet<>();
            // Merge overlapping and adjacent regions first: a thousand page leaves removed one by one is one region.
            m.dirty.sort((a, b) -> Long.compare(a[0], b[0]));
            List<long[]> merged = new ArrayList<>();
            for (long[] r : m.dirty) {
                long lo = Math.max(r[0], winBase), hi = Math.min(r[1], winBase + winSize);
                if (lo >= hi) continue;
                long[] last = merged.isEmpty() ? null : merged.get(merged.size() - 1);
                if (last != null && lo <= last[1]) last[1] = Math.max(last[1], hi);
                else merged.add(new long[] {lo, hi});
            }
            for (long[] r : merged) {
                long lo = r[0], hi = r[1];
                long n = (hi - lo) / page;
                if (n <= 512) {
                    for (long p = lo; p < hi; p += page) pages.add(p);
                } else {
                    for (int k = 0; k < 16; k++) {
                        pages.add(lo + k * page);
                        pages.add(hi - (k + 1) * page);
                    }
                    // both ends of smallest-block chunks: all of them, or 64 random ones
                    long chunk = block, first = lo & -chunk, chunks = (hi - first + chunk - 1) / chunk;
                    for (long k = 0; k < Math.min(chunks, 64); k++) {
                        long c = first + (chunks <= 64 ? k : rnd.nextLong(chunks)) * chunk;
                        if (c >= lo) pages.add(c);
                        if (c + chunk - page >= lo && c + chunk <= hi) pages.add(c + chunk - page);
                    }
                    for (int k = 0; k < 256; k++) pages.add(lo + rnd.nextLong(n) * page);
                }
            }
            for (int k = 0; k < 16; k++) pages.add(randomPage());
            for (long p : pages) checkPage(p, p + rnd.nextLong(page));
        }

        void checkPage(long p, long addr) {
            Map.Entry<Long, MLeaf> e = m.lookup(p);
            Leaf got = table.getLeaf(addr);
            if (e == null) {
                int level = m.entryLevel(p);
                long want = Translation.encodeFault(FaultType.TRANSLATION, level);
                for (Access a : Access.values()) {
                    long r = f.mmu.translate(addr, a);
                    if (r != want) mismatch(a.label() + " 0x%x (unmapped)", addr, r, want);
                }
                int owner = m.owners.getOrDefault(p, 0);
                if (owner != 0 && level != 3) throw new AssertionError("model: owner annotation on 0x" + Long.toHexString(p) + " above level 3");
                long wantPte = (long) owner << 2; // owner id in bits [9:2] of an invalid entry (§2.7)
                if (got.pte() != wantPte || got.level() != level || Pte.owner(got.pte()) != owner) {
                    throw new AssertionError(String.format("getLeaf(0x%x) = %s (owner %d), model expects pte 0x%x at level %d (owner %d)",
                            addr, got, Pte.owner(got.pte()), wantPte, level, owner));
                }
                return;
            }
            MLeaf l = e.getValue();
            long pa = l.pa() + (addr - e.getKey());
            long wantPte = expectedPte(l);
            if (got.pte() != wantPte || got.level() != l.level()) {
                throw new AssertionError(String.format("getLeaf(0x%x) = %s, model expects 0x%x at level %d (leaf 0x%x %s)", addr, got,
                        wantPte, l.level(), e.getKey(), l));
            }
            checkAccess(addr, Access.READ, l, pa, (l.perms() & R) != 0, e.getKey());
            checkAccess(addr, Access.WRITE, l, pa, (l.perms() & W) != 0, e.getKey());
            checkAccess(addr, Access.EXEC, l, pa, (l.perms() & PX) != 0, e.getKey());
        }

        void checkAccess(long addr, Access a, MLeaf l, long pa, boolean allowed, long base) {
            long want = !l.af() ? Translation.encodeFault(FaultType.ACCESS_FLAG, l.level())
                    : allowed ? pa : Translation.encodeFault(FaultType.PERMISSION, l.level());
            long r = f.mmu.translate(addr, a);
            if (r != want) mismatch(a.label() + " 0x%x (leaf 0x" + Long.toHexString(base) + " " + l + ")", addr, r, want);
            if (f.mmu.lastLevel() != l.level()) {
                throw new AssertionError(String.format("%s 0x%x: level %d, model expects %d (leaf 0x%x %s)", a.label(), addr,
                        f.mmu.lastLevel(), l.level(), base, l));
            }
        }

        /** The descriptor the model expects for a leaf (§2.3), built here rather than by the code under test. */
        long expectedPte(MLeaf l) {
            long memattr = l.mem() == MEM_NC ? 0x5 : l.mem() == MEM_DEVICE ? 0x1 : table.fwb() ? 0x6 : 0xF;
            long v = geo.encodeAddress(l.pa()) | memattr << 2;
            if ((l.perms() & R) != 0) v |= 1L << 6;
            if ((l.perms() & W) != 0) v |= 1L << 7;
            boolean px = (l.perms() & PX) != 0, ux = (l.perms() & UX) != 0;
            long xn = px && ux ? 0 : ux ? 1 : px ? 3 : 2;
            v |= xn << 53;
            if (geo.oaFormat().hasShareabilityField()) v |= 3L << 8;
            if (l.af()) v |= 1L << 10;
            v |= (long) l.sw() << 55;
            v |= l.level() == 3 ? 3 : 1;
            return v;
        }

        void mismatch(String what, long addr, long got, long want) {
            throw new AssertionError(String.format(what, addr) + ": MMU gave " + Fixture.describe(got) + " (TLB hit "
                    + f.mmu.lastTlbHit() + "), model expects " + Fixture.describe(want));
        }

        /**
         * The window's table entries, leaves and annotations, found by a software walk, equal the
         * model's: compared in address order as the walk meets them.
         */
        void verifyStructure() {
            Iterator<Map.Entry<Long, MLeaf>> leaves = m.leaves.entrySet().iterator();
            Iterator<Map.Entry<Long, Integer>> owners = m.owners.entrySet().iterator();
            long[] tablesSeen = {0};
            table.walk(winBase, winSize, (ctx, v) -> {
                long base = ctx.entryBase(), old = ctx.old();
                int level = ctx.level();
                if (v == Visit.TABLE_PRE) {
                    if (!m.isTable(level, base)) {
                        throw new AssertionError(String.format("table entry at 0x%x level %d is not in the model", base, level));
                    }
                    tablesSeen[0]++;
                } else if (Pte.isValid(old)) {
                    Map.Entry<Long, MLeaf> e = leaves.hasNext() ? leaves.next() : null;
                    if (e == null || e.getKey() != base || e.getValue().level() != level || expectedPte(e.getValue()) != old) {
                        throw new AssertionError(String.format("leaf 0x%x L%d 0x%x in the table, model's next leaf is %s", base, level, old,
                                e == null ? "none" : String.format("0x%x %s = 0x%x", e.getKey(), e.getValue(), expectedPte(e.getValue()))));
                    }
                } else if (old != 0) {
                    Map.Entry<Long, Integer> e = owners.hasNext() ? owners.next() : null;
                    if (e == null || e.getKey() != base || level != 3 || old != (long) e.getValue() << 2) {
                        throw new AssertionError(String.format("invalid entry 0x%x at 0x%x L%d in the table, model's next annotation is %s",
                                old, base, level, e == null ? "none" : String.format("owner %d at 0x%x", e.getValue(), e.getKey())));
                    }
                }
                return Status.OK;
            }, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
            if (leaves.hasNext()) throw new AssertionError("model leaf " + leaves.next() + " is missing from the table");
            if (owners.hasNext()) throw new AssertionError("model annotation " + owners.next() + " is missing from the table");
            assertThat(tablesSeen[0]).as("table entries in the window").isEqualTo(m.tableCount());
        }
    }
}
