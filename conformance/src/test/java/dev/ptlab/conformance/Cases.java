package dev.ptlab.conformance;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The tables the conformance test walks: for every granule and input size, a hand-written edge
 * table and a seeded random one, for stage-2 and for hyp.
 *
 * <p>Edge tables hold, for their geometry: a block at every level the granule allows (and a
 * read-only and an AF=0 one), pages with every access combination (rw, r, w, none, rx, x, rwx,
 * device, non-cacheable), an AF=0 page, owner-annotated invalid entries, a hole, the reserved
 * level-3 encoding (valid with type 0), a block descriptor at every level above the granule's
 * block levels (a 52-bit-only block where LPA2/LPA allows it, otherwise an invalid encoding), output
 * addresses at and just below 2^PS when PS is smaller than 48 (address-size faults), the last page
 * below the input size, and addresses just outside it. Random tables come from seeded sequences
 * of the library's operations.
 */
final class Cases {
    private Cases() {}

    static final int[] SIZES = {32, 36, 40, 42, 44, 48, 52};
    static final int ADDRESSES = 500;
    /** Hyp VAs the probe needs identity-mapped: random hyp operations keep out of it. */
    static final long RESERVED = 0x4000_0000L, RESERVED_SIZE = 16L << 20;

    static Geometry geometry(boolean stage2, Granule g, int bits) {
        return stage2 ? Geometry.stage2(g, bits) : Geometry.hyp(g, bits);
    }

    /** PS for an edge table: small enough to reach address-size faults where the format allows. */
    static int edgePaBits(Geometry g) {
        if (g.oaFormat() != OutputAddressFormat.PA48) return 52;
        if (g.stage() == dev.ptlab.core.arch.Stage.STAGE2) return Math.max(32, g.iaBits()); // PS >= IPA size
        return 40;
    }

    /** An output address inside the PS space for the {@code k}-th thing of {@code size} bytes. */
    static long oa(int paBits, int k, long size) {
        long limit = 1L << paBits;
        long base = (limit >>> 1) + (limit >>> 2); // 3/4 of the space: sets PA[51:50] with 52 bits
        long pa = base + (long) k * size;
        if (pa + size > limit) pa = (limit >>> 1) + ((long) k * size) % (limit >>> 2);
        return pa & -size;
    }

    static long leafDescriptor(TableCase c, long pa, String prot, int level) {
        if (c.stage2) {
            return Stage2Descriptor.leaf(c.g, pa, Stage2Descriptor.attributes(Prot.parse(prot), false, c.g.oaFormat()), level);
        }
        return HypDescriptor.leaf(c.g, pa, HypDescriptor.attributes(Prot.parse(prot), c.g.oaFormat()), level);
    }

    /** The identity mappings the probe runs from when a hyp table is live. */
    static void probeWindow(TableCase c) {
        if (!c.map(Qemu.CODE, Qemu.CODE_WINDOW, Qemu.CODE, "rx") || !c.map(Qemu.DATA, Qemu.DATA_WINDOW, Qemu.DATA, "rw")) {
            throw new IllegalStateException(c + ": cannot map the probe's window");
        }
        c.span(Qemu.CODE, Qemu.CODE_WINDOW, 0x800);
        c.span(Qemu.DATA, Qemu.DATA_WINDOW, 0x1000);
        c.features.add("probe window (identity rx + rw)");
    }

    // ---- hand-written edge tables ----

