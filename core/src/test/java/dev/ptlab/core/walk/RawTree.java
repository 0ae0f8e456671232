package dev.ptlab.core.walk;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.PhysicalMemory;
import java.util.ArrayList;
import java.util.List;

/**
 * A hand-built 4K/40-bit stage-2 tree for walker tests: two concatenated level-1 root frames,
 * a level-2 table under root entry 0 (IPA [0, 1G)) and a level-3 table under its entry 0 (IPA
 * [0, 2M)), so level-3 entry {@code i} maps IPA {@code i * 4K} and level-2 entry {@code j}
 * maps {@code j * 2M}. Every table's count is kept at 1 (allocation) + its non-zero entries, as
 * a stage-2 table counts them. Entries are written straight into the frames; the walk under
 * test is the only code that changes them afterwards. Test support.
 */
final class RawTree {
    static final FrameAccess FRAMES = FrameAccess.grant();
    static final Geometry GEO = Geometry.stage2(Granule.G4K, 40);
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long MEM_BASE = 0x10_0000_0000L;
    /** Attribute bits of the leaves written here (S2AP_R, AF): any valid leaf will do. */
    static final long ATTR = Stage2Descriptor.S2AP_R | Stage2Descriptor.AF;

    final PhysicalMemory mem;
    final long root;
    final long l2;
    final long l3;

    RawTree(boolean checking) {
        mem = new PhysicalMemory(MEM_BASE, 8L << 20, Granule.G4K, checking);
        root = mem.allocateContiguous(GEO.rootPages());
        l2 = mem.allocate();
        l3 = mem.allocate();
        set(root, 0, Stage2Descriptor.table(GEO, l2));
        set(l2, 0, Stage2Descriptor.table(GEO, l3));
    }

    long[] frame(long tablePa) {
        return FRAMES.frame(mem, tablePa);
    }

    /** Writes a non-zero entry into a zero slot and takes the reference it holds. */
    void set(long tablePa, int idx, long pte) {
        frame(tablePa)[idx] = pte;
        mem.getExclusive(tablePa);
    }

    /** A page at level 3 (a block above) mapping {@code pa}. */
    static long leaf(long pa, int level) {
        return Stage2Descriptor.leaf(GEO, pa, ATTR, level);
    }

    /** Level-3 pages at {@code from..to-1}, page i mapping {@code pa + i * 4K}. */
    void pages(int from, int to, long pa) {
        for (int i = from; i < to; i++) set(l3, i, leaf(pa + i * K4, 3));
    }

    /** Level-2 entries 1 and 2 blocks (PA 0x4000_0000, 0x4020_0000), entry 3 a new empty level-3 table, whose PA it returns. */
    long blocksThenTable() {
        long table = mem.allocate();
        set(l2, 1, leaf(0x4000_0000L, 2));
        set(l2, 2, leaf(0x4020_0000L, 2));
        set(l2, 3, Stage2Descriptor.table(GEO, table));
        return table;
    }

    Status walk(long addr, long size, Visitor v) {
        return Walker.walk(GEO, mem, root, Walk.range(addr, size).flags(WalkFlags.LEAF), v);
    }

    /** A visitor that hands one leaf run (the first offered at {@code level}/{@code index}) to an action, and records every LEAF visit. */
    static final class Probe implements LeafRunVisitor {
        interface Action {
            String act(VisitContext ctx);
        }

        private final int level;
        private final int index;
        private final Action action;
        /** What the action returned (null if the run was never offered). */
        String result;
        /** LEAF visits as "L{level}[{index}]". */
        final List<String> visits = new ArrayList<>();

        Probe(int level, int index, Action action) {
            this.level = level;
            this.index = index;
            this.action = action;
        }

        @Override
        public void visitLeafRun(VisitContext ctx) {
            if (result == null && ctx.level() == level && ctx.index() == index) result = action.act(ctx);
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            visits.add("L" + ctx.level() + "[" + ctx.index() + "]");
            return Status.OK;
        }
    }

    /** "n=.. index=.. addr=0x.. old=0x..": what a run operation returned and where it left the context. */
    static String state(int n, VisitContext ctx) {
        return state(n, ctx.index(), ctx.addr(), ctx.old());
    }

    static String state(int n, int index, long addr, long old) {
        return "n=" + n + " index=" + index + " addr=0x" + Long.toHexString(addr) + " old=0x" + Long.toHexString(old);
    }

    /** LEAF visits "L{level}[from]" .. "L{level}[to-1]". */
    static List<String> visits(int level, int from, int to) {
        List<String> out = new ArrayList<>();
        for (int i = from; i < to; i++) out.add("L" + level + "[" + i + "]");
        return out;
    }
}
