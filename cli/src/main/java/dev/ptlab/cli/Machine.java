package dev.ptlab.cli;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.io.PrintWriter;
import java.util.List;

/**
 * Runs parsed scenario commands against one table: physical memory for its frames, a memory
 * cache topped up before each stage-2 map, a TLB system with one CPU's TLB, and that CPU's MMU
 * for translate and expect.
 *
 * <p>With an output writer every command prints its result; without one the run is silent.
 * Failed expectations go to the error writer and are counted; every other problem ends the run
 * with a {@link ScenarioException}.
 */
final class Machine {
    private final String file;
    private final PrintWriter out;
    private final PrintWriter err;

    private Step.Table spec;
    private PhysicalMemory memory;
    private TlbSystem tlbs;
    private Tlb tlb;
    private Mmu mmu;
    private PageTable table;
    private Stage2PageTable stage2;
    private HypPageTable hyp;
    private MemCache cache;
    private boolean fwb;

    private int commands;
    private int passed;
    private int failed;

    /**
     * @param out where command results go, or null to run silently
     * @param err where failed expectations go
     */
    Machine(String file, PrintWriter out, PrintWriter err) {
        this.file = file;
        this.out = out;
        this.err = err;
    }

    int failed() { return failed; }

    void run(List<Step> script) throws ScenarioException {
        for (Step c : script) {
            try {
                execute(c);
            } catch (PageTableException e) {
                throw ScenarioException.at(file, c.line(), verb(c) + " failed: " + e.getMessage(), expectedFor(c, e.errno()));
            } catch (RuntimeException e) {
                // A broken invariant or a library bug: still name the line that triggered it.
                throw new ScenarioException(file + ":" + c.line() + ": " + verb(c) + " failed: " + e
                        + "; expected the operation to succeed", e);
            }
            commands++;
        }
        if (table == null) {
            throw new ScenarioException(file + ": no table line; expected a \"stage2 ...\" or \"hyp ...\" line");
        }
    }