    static TableCase edge(boolean stage2, Granule gran, int bits, long seed) {
        Geometry g = geometry(stage2, gran, bits);
        int ps = edgePaBits(g);
        TableCase c = new TableCase((stage2 ? "stage2" : "hyp") + " edge " + gran.label() + "/" + bits, g, ps);
        if (!stage2) probeWindow(c);
        long top = c.top(), page = c.page();
        int minLeaf = Math.max(g.startLevel(), gran.minBlockLevel());
        long cur = top / 2;
        int k = 0;
        String rw = "rw", ro = "r";
        // Blocks at every level the granule allows, then a read-only and an AF=0 level-2 block.
        for (int level = minLeaf; level <= 2; level++) {
            long size = c.level(level);
            cur = (cur + size - 1) & -size;
            c.map(cur, size, oa(ps, ++k, size), level == 2 ? (stage2 ? "rwx" : "rx") : rw);
            c.features.add("block L" + level);
            c.span(cur, size, size / 2 + 0x123);
            cur += size;
        }
        long b2 = c.level(2);
        c.map(cur, b2, oa(ps, ++k, b2), ro);
        c.span(cur, b2, 0x10);
        cur += b2;
        c.map(cur, b2, oa(ps, ++k, b2), rw);
        clearAf(c, cur, 2);
        c.features.add("AF=0 block");
        c.span(cur, b2, 0x2000);
        cur += b2;
        // Pages with every access combination the table kind takes, a hole, AF=0, annotations.
        String[] prots = stage2 ? new String[] {"rw", "r", "w", "none", "rx", "x", "rwx", "rw+device", "r+nc", "rw+sw2"}
                : new String[] {"rw", "r", "rx", "r+device", "rw+nc", "r+sw3"};
        for (String p : prots) {
            c.map(cur, page, oa(ps, ++k, page), p);
            c.features.add("page " + p);
            c.span(cur, page, page / 2);
            cur += page;
        }
        cur += page; // a hole
        c.map(cur, page, oa(ps, ++k, page), rw);
        clearAf(c, cur, 3);
        c.features.add("AF=0 page");
        c.span(cur, page, 8);
        cur += page;
        annotate(c, cur, 2, 0x2A);
        c.span(cur, 2 * page, page);
        cur += 2 * page;
        c.map(cur, page, oa(ps, ++k, page), rw);
        c.poke(cur, 3, old -> old & ~Pte.TYPE); // valid, type 0 at level 3: reserved
        c.features.add("reserved L3 encoding");
        c.span(cur, page, 0x40);
        cur += page;
        // Output addresses at and just below 2^PS.
        if (ps < g.paBits()) {
            long limit = 1L << ps;
            c.map(cur, page, limit - page, rw);
            c.map(cur + page, page, limit, rw);
            c.map(cur + 2 * page, page, limit + (5L << 30), ro);
            c.span(cur, 3 * page, page);
            c.features.add("OA at/above 2^PS (address-size)");
            long blockAt = (cur + 3 * page + b2 - 1) & -b2;
            if (blockAt + b2 <= top - b2) { // room left (the last level-2 entry is the top page's)
                cur = blockAt;
                c.map(cur, b2, limit, rw);
                c.span(cur, b2, b2 / 3);
                c.features.add("block OA at 2^PS");
                cur += b2;
            } else {
                cur += 3 * page;
            }
        }
        // Block descriptors at the levels above the granule's block levels.
        long region = top / 4;
        for (int level = g.startLevel(); level < gran.minBlockLevel(); level++) {
            long size = c.level(level);
            long at = region;
            region /= 2;
            if ((at & (size - 1)) != 0 || at + size > top / 2) continue;
            if (level > g.startLevel()) {
                long parent = c.level(level - 1);
                if ((at & (parent - 1)) != 0 || size * 2 > parent) continue;
                c.map(at + size, page, oa(ps, ++k, page), ro); // makes tables down to `level`
                c.span(at + size, page, 0);
            }
            long pa = Math.max(0, oa(ps, 1, size));
            long d = leafDescriptor(c, pa, rw, level);
            c.poke(at, level, old -> d);
            c.features.add((g.hardwareLeafAllowed(level) ? "52-bit-only block L" : "block at disallowed level L") + level);
            c.span(at, size, size / 2 + page);
        }
        // The last page below the input size, and addresses just outside it.
        c.map(top - page, page, oa(ps, ++k, page), ro);
        c.span(top - page, page, 8);
        outside(c, 4);
        c.add(0);
        fill(c, new SplittableRandom(seed), new long[] {top / 2, cur - top / 2, top / 4, top / 4});
        return c;
    }

    static void clearAf(TableCase c, long addr, int level) {
        long af = c.stage2 ? Stage2Descriptor.AF : HypDescriptor.AF;
        c.poke(addr, level, old -> old & ~af);
    }

