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
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.AddressRange;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.table.TableCounters;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.sim.Memslot;
import dev.ptlab.sim.Vcpu;
import dev.ptlab.sim.VcpuStats;
import dev.ptlab.sim.Vm;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs parsed scenario commands against one table: physical memory for its frames, a memory
 * cache topped up before each stage-2 map (and set-owner), a TLB system with one CPU's TLB, and
 * that CPU's MMU for translate and expect. That CPU is also the "local" CPU of relax, and
 * {@code tlbi} stands for the invalidations a caller of wrprotect or mkold would issue.
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
    /** The VM of a {@code vm} scenario (its stage-2 table is {@link #stage2}), else null. */
    private Vm vm;
    /** The VM's memslots by id (creation order). */
    private final List<Memslot> slots = new ArrayList<>();

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
                throw ScenarioException.at(file, c.line(), c.verb() + " failed: " + e.getMessage(), expectedFor(c, e.errno()));
            } catch (IllegalArgumentException e) {
                if (!(c instanceof Step.AddMemslot || c instanceof Step.DirtyLog || c instanceof Step.Table)) {
                    throw new ScenarioException(file + ":" + c.line() + ": " + c.verb() + " failed: " + e
                            + "; expected the operation to succeed", e);
                }
                // The sim library's argument checks name the argument and the rule.
                throw ScenarioException.at(file, c.line(), c.verb() + " failed: " + e.getMessage(), vmExpected(c));
            } catch (IllegalStateException e) {
                if (!(e.getCause() instanceof PageTableException)) {
                    throw new ScenarioException(file + ":" + c.line() + ": " + c.verb() + " failed: " + e
                            + "; expected the operation to succeed", e);
                }
                // The VM's abort handler wraps what the table refused (e.g. no table memory left).
                throw ScenarioException.at(file, c.line(), c.verb() + " failed: " + e.getMessage(),
                        expectedFor(c, ((PageTableException) e.getCause()).errno()));
            } catch (RuntimeException e) {
                // A broken invariant or a library bug: still name the line that triggered it.
                throw new ScenarioException(file + ":" + c.line() + ": " + c.verb() + " failed: " + e
                        + "; expected the operation to succeed", e);
            }
            commands++;
        }
        if (table == null) {
            throw new ScenarioException(file + ": no table line; expected a \"stage2 ...\", \"hyp ...\" or \"vm ...\" line");
        }
    }

    private String vmExpected(Step c) {
        if (c instanceof Step.AddMemslot) {
            return "GPA, SIZE and HOSTPA aligned to the backing's page size, the slot inside the IPA space and overlapping "
                    + "no other slot";
        }
        return "a configuration the VM accepts";
    }

    private String expectedFor(Step c, Errno errno) {
        Geometry g = spec == null ? null : spec.geometry();
        String gran = g == null ? "" : " to the " + g.granule().label() + " granule";
        switch (errno) {
            case EINVAL:
                if (c instanceof Step.Map) {
                    return addrName() + ", SIZE and PA aligned" + gran + " and a prot the " + TableDump.kind(g) + " table accepts"
                            + (stage2 != null && (spec.flags() & Stage2PageTable.IDMAP) != 0 ? " (idmap table: PA equal to IPA)" : "");
                }
                if (c instanceof Step.Unmap || c instanceof Step.Wrprotect || c instanceof Step.Young
                        || c instanceof Step.Flush || c instanceof Step.Split || c instanceof Step.SetOwner) {
                    return addrName() + " and SIZE aligned" + gran + ", SIZE above 0";
                }
                if (c instanceof Step.Table) return "mem-base= and mem-size= aligned" + gran;
                return "valid arguments";
            case ERANGE:
                return "a range inside the " + g.iaBits() + "-bit " + addrName() + " space [0, " + Numbers.hex(g.iaLimit()) + ")";
            case ENOMEM:
                if (c instanceof Step.Split) return "a memory cache with frames for the split (raise frames= or mem-size=)";
                return "the tables to fit in table memory (raise mem-size= on the " + (vm != null ? "vm" : "table") + " line)";
            case EPERM:
                if (c instanceof Step.IdmapGreedy) {
                    return "ADDR's own page free of mappings with other attributes and of owner annotations";
                }
                return "the operation to succeed";
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
        } else if (c instanceof Step.ExpectLeaf) {
            expectLeaf((Step.ExpectLeaf) c);
        } else if (c instanceof Step.ExpectOwner) {
            expectOwner((Step.ExpectOwner) c);
        } else if (c instanceof Step.Wrprotect) {
            wrprotect((Step.Wrprotect) c);
        } else if (c instanceof Step.Tlbi) {
            tlbi((Step.Tlbi) c);
        } else if (c instanceof Step.Mkyoung) {
            mkyoung((Step.Mkyoung) c);
        } else if (c instanceof Step.Young) {
            young((Step.Young) c);
        } else if (c instanceof Step.Relax) {
            relax((Step.Relax) c);
        } else if (c instanceof Step.Split) {
            split((Step.Split) c);
        } else if (c instanceof Step.Flush) {
            flush((Step.Flush) c);
        } else if (c instanceof Step.SetOwner) {
            setOwner((Step.SetOwner) c);
        } else if (c instanceof Step.IdmapGreedy) {
            idmapGreedy((Step.IdmapGreedy) c);
        } else if (c instanceof Step.Coalesce) {
            coalescePolicy((Step.Coalesce) c);
        } else if (c instanceof Step.Counters) {
            if (out != null) counters(out);
        } else if (c instanceof Step.AddMemslot) {
            addMemslot((Step.AddMemslot) c);
        } else if (c instanceof Step.VcpuAccess) {
            vcpuAccess((Step.VcpuAccess) c);
        } else if (c instanceof Step.DirtyLog) {
            dirtyLog((Step.DirtyLog) c);
        } else {
            throw new IllegalStateException("unhandled command " + c);
        }
    }

    private void create(Step.Table t) {
        spec = t;
        Geometry g = t.geometry();
        if (t.vm() != null) {
            createVm(t);
            return;
        }
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

    /**
     * A {@code vm} line: the VM, its vCPUs, and the scenario's own cpu0 (TLB and MMU, registered
     * with the VM's TLB system) on its stage-2 table, which every table command then uses.
     */
    private void createVm(Step.Table t) {
        Geometry g = t.geometry();
        vm = new Vm(t.vm().config());
        for (int i = 0; i < t.vm().vcpus(); i++) vm.createVcpu();
        memory = vm.tableMemory();
        tlbs = vm.tlbs();
        tlb = new Tlb("cpu0", g.granule());
        tlbs.register(tlb);
        stage2 = vm.table();
        table = stage2;
        fwb = stage2.fwb();
        cache = new MemCache(memory);
        mmu = new Mmu(g, memory, tlb, table.rootPa(), t.vmid(), fwb, t.vm().config().hardwareAf());
        int n = t.vm().vcpus();
        print("vm: " + plural(n, "vCPU", "vCPUs") + " (vcpu0" + (n == 1 ? "" : "..vcpu" + (n - 1)) + "), faults "
                + t.vm().config().faultLocking() + ", coalesce "
                + (t.vm().config().coalescePolicy() == CoalescePolicy.INSTALL_FIRST ? "install-first" : "legacy")
                + ", eager split " + (t.vm().config().eagerSplitChunk() == 0 ? "off" : Numbers.size(t.vm().config().eagerSplitChunk()))
                + (t.vm().config().hardwareAf() ? ", hardware AF" : "") + "; " + header() + "; table memory ["
                + Numbers.hex(t.memBase()) + ", +" + Numbers.size(t.memSize()) + ")" + (t.checking() ? "; checking on" : ""));
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
            if ((spec.flags() & Stage2PageTable.IDMAP) != 0) sb.append(", idmap");
        }
        return sb.toString();
    }

    private void map(Step.Map m) {
        long coalesced = table.counters().coalesced();
        long window = table.counters().invalidWindowSteps();
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
                + (table.counters().breakBeforeMake() - bbm) + " BBM"
                + (table.counters().coalesced() == coalesced ? "" : "; coalesced "
                        + plural(table.counters().coalesced() - coalesced, "table into a block", "tables into blocks") + " ("
                        + stage2.coalescePolicy().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-') + ", invalid for "
                        + plural(table.counters().invalidWindowSteps() - window, "walker step", "walker steps") + ")"));
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
        return tableBound(g, ipa, size, pa, false);
    }

    /** {@link #tableBound} for an operation that writes page-sized entries only (set-owner). */
    static long pageTableBound(Geometry g, long ipa, long size) {
        return tableBound(g, ipa, size, ipa, true);
    }

    private static long tableBound(Geometry g, long ipa, long size, long pa, boolean pagesOnly) {
        long need = 0;
        long[] starts = {ipa};
        long[] ends = {ipa + size};
        int n = 1;
        for (int level = g.startLevel(); level < Granule.LAST_LEVEL; level++) {
            int shift = g.granule().levelShift(level);
            long span = 1L << shift;
            boolean fits = !pagesOnly && g.leafAllowed(level) && ((ipa ^ pa) & (span - 1)) == 0;
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

    // ------------------------------------------------------------------------------------------
    // stage-2 operations beyond map and unmap

    private void wrprotect(Step.Wrprotect w) {
        long updates = table.counters().attrUpdates();
        long tlbis = tlbs.totalFlushes();
        stage2.wrprotect(w.addr(), w.size());
        check();
        print("wrprotect " + Numbers.range(w.addr(), w.size()) + " (" + Numbers.size(w.size()) + "): write permission removed from "
                + plural(table.counters().attrUpdates() - updates, "leaf", "leaves") + "; "
                + plural(tlbs.totalFlushes() - tlbis, "TLBI", "TLBIs")
                + " (the caller's TLBI is separate: until \"tlbi\" a CPU may still write through its TLB)");
    }

    private void tlbi(Step.Tlbi t) {
        int before = tlb.size();
        String what;
        if (t.all()) {
            tlbs.flushVmid(spec.vmid());
            what = "tlbi all: TLBI of every entry of vmid " + spec.vmid();
        } else {
            tlbs.flushVmidRange(spec.vmid(), t.addr(), t.size());
            what = "tlbi " + Numbers.range(t.addr(), t.size()) + " (" + Numbers.size(t.size()) + "): range TLBI of vmid " + spec.vmid();
        }
        print(what + " on every CPU; " + tlb.name() + " TLB entries " + before + " -> " + tlb.size());
    }

    private void mkyoung(Step.Mkyoung m) {
        Status st = stage2.mkyoung(m.addr());
        check();
        if (out == null) return;
        print("mkyoung " + Numbers.hex(m.addr()) + ": " + st + (st == Status.OK ? ", access flag set on the " + leafName(m.addr())
                : st == Status.NOT_MAPPED ? " (no valid leaf translates it)" : " (the entry is locked or changed)")
                + "; no TLBI (an entry with AF=0 is never cached)");
    }

    private void young(Step.Young y) {
        long updates = table.counters().attrUpdates();
        boolean young = stage2.testClearYoung(y.addr(), y.size(), y.mkold());
        check();
        String head = y.verb() + " " + Numbers.range(y.addr(), y.size()) + " (" + Numbers.size(y.size()) + "): ";
        if (!y.mkold()) {
            print(head + (young ? "young (a valid leaf in the range has its access flag set)" : "old (no valid leaf in the range "
                    + "has its access flag set)"));
            return;
        }
        print(head + (young ? "was young" : "was old") + "; access flag cleared on "
                + plural(table.counters().attrUpdates() - updates, "leaf", "leaves")
                + "; no TLBI (an entry cached while young still translates until \"tlbi\")");
    }

    private void relax(Step.Relax r) {
        long local = tlbs.localIpaFlushes();
        long total = tlbs.totalFlushes();
        long icache = memory.cacheMaintenance().icacheOps();
        Status st = stage2.relaxPerms(r.addr(), r.prot(), 0, tlb);
        check();
        if (out == null) return;
        StringBuilder sb = new StringBuilder("relax " + Numbers.hex(r.addr()) + " " + r.prot() + ": " + st);
        if (st == Status.OK) sb.append(", the ").append(leafName(r.addr()));
        else if (st == Status.NOT_MAPPED) sb.append(" (no valid leaf translates it)");
        else sb.append(" (the entry is locked or changed)");
        long icacheOps = memory.cacheMaintenance().icacheOps() - icache;
        if (icacheOps > 0) sb.append("; I-cache invalidated (newly executable)");
        long locals = tlbs.localIpaFlushes() - local;
        sb.append("; ").append(locals == 0 ? "no TLBI" : plural(locals, "local TLBI", "local TLBIs") + " by IPA on " + tlb.name()
                + " (the scenario's CPU; other CPUs are not invalidated)");
        long others = tlbs.totalFlushes() - total - locals;
        if (others > 0) sb.append(", ").append(plural(others, "other TLBI", "other TLBIs"));
        print(sb.toString());
    }

    private void split(Step.Split s) {
        Geometry g = spec.geometry();
        long frames = s.frames();
        if (frames < 0) {
            // Enough for every block the range touches to be split to pages at once.
            long[] need = {0};
            if (s.size() > 0 && s.addr() < g.iaLimit() && s.size() <= g.iaLimit() - s.addr()) {
                table.walk(s.addr(), s.size(), (ctx, visit) -> {
                    if (Pte.isValid(ctx.old()) && ctx.level() < Granule.LAST_LEVEL) {
                        need[0] += stage2.framesForFullSplit(ctx.level());
                    }
                    return Status.OK;
                }, WalkFlags.LEAF, WalkPolicy.RANGE);
            }
            frames = need[0];
        }
        long free = memory.frameCount() - memory.framesInUse();
        int filled = (int) Math.min(Math.min(frames, free), Integer.MAX_VALUE - 8);
        long splits = table.counters().splits();
        long tables = table.counters().tablesInstalled();
        long bbm = table.counters().breakBeforeMake();
        long tlbis = tlbs.totalFlushes();
        MemCache splitCache = new MemCache(memory);
        String failure = null;
        try {
            splitCache.topUp(filled);
            stage2.split(s.addr(), s.size(), splitCache);
        } catch (PageTableException e) {
            if (e.errno() != Errno.ENOMEM) throw e;
            failure = e.getMessage();
        } finally {
            splitCache.release();
        }
        check();
        if (out == null) return;
        String head = "split " + Numbers.range(s.addr(), s.size()) + " (" + Numbers.size(s.size()) + ") with "
                + (s.frames() < 0 ? plural(filled, "frame", "frames") + " (enough for a full split)" : "frames=" + s.frames())
                + (filled < frames ? " (capped at the " + filled + " free frames)" : "") + ": ";
        String done = "split " + plural(table.counters().splits() - splits, "block", "blocks") + ", installed "
                + plural(table.counters().tablesInstalled() - tables, "table", "tables") + "; now "
                + leafBreakdown(s.addr(), s.size()) + "; " + (table.counters().breakBeforeMake() - bbm) + " BBM, "
                + plural(tlbs.totalFlushes() - tlbis, "TLBI", "TLBIs");
        print(head + done + (failure == null ? "" : "; then ENOMEM, the table stays valid: " + failure));
    }

    private void flush(Step.Flush f) {
        CacheMaintenance cmo = memory.cacheMaintenance();
        long ops = cmo.dcacheOps();
        long bytes = cmo.dcacheBytes();
        stage2.flush(f.addr(), f.size());
        print("flush " + Numbers.range(f.addr(), f.size()) + " (" + Numbers.size(f.size()) + "): "
                + (fwb ? "nothing to do with fwb (the stage-2 attributes force write-back)"
                        : "D-cache clean+invalidate of " + plural(cmo.dcacheOps() - ops, "cacheable leaf", "cacheable leaves")
                                + " (" + Numbers.bytes(cmo.dcacheBytes() - bytes) + ")"));
    }

    private void setOwner(Step.SetOwner o) {
        Geometry g = spec.geometry();
        long end = o.addr() + o.size();
        if (o.size() > 0 && end > o.addr() && end <= g.iaLimit()) {
            long free = memory.frameCount() - memory.framesInUse() + cache.size();
            cache.topUp((int) Math.min(Math.min(pageTableBound(g, o.addr(), o.size()), free), Integer.MAX_VALUE - 8));
        }
        long tables = table.counters().tablesInstalled();
        long bbm = table.counters().breakBeforeMake();
        long tlbis = tlbs.totalFlushes();
        stage2.setOwner(o.addr(), o.size(), cache, o.owner());
        check();
        print("set-owner " + Numbers.range(o.addr(), o.size()) + " (" + Numbers.size(o.size()) + ") owner " + o.owner() + ": "
                + plural(o.size() / g.granule().pageSize(), "page", "pages")
                + (o.owner() == 0 ? " now plain invalid entries" : " now invalid entries annotated with owner " + o.owner())
                + "; installed " + plural(table.counters().tablesInstalled() - tables, "table", "tables") + "; "
                + (table.counters().breakBeforeMake() - bbm) + " BBM, " + plural(tlbs.totalFlushes() - tlbis, "TLBI", "TLBIs"));
    }

    private void idmapGreedy(Step.IdmapGreedy i) {
        Geometry g = spec.geometry();
        // Generous: the tables a map of the whole range could need, plus one per level for a
        // block around ADDR that must be shrunk.
        long bound = tableBound(g, i.start(), i.end() - i.start(), i.start()) + (Granule.LAST_LEVEL - g.startLevel());
        long free = memory.frameCount() - memory.framesInUse() + cache.size();
        cache.topUp((int) Math.min(Math.min(bound, free), Integer.MAX_VALUE - 8));
        long tables = table.counters().tablesInstalled();
        long bbm = table.counters().breakBeforeMake();
        long coalesced = table.counters().coalesced();
        long tlbis = tlbs.totalFlushes();
        AddressRange mapped = stage2.idmapGreedy(i.addr(), i.prot(), new AddressRange(i.start(), i.end()), cache);
        check();
        if (out == null) return;
        long n = table.counters().coalesced() - coalesced;
        print("idmap-greedy " + Numbers.hex(i.addr()) + " " + i.prot() + " in [" + Numbers.hex(i.start()) + ", "
                + Numbers.hex(i.end()) + "): mapped " + Numbers.range(mapped.start(), mapped.size()) + " ("
                + Numbers.size(mapped.size()) + ") as " + leafBreakdown(mapped.start(), mapped.size()) + "; installed "
                + plural(table.counters().tablesInstalled() - tables, "table", "tables") + "; "
                + (table.counters().breakBeforeMake() - bbm) + " BBM, " + plural(tlbs.totalFlushes() - tlbis, "TLBI", "TLBIs")
                + (n == 0 ? "" : "; coalesced " + plural(n, "table into a block", "tables into blocks")));
    }

    private void coalescePolicy(Step.Coalesce c) {
        stage2.setCoalescePolicy(c.policy());
        print("coalesce-policy " + (c.policy() == CoalescePolicy.INSTALL_FIRST
                ? "install-first: map replaces a table by a block by breaking the table entry, installing the block, "
                        + "then freeing the old tables (the range is never unmapped)"
                : "unmap-first: map replaces a table by a block by breaking the table entry, TLBI of the whole VMID, "
                        + "freeing the old tables, then installing the block (the range is unmapped meanwhile)"));
    }

    /** "L3 4K page 0x40000000-0x40000fff, now rw" style name of the leaf translating {@code addr}. */
    private String leafName(long addr) {
        Leaf leaf = table.getLeaf(addr);
        if (!Pte.isValid(leaf.pte())) return "L" + leaf.level() + " entry (invalid)";
        long span = spec.geometry().granule().levelSize(leaf.level());
        return "L" + leaf.level() + " " + Numbers.size(span) + " " + (leaf.level() == Granule.LAST_LEVEL ? "page" : "block") + " "
                + Numbers.range(addr & -span, span) + ", now " + Describe.leafAttrs(spec.geometry(), fwb, leaf.pte());
    }

    /** In checking mode, table refcounts are verified after every change. */
    private void check() {
        if (spec.checking()) table.checkRefcounts();
    }

    Translation translate(long addr, Access access) {
        return mmu.translateDetailed(addr, access);
    }

    /** The scenario's table (after {@link #run}). */
    PageTable table() {
        return table;
    }

    /** Whether the stage-2 table was built for HCR_EL2.FWB (it changes how MemAttr decodes). */
    boolean fwb() {
        return fwb;
    }

    /**
     * A fresh MMU (own TLB) on the table for a physical-address size other than the output
     * format's, as VTCR_EL2.PS / TCR_EL2.PS would set it.
     */
    Mmu mmu(int paBits) {
        Geometry g = spec.geometry();
        return new Mmu(g, memory, new Tlb("pa" + paBits, g.granule()), table.rootPa(), spec.stage2() ? spec.vmid() : 0, fwb,
                false, paBits);
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
        String got = t.isFault() ? Describe.fault(t.fault(), t.level()) : Numbers.hex(t.pa());
        result("expect " + wanted, e.line(), wanted, ok, got);
    }

    private void expectLeaf(Step.ExpectLeaf e) {
        Leaf leaf = table.getLeaf(e.addr());
        String echo = "expect-leaf " + Numbers.hex(e.addr()) + " level " + e.level();
        String wanted = "a valid leaf at level " + e.level() + " for " + Numbers.hex(e.addr());
        boolean ok = Pte.isValid(leaf.pte()) && leaf.level() == e.level();
        String got = Pte.isValid(leaf.pte())
                ? "L" + leaf.level() + " " + Numbers.size(spec.geometry().granule().levelSize(leaf.level()))
                        + (leaf.level() == Granule.LAST_LEVEL ? " page" : " block")
                : "no leaf (L" + leaf.level() + " " + (leaf.pte() == 0 ? "invalid entry" : Describe.invalidEntry(leaf.pte())) + ")";
        result(echo, e.line(), wanted, ok, got);
    }

    private void expectOwner(Step.ExpectOwner e) {
        Leaf leaf = table.getLeaf(e.addr());
        long pte = leaf.pte();
        String echo = "expect-owner " + Numbers.hex(e.addr()) + " " + e.owner();
        String wanted = "owner " + e.owner() + " at " + Numbers.hex(e.addr());
        boolean ok = !Pte.isValid(pte) && !Pte.isLocked(pte) && Pte.owner(pte) == e.owner();
        String got = Pte.isValid(pte) ? "a valid L" + leaf.level() + " leaf"
                : Pte.isLocked(pte) ? "a LOCKED entry at L" + leaf.level()
                : "owner " + Pte.owner(pte) + " (L" + leaf.level() + " entry " + Numbers.hex(pte) + ")";
        result(echo, e.line(), wanted, ok, got);
    }

    /**
     * Counts and prints the outcome of an expect-style check: {@code echo: ok} or {@code echo:
     * FAILED, got ...} on the output, {@code file:line: expected wanted, got ...} on stderr.
     */
    private void result(String echo, int line, String wanted, boolean ok, String got) {
        if (ok) {
            passed++;
            print(echo + ": ok");
            return;
        }
        failed++;
        print(echo + ": FAILED, got " + got);
        err.println(file + ":" + line + ": expected " + wanted + ", got " + got);
        err.flush();
    }

    /** The {@code counters} command: TLBIs, table operations, cache maintenance, table frames. */
    void counters(PrintWriter w) {
        TableCounters c = table.counters();
        CacheMaintenance cmo = memory.cacheMaintenance();
        long frames = tableFrames();
        long page = spec.geometry().granule().pageSize();
        String tl = spec.stage2()
                ? "by IPA " + tlbs.ipaFlushes() + ", local " + tlbs.localIpaFlushes() + ", range " + tlbs.rangeFlushes()
                        + ", VMID " + tlbs.vmidFlushes()
                : "hyp VA " + tlbs.hypVaFlushes();
        w.println("counters: TLBIs " + tlbs.totalFlushes() + " (" + tl + ")");
        w.println("  table: BBMs " + c.breakBeforeMake() + ", coalesced " + c.coalesced() + ", invalid-window steps "
                + c.invalidWindowSteps() + ", splits " + c.splits() + ", attribute updates " + c.attrUpdates()
                + ", raced " + c.raced() + "; leaves installed " + c.leavesInstalled() + ", removed " + c.leavesRemoved()
                + "; tables installed " + c.tablesInstalled() + ", freed " + c.tablesFreed());
        w.println("  CMOs: D-cache " + plural(cmo.dcacheOps(), "op", "ops") + " (" + Numbers.bytes(cmo.dcacheBytes())
                + "), I-cache " + plural(cmo.icacheOps(), "op", "ops") + " (" + Numbers.bytes(cmo.icacheBytes()) + ")");
        w.println("  table frames: " + frames + " in use (" + Numbers.size(frames * page) + "), peak "
                + memory.peakFramesInUse() + " (" + Numbers.bytes(memory.peakFramesInUse() * page)
                + ", memory-cache spares included)");
        w.flush();
    }

    void dump(PrintWriter w) {
        TableDump.print(table, header(), fwb, w);
    }

    /** Table frames in use (memory-cache contents excluded, the VM's caches too). */
    long tableFrames() {
        return memory.framesInUse() - (cache == null ? 0 : cache.size()) - (vm == null ? 0 : vm.cachedFrames());
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
                + table.counters().breakBeforeMake() + "; CMOs " + cmoSummary() + (vm == null ? "" : "; " + vcpuSummary());
    }

    /** "vCPUs: 9 accesses, 6 stage-2 faults, 2 MMIO exits, 1 address-size error" over every vCPU. */
    private String vcpuSummary() {
        long accesses = 0, faults = 0, mmio = 0, addressSize = 0, raced = 0;
        for (Vcpu v : vm.vcpus()) {
            VcpuStats st = v.stats();
            accesses += st.accesses();
            faults += st.faults();
            mmio += st.mmioExits();
            addressSize += st.addressSizeErrors();
            raced += st.raced();
        }
        return "vCPUs: " + plural(accesses, "access", "accesses") + ", " + plural(faults, "stage-2 fault", "stage-2 faults")
                + (raced == 0 ? "" : " (" + raced + " raced)") + ", " + plural(mmio, "MMIO exit", "MMIO exits") + ", "
                + plural(addressSize, "address-size error", "address-size errors");
    }

    // ------------------------------------------------------------------------------------------
    // VM commands

    private void addMemslot(Step.AddMemslot a) {
        Memslot m = vm.addMemslot(a.gpa(), a.size(), a.backing(), a.hostPa(), a.readOnly());
        slots.add(m);
        if (out == null) return;
        Geometry g = spec.geometry();
        long unit = a.backing().size(g.granule());
        print("memslot " + m.id() + ": " + Numbers.range(m.gpa(), m.size()) + " (" + Numbers.size(m.size()) + ") -> host "
                + Numbers.hex(m.hostPa()) + ", " + a.backing() + " backing (faults map up to " + Numbers.size(unit)
                + (unit == g.granule().pageSize() ? " pages" : " blocks") + "), " + (m.readOnly()
                        ? "read-only (writes exit to the VMM as MMIO)" : "read-write"));
    }

    private void vcpuAccess(Step.VcpuAccess a) {
        Vcpu v = vm.vcpus().get(a.vcpu());
        VcpuStats st = v.stats();
        long[][] before = faultCounts(st);
        long raced = st.raced();
        long spurious = st.spurious();
        long r = v.access(a.addr(), a.access());
        check();
        long[][] after = faultCounts(st);
        List<String> faults = new ArrayList<>();
        long n = 0;
        for (FaultType type : FaultType.values()) {
            for (int l = Granule.FIRST_LEVEL; l <= Granule.LAST_LEVEL; l++) {
                long d = after[type.ordinal()][l - Granule.FIRST_LEVEL] - before[type.ordinal()][l - Granule.FIRST_LEVEL];
                if (d == 0) continue;
                n += d;
                faults.add(type.label() + " L" + l + (d == 1 ? "" : " x" + d));
            }
        }
        String got = outcome(r);
        StringBuilder sb = new StringBuilder("vcpu" + a.vcpu() + " " + a.access().label() + " " + Numbers.hex(a.addr()) + " -> " + got
                + " (" + (n == 0 ? "no fault" : plural(n, "fault", "faults") + ": " + String.join(", ", faults)));
        if (st.raced() > raced) sb.append("; ").append(st.raced() - raced).append(" raced");
        if (st.spurious() > spurious) sb.append("; ").append(st.spurious() - spurious).append(" spurious");
        sb.append(')');
        if (a.expected() == null) {
            print(sb.toString());
            return;
        }
        String wantedOutcome = a.expected() == Step.Outcome.MMIO ? "mmio exit"
                : a.expected() == Step.Outcome.ADDRESS_SIZE ? "address-size error" : Numbers.hex(a.pa());
        boolean ok = a.expected() == Step.Outcome.MMIO ? r == Vcpu.EXIT_MMIO
                : a.expected() == Step.Outcome.ADDRESS_SIZE ? r == Vcpu.EXIT_ADDRESS_SIZE
                : r == a.pa();
        String wanted = "vcpu" + a.vcpu() + " " + a.access().label() + " " + Numbers.hex(a.addr()) + " -> " + wantedOutcome;
        if (ok) {
            passed++;
            print(sb + ": ok");
            return;
        }
        failed++;
        print(sb + ": FAILED, expected -> " + wantedOutcome);
        err.println(file + ":" + a.line() + ": expected " + wanted + ", got " + got);
        err.flush();
    }

    /** TLBIs by kind so far: by IPA, range, VMID, local. */
    private long[] tlbiKinds() {
        return new long[] {tlbs.ipaFlushes(), tlbs.rangeFlushes(), tlbs.vmidFlushes(), tlbs.localIpaFlushes()};
    }

    /**
     * The TLBIs issued since {@code total} and {@code kinds} were taken: "1 range TLBI", "2 TLBIs
     * by IPA", "3 TLBIs (2 by IPA, 1 range)".
     */
    private String tlbisSince(long total, long[] kinds) {
        long[] now = tlbiKinds();
        String[] names = {"by IPA", "range", "VMID", "local"};
        StringBuilder sb = new StringBuilder();
        int nonZero = 0;
        int only = -1;
        for (int i = 0; i < names.length; i++) {
            append(sb, now[i] - kinds[i], names[i]);
            if (now[i] != kinds[i]) {
                nonZero++;
                only = i;
            }
        }
        long n = tlbs.totalFlushes() - total;
        if (nonZero == 1 && now[only] - kinds[only] == n) {
            return only == 0 ? plural(n, "TLBI", "TLBIs") + " by IPA" : n + " " + names[only] + (n == 1 ? " TLBI" : " TLBIs");
        }
        return plural(n, "TLBI", "TLBIs") + (sb.length() == 0 ? "" : " (" + sb + ")");
    }

    private static String outcome(long r) {
        return r == Vcpu.EXIT_MMIO ? "mmio exit" : r == Vcpu.EXIT_ADDRESS_SIZE ? "address-size error" : Numbers.hex(r);
    }

    private static long[][] faultCounts(VcpuStats st) {
        int levels = Granule.LAST_LEVEL - Granule.FIRST_LEVEL + 1;
        long[][] c = new long[FaultType.values().length][levels];
        for (FaultType type : FaultType.values()) {
            for (int l = Granule.FIRST_LEVEL; l <= Granule.LAST_LEVEL; l++) {
                c[type.ordinal()][l - Granule.FIRST_LEVEL] = st.faults(type, l);
            }
        }
        return c;
    }

    /** Most dirty ranges {@code dirty-log get} lists before it only counts the rest. */
    static final int MAX_DIRTY_RANGES = 16;

    private void dirtyLog(Step.DirtyLog d) {
        Memslot slot = slots.get(d.slot());
        String head = "dirty-log " + d.action().name().toLowerCase(java.util.Locale.ROOT) + " slot " + slot.id() + " ("
                + Numbers.range(slot.gpa(), slot.size()) + ")";
        long updates = table.counters().attrUpdates();
        long tlbis = tlbs.totalFlushes();
        long[] kinds = tlbiKinds();
        long splits = table.counters().splits();
        long tables = table.counters().tablesInstalled();
        switch (d.action()) {
            case ENABLE: {
                vm.enableDirtyLogging(slot);
                check();
                long chunk = vm.config().eagerSplitChunk();
                print(head + ": logging on; write permission removed from "
                        + plural(table.counters().attrUpdates() - updates, "leaf", "leaves") + ", "
                        + tlbisSince(tlbis, kinds) + "; "
                        + (chunk == 0 ? "no eager split (write faults split blocks)"
                                : "eager split in " + Numbers.size(chunk) + " chunks: " + plural(table.counters().splits() - splits,
                                        "block", "blocks") + " split, " + plural(table.counters().tablesInstalled() - tables,
                                        "table", "tables") + " installed"));
                return;
            }
            case DISABLE:
                vm.disableDirtyLogging(slot);
                check();
                print(head + ": logging off; later faults map blocks again (coalescing)");
                return;
            default:
                break;
        }
        boolean logging = slot.logging();
        long[] bits = vm.getDirtyLog(slot, !d.keep());
        check();
        if (out == null) return;
        long page = spec.geometry().granule().pageSize();
        List<String> ranges = new ArrayList<>();
        long count = 0;
        long runStart = -1;
        long runEnd = -1;
        int listed = 0;
        int total = 0;
        for (long i = 0; i <= slot.pages(); i++) {
            boolean dirty = i < slot.pages() && (bits[(int) (i >>> 6)] & (1L << (i & 63))) != 0;
            if (dirty) {
                count++;
                if (runStart < 0) runStart = i;
                runEnd = i;
                continue;
            }
            if (runStart < 0) continue;
            total++;
            if (listed++ < MAX_DIRTY_RANGES) {
                ranges.add(Numbers.range(slot.gpa() + runStart * page, (runEnd - runStart + 1) * page));
            }
            runStart = -1;
        }
        StringBuilder sb = new StringBuilder(head).append(": ");
        if (count == 0) {
            sb.append("no dirty pages");
        } else {
            sb.append(plural(count, "dirty page", "dirty pages")).append(": ").append(String.join(", ", ranges));
            if (total > MAX_DIRTY_RANGES) sb.append(", ... (").append(total - MAX_DIRTY_RANGES).append(" more ranges)");
            sb.append(d.keep() ? "; left writable (keep)" : logging ? "; write-protected again ("
                    + plural(table.counters().attrUpdates() - updates, "leaf", "leaves") + ", "
                    + tlbisSince(tlbis, kinds) + ")" : "");
        }
        if (!logging) sb.append(" (logging is off)");
        print(sb.toString());
    }

    /** "0", or "2 D-cache (4M), 1 I-cache (2M)": cache-maintenance operations so far, and the bytes they covered. */
    private String cmoSummary() {
        CacheMaintenance cmo = memory.cacheMaintenance();
        long d = cmo.dcacheOps();
        long i = cmo.icacheOps();
        if (d + i == 0) return "0";
        String dc = d + " D-cache (" + Numbers.bytes(cmo.dcacheBytes()) + ")";
        String ic = i + " I-cache (" + Numbers.bytes(cmo.icacheBytes()) + ")";
        return d == 0 ? ic : i == 0 ? dc : dc + ", " + ic;
    }

    private static void append(StringBuilder sb, long n, String what) {
        if (n == 0) return;
        sb.append(sb.length() == 0 ? "" : ", ").append(n).append(' ').append(what);
    }
}