    private static String verb(Step c) {
        if (c instanceof Step.Table) return ((Step.Table) c).stage2() ? "stage2" : "hyp";
        return c.getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT);
    }

    private String expectedFor(Step c, Errno errno) {
        Geometry g = spec == null ? null : spec.geometry();
        String gran = g == null ? "" : " to the " + g.granule().label() + " granule";
        switch (errno) {
            case EINVAL:
                if (c instanceof Step.Map) {
                    return addrName() + ", SIZE and PA aligned" + gran + " and a prot the " + TableDump.kind(g) + " table accepts";
                }
                if (c instanceof Step.Unmap) return addrName() + " and SIZE aligned" + gran;
                if (c instanceof Step.Table) return "mem-base= and mem-size= aligned" + gran;
                return "valid arguments";
            case ERANGE:
                return "a range inside the " + g.iaBits() + "-bit " + addrName() + " space [0, " + Numbers.hex(g.iaLimit()) + ")";
            case ENOMEM:
                return "the tables to fit in table memory (raise mem-size= on the table line)";
            case EEXIST:
                return "no live mapping in the way (hyp map never replaces one: unmap it first)";
            default:
                return "the operation to succeed";
        }
    }

    private String addrName() {
        return spec != null && !spec.stage2() ? "VA" : "IPA";
    }

    private void print(String s) {
        if (out != null) out.println(s);
    }

    private void execute(Step c) {
        if (c instanceof Step.Table) {
            create((Step.Table) c);
        } else if (c instanceof Step.Map) {
            map((Step.Map) c);
        } else if (c instanceof Step.Unmap) {
            unmap((Step.Unmap) c);
        } else if (c instanceof Step.Translate) {
            Step.Translate t = (Step.Translate) c;
            print("translate " + describe(translate(t.addr(), t.access())));
        } else if (c instanceof Step.Expect) {
            expect((Step.Expect) c);
        } else if (c instanceof Step.Leaf) {
            long addr = ((Step.Leaf) c).addr();
            Leaf leaf = table.getLeaf(addr);
            print("leaf " + Describe.leaf(spec.geometry(), fwb, addr, leaf.pte(), leaf.level()));
        } else if (c instanceof Step.Dump) {
            if (out != null) dump(out);
        } else {
            throw new IllegalStateException("unhandled command " + c);
        }
    }

    private void create(Step.Table t) {
        spec = t;
        Geometry g = t.geometry();
        memory = new PhysicalMemory(t.memBase(), t.memSize(), g.granule(), t.checking());
        tlbs = new TlbSystem();
        tlb = new Tlb("cpu0", g.granule());
        tlbs.register(tlb);
        if (t.stage2()) {
            stage2 = new Stage2PageTable(g, memory, tlbs, t.vmid(), t.flags());
            table = stage2;
            fwb = stage2.fwb();
            cache = new MemCache(memory);
        } else {
            hyp = new HypPageTable(g, memory, tlbs);
            table = hyp;
        }
        mmu = new Mmu(g, memory, tlb, table.rootPa(), t.stage2() ? t.vmid() : 0, fwb, false);
        print(header() + "; table memory [" + Numbers.hex(t.memBase()) + ", +" + Numbers.size(t.memSize()) + ")"
                + (t.checking() ? "; checking on" : ""));
    }

    /** One line describing the table: kind, granule, address size, levels, roots, options. */
    String header() {
        Geometry g = spec.geometry();
        StringBuilder sb = new StringBuilder();
        sb.append(TableDump.kind(g)).append(" table: ").append(g.granule().label()).append(" granule, ")
                .append(g.iaBits()).append("-bit ").append(addrName()).append(", levels ").append(g.startLevel())
                .append("..3, ").append(g.rootPages()).append(g.rootPages() == 1 ? " root frame" : " concatenated root frames")
                .append(", ").append(g.oaFormat()).append(" descriptors");
        if (spec.stage2()) {
            sb.append(", vmid ").append(spec.vmid());
            if ((spec.flags() & Stage2PageTable.FWB) != 0) sb.append(", fwb");
            if ((spec.flags() & Stage2PageTable.RANGE_TLBI) != 0) sb.append(", range-tlbi");
        }
        return sb.toString();
    }

    private void map(Step.Map m) {
        long bbm = table.counters().breakBeforeMake();
        long leaves = table.counters().leavesInstalled();
        long tables = table.counters().tablesInstalled();
        if (stage2 != null) {
            topUp(m);
            stage2.map(m.addr(), m.size(), m.pa(), m.prot(), cache);
        } else {
            hyp.map(m.addr(), m.size(), m.pa(), m.prot());
        }
        check();
        if (out == null) return;
        print("map " + Numbers.range(m.addr(), m.size()) + " (" + Numbers.size(m.size()) + ") -> " + Numbers.hex(m.pa())
                + " " + m.prot() + ": " + leafBreakdown(m.addr(), m.size()) + "; installed "
                + plural(table.counters().leavesInstalled() - leaves, "leaf", "leaves") + ", "
                + plural(table.counters().tablesInstalled() - tables, "table", "tables") + "; "
                + (table.counters().breakBeforeMake() - bbm) + " BBM");
    }

    /**
     * Tops the memory cache up to {@link #tableBound} for this map, capped by the free frames, so
     * a map that cannot fit fails inside the library with ENOMEM.
     */
    private void topUp(Step.Map m) {
        Geometry g = spec.geometry();
        long end = m.addr() + m.size();
        if (end < m.addr() || end > g.iaLimit() || m.size() <= 0) return; // the library reports it
        long free = memory.frameCount() - memory.framesInUse() + cache.size();
        cache.topUp((int) Math.min(Math.min(tableBound(g, m.addr(), m.size(), m.pa()), free), Integer.MAX_VALUE - 8));
    }

    /**
     * The most table frames mapping {@code [ipa, ipa + size)} to {@code pa} can install: at each
     * level, one table per entry the range touches that cannot hold a leaf. That is every entry
     * where IPA and PA are not congruent modulo the entry size; where they are, only the partial
     * entries at the two ends of each piece of the range still being split (at most two pieces).
     */
    static long tableBound(Geometry g, long ipa, long size, long pa) {
        long need = 0;
        long[] starts = {ipa};
        long[] ends = {ipa + size};
        int n = 1;
        for (int level = g.startLevel(); level < Granule.LAST_LEVEL; level++) {
            int shift = g.granule().levelShift(level);
            long span = 1L << shift;
            boolean fits = g.leafAllowed(level) && ((ipa ^ pa) & (span - 1)) == 0;
            long[] nextStarts = new long[2 * n];
            long[] nextEnds = new long[2 * n];
            int kept = 0;
            for (int i = 0; i < n; i++) {
                long s = starts[i], e = ends[i];
                long up = (s + span - 1) & -span;
                long down = e & -span;
                if (!fits || up >= down) {
                    // No entry of this piece holds a leaf: each one it touches gets a table.
                    need += ((e - 1) >>> shift) - (s >>> shift) + 1;
                    nextStarts[kept] = s;
                    nextEnds[kept++] = e;
                } else {
                    // Whole entries become blocks; only the partial head and tail entries need tables.
                    if (s < up) { need++; nextStarts[kept] = s; nextEnds[kept++] = up; }
                    if (down < e) { need++; nextStarts[kept] = down; nextEnds[kept++] = e; }
                }
            }
            starts = nextStarts;
            ends = nextEnds;
            n = kept;
        }
        return need;
    }

    /** "512 x 4K pages" or "1 x 1G block, 511 x 2M blocks": the valid leaves now in the range. */
    private String leafBreakdown(long addr, long size) {
        long[] byLevel = new long[Granule.LAST_LEVEL + 2];
        table.walk(addr, size, (ctx, visit) -> {
            if (Pte.isValid(ctx.old())) byLevel[ctx.level() + 1]++;
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < byLevel.length; i++) {
            if (byLevel[i] == 0) continue;
            sb.append(sb.length() == 0 ? "" : ", ").append(Describe.leafNoun(spec.geometry().granule(), i - 1, byLevel[i]));
        }
        return sb.length() == 0 ? "no leaves" : sb.toString();
    }

    private static String plural(long n, String one, String many) {
        return n + " " + (n == 1 ? one : many);
    }

    private void unmap(Step.Unmap u) {
        long leaves = table.counters().leavesRemoved();
        long tables = table.counters().tablesFreed();
        long tlbis = tlbs.totalFlushes();
        long unmapped = u.size();
        if (stage2 != null) {
            stage2.unmap(u.addr(), u.size());
        } else {
            unmapped = hyp.unmap(u.addr(), u.size());
        }
        check();
        if (out == null) return;
        print("unmap " + Numbers.range(u.addr(), u.size()) + " (" + Numbers.size(u.size()) + "): removed "
                + plural(table.counters().leavesRemoved() - leaves, "leaf", "leaves") + ", freed "
                + plural(table.counters().tablesFreed() - tables, "table", "tables") + "; "
                + plural(tlbs.totalFlushes() - tlbis, "TLBI", "TLBIs")
                + (hyp != null && unmapped < u.size() ? "; stopped after " + Numbers.size(unmapped) + " (a hole or a block"
                        + " reaching past the range: hyp unmap stops there)" : ""));
    }

    /** In checking mode, table refcounts are verified after every change. */
    private void check() {
        if (spec.checking()) table.checkRefcounts();
    }

    Translation translate(long addr, Access access) {
        return mmu.translateDetailed(addr, access);
    }

    String describe(Translation t) {
        return Describe.translation(spec.geometry(), fwb, t);
    }

    private void expect(Step.Expect e) {
        Translation t = translate(e.addr(), e.access());
        String wanted = Numbers.hex(e.addr()) + " " + e.access().label() + " "
                + (e.fault() == null ? "-> " + Numbers.hex(e.pa()) : Describe.fault(e.fault(), e.level()));
        boolean ok = e.fault() == null
                ? !t.isFault() && t.pa() == e.pa()
                : t.isFault() && t.fault() == e.fault() && t.level() == e.level();
        if (ok) {
            passed++;
            print("expect " + wanted + ": ok");
            return;
        }
        failed++;
        String got = t.isFault() ? Describe.fault(t.fault(), t.level()) : Numbers.hex(t.pa());
        print("expect " + wanted + ": FAILED, got " + got);
        err.println(file + ":" + e.line() + ": expected " + wanted + ", got " + got);
        err.flush();
    }

    void dump(PrintWriter w) {
        TableDump.print(table, header(), fwb, w);
    }

    /** Table frames in use (memory-cache contents excluded). */
    long tableFrames() {
        return memory.framesInUse() - (cache == null ? 0 : cache.size());
    }

    /** The final line of {@code run}. */
    String summary() {
        long frames = tableFrames();
        StringBuilder tl = new StringBuilder();
        append(tl, tlbs.ipaFlushes(), "by IPA");
        append(tl, tlbs.rangeFlushes(), "range");
        append(tl, tlbs.vmidFlushes(), "VMID");
        append(tl, tlbs.hypVaFlushes(), "hyp VA");
        append(tl, tlbs.localIpaFlushes(), "local");
        return "summary: " + commands + " commands; expectations " + passed + " passed, " + failed + " failed; table frames "
                + frames + " (" + Numbers.size(frames * spec.geometry().granule().pageSize()) + "); TLBIs "
                + tlbs.totalFlushes() + (tl.length() > 0 ? " (" + tl + ")" : "") + "; BBMs "
                + table.counters().breakBeforeMake();
    }

    private static void append(StringBuilder sb, long n, String what) {
        if (n == 0) return;
        sb.append(sb.length() == 0 ? "" : ", ").append(n).append(' ').append(what);
    }
}