    static void annotate(TableCase c, long addr, int pages, int owner) {
        long page = c.page();
        if (c.stage2) {
            c.cache.topUp(16);
            c.s2.setOwner(addr, pages * page, c.cache, owner);
        } else {
            // The hyp table has no annotations of its own: an invalid entry with owner bits set.
            c.map(addr, pages * page, oa(40, 7, page), "r");
            for (int i = 0; i < pages; i++) c.poke(addr + i * page, 3, old -> Pte.ownerAnnotation(owner));
        }
        c.features.add("annotated invalid entries");
    }

    /** Addresses just outside the input size (not for 52-bit stage-2: see ConformanceTest). */
    static void outside(TableCase c, int n) {
        long top = c.top();
        c.add(top - 1);
        if (c.stage2 && c.g.iaBits() >= 52) return;
        c.features.add("addresses just outside the input size");
        for (int i = 0; i < n; i++) c.add(top + (long) i * c.page() + (i == 1 ? 0x123 : 0));
    }

    /**
     * Tops the address list up to {@link #ADDRESSES}: around existing entries of the windows
     * (pairs of start and length), their edges, and anywhere in the input range.
     */
    static void fill(TableCase c, SplittableRandom rnd, long[] windows) {
        long top = c.top();
        List<long[]> entries = new java.util.ArrayList<>();
        for (int i = 0; i < windows.length; i += 2) {
            long s = Math.max(0, Math.min(windows[i], top - c.page())), len = Math.max(c.page(), Math.min(windows[i + 1], top - s));
            entries.addAll(c.entries(s, len, 20_000));
        }
        int guard = 0;
        while (c.addresses.size() < ADDRESSES && guard++ < 100 * ADDRESSES) {
            int k = rnd.nextInt(100);
            if (k < 60 && !entries.isEmpty()) {
                long[] e = entries.get(rnd.nextInt(entries.size()));
                c.add(e[0] + rnd.nextLong(e[1]));
            } else if (k < 70 && !entries.isEmpty()) {
                long[] e = entries.get(rnd.nextInt(entries.size()));
                c.add(rnd.nextBoolean() ? e[0] - 1 - rnd.nextLong(16) : e[0] + e[1] + rnd.nextLong(16));
            } else if (k < 90) {
                int w = 2 * rnd.nextInt(windows.length / 2);
                long s = Math.min(windows[w], top - 1), len = Math.max(1, Math.min(windows[w + 1], top - s));
                c.add(s + rnd.nextLong(len));
            } else {
                c.add(rnd.nextLong(top));
            }
        }
        c.addresses.removeIf(a -> c.stage2 && c.g.iaBits() >= 52 && a >= top);
    }

    // ---- random tables ----

    static TableCase random(boolean stage2, Granule gran, int bits, long seed) {
        Geometry g = geometry(stage2, gran, bits);
        int ps = g.paBits();
        TableCase c = new TableCase((stage2 ? "stage2" : "hyp") + " random " + gran.label() + "/" + bits + " seed " + seed, g, ps);
        if (!stage2) probeWindow(c);
        SplittableRandom rnd = new SplittableRandom(seed);
        long top = c.top(), page = c.page(), b2 = c.level(2);
        long winSize = Math.min(top / 4, gran == Granule.G16K ? 512L << 20 : 4L << 30);
        long[] wins = {0, top / 2, top - winSize};
        boolean l1Blocks = Math.max(g.startLevel(), gran.minBlockLevel()) <= 1;
        String[] prots = stage2 ? new String[] {"rw", "r", "w", "none", "rx", "x", "rwx", "rw+device", "r+nc", "rw+sw0"}
                : new String[] {"r", "rw", "rx", "r+device", "rw+nc", "r+sw1"};
        for (int op = 0; op < 60; op++) {
            long win = wins[rnd.nextInt(wins.length)];
            long size;
            long align;
            int shape = rnd.nextInt(100);
            if (shape < 45) {
                size = page * (1 + rnd.nextLong(16));
                align = page;
            } else if (shape < 75 && winSize >= 2 * b2) {
                size = b2 * (1 + rnd.nextLong(2));
                align = b2;
            } else if (shape < 85 && l1Blocks && winSize >= 2 * c.level(1)) {
                size = c.level(1);
                align = size;
            } else {
                size = page * (1 + rnd.nextLong(64));
                align = page;
            }
            long ia = win + rnd.nextLong((winSize - size) / align + 1) * align;
            if (align > page && rnd.nextInt(4) == 0 && ia + size + page <= win + winSize) ia += page * (1 + rnd.nextLong(8));
            if (!stage2 && ia < RESERVED + RESERVED_SIZE && ia + size > RESERVED) continue;
            long pa = randomPa(rnd, ps, ia, size, align, page);
            int what = rnd.nextInt(100);
            if (stage2) {
                stage2Op(c, rnd, what, ia, size, pa, prots);
            } else {
                hypOp(c, rnd, what, ia, size, pa, prots);
            }
        }
        c.features.add("random operations");
        for (long w : wins) c.add(w);
        outside(c, 3);
        long[] windows = {wins[0], winSize, wins[1], winSize, wins[2], winSize};
        fill(c, rnd, windows);
        return c;
    }

    static long randomPa(SplittableRandom rnd, int ps, long ia, long size, long align, long page) {
        long limit = 1L << ps;
        long pa;
        if (rnd.nextBoolean()) {
            // congruent with the IPA modulo the alignment: blocks fit
            pa = (ia + rnd.nextLong(1L << Math.min(ps - 2, 40)) * align) & (limit - 1) & -page;
        } else {
            pa = rnd.nextLong(Math.max(1, (limit >>> (ps > 48 && rnd.nextBoolean() ? 0 : 4)) / page)) * page;
        }
        if (pa + size > limit) pa = (limit - size) & -Math.max(align, page);
        return pa;
    }

    private static void stage2Op(TableCase c, SplittableRandom rnd, int what, long ia, long size, long pa, String[] prots) {
        long page = c.page();
        try {
            if (what < 40) {
                c.map(ia, size, pa, prots[rnd.nextInt(prots.length)]);
            } else if (what < 50) {
                c.s2.unmap(ia, size);
            } else if (what < 58) {
                c.s2.wrprotect(ia, size);
                c.features.add("wrprotect");
            } else if (what < 66) {
                c.s2.testClearYoung(ia, size, true);
                c.features.add("mkold (AF=0)");
            } else if (what < 72) {
                c.s2.mkyoung(ia);
            } else if (what < 78) {
                c.s2.relaxPerms(ia, Prot.parse(new String[] {"r", "w", "rw", "rx", "x"}[rnd.nextInt(5)]));
                c.features.add("relax");
            } else if (what < 88) {
                c.cache.topUp(16);
                c.s2.setOwner(ia, Math.min(size, 32 * page), c.cache, 1 + rnd.nextInt(255));
                c.features.add("annotated invalid entries");
            } else {
                c.cache.topUp(32);
                c.s2.split(ia, size, c.cache);
                c.features.add("split");
            }
        } catch (PageTableException e) {
            if (e.errno() != Errno.ENOMEM) throw e; // a split out of frames leaves a valid table
        }
    }

    private static void hypOp(TableCase c, SplittableRandom rnd, int what, long ia, long size, long pa, String[] prots) {
        if (what < 55) {
            c.map(ia, size, pa, prots[rnd.nextInt(prots.length)]);
        } else if (what < 70) {
            c.hyp.unmap(ia, size);
        } else {
            // Raw edits the hyp table has no operation for: AF=0 leaves, annotated invalid entries.
            List<long[]> e = c.entries(ia, size, 64);
            e.removeIf(x -> !Pte.isValid(x[2]) || (x[0] < RESERVED + RESERVED_SIZE && x[0] + x[1] > RESERVED));
            if (e.isEmpty()) return;
            long[] pick = e.get(rnd.nextInt(e.size()));
            int level = levelOf(c, pick[1]);
            if (what < 85) {
                clearAf(c, pick[0], level);
                c.features.add("AF=0 leaves");
            } else {
                int owner = 1 + rnd.nextInt(255);
                c.poke(pick[0], level, old -> Pte.ownerAnnotation(owner));
                c.features.add("annotated invalid entries");
            }
        }
    }

    static int levelOf(TableCase c, long span) {
        for (int l = Granule.FIRST_LEVEL; l <= Granule.LAST_LEVEL; l++) if (c.level(l) == span) return l;
        throw new IllegalArgumentException("no level maps 0x" + Long.toHexString(span));
    }
}
