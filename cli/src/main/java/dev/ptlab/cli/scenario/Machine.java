package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
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
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import dev.ptlab.sim.Memslot;
import dev.ptlab.sim.Vcpu;
import dev.ptlab.sim.VcpuStats;
import dev.ptlab.sim.Vm;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * Runs parsed scenario steps against one table: physical memory for its frames, a memory cache
 * topped up before each stage-2 map (and set-owner), a TLB system with one CPU's TLB, and that
 * CPU's MMU for translate and expect. That CPU is also the "local" CPU of relax, and {@code tlbi}
 * stands for the invalidations a caller of wrprotect or mkold would issue. What each command does
 * is its own class's (see {@link ScenarioCommands}); this class holds the state they share, turns
 * a library refusal into a {@code file:line} message with the command's hint, and prints what the
 * commands have in common (results of expectations, leaf breakdowns, the summary).
 *
 * <p>With an output writer every command prints its result; without one the run is silent.
 * Failed expectations go to the error writer and are counted; every other problem ends the run
 * with a {@link ScenarioException}.
 */
public final class Machine {
    private final String file;
    private final PrintWriter out;
    private final PrintWriter err;

    private TableSpec spec;
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
    public Machine(String file, PrintWriter out, PrintWriter err) {
        this.file = file;
        this.out = out;
        this.err = err;
    }

    public int failed() {
        return failed;
    }

    public void run(List<Step> script) throws ScenarioException {
        for (Step s : script) {
            try {
                s.action().run(this);
            } catch (PageTableException e) {
                throw ScenarioException.at(file, s.line(), s.verb() + " failed: " + e.getMessage(),
                        s.command().expected(e.errno(), this));
            } catch (IllegalArgumentException e) {
                // The sim library's argument checks name the argument and the rule.
                String hint = s.command().argumentHint();
                if (hint == null) throw broken(s, e);
                throw ScenarioException.at(file, s.line(), s.verb() + " failed: " + e.getMessage(), hint);
            } catch (RuntimeException e) {
                throw broken(s, e);
            }
            commands++;
        }
        if (table == null) {
            throw new ScenarioException(file + ": no table line; expected a \"stage2 ...\", \"hyp ...\" or \"vm ...\" line");
        }
    }

    /** A broken invariant or a library bug: still name the line that triggered it. */
    private ScenarioException broken(Step s, RuntimeException e) {
        return new ScenarioException(file + ":" + s.line() + ": " + s.verb() + " failed: " + e
                + "; expected the operation to succeed", e);
    }

    /** What a library refusal with {@code errno} expects, unless the command knows better. */
    String expectedByDefault(Errno errno) {
        switch (errno) {
            case EINVAL:
                return "valid arguments";
            case ERANGE: {
                Geometry g = spec.geometry();
                return "a range inside the " + g.iaBits() + "-bit " + addrName() + " space [0, " + Numbers.hex(g.iaLimit()) + ")";
            }
            case ENOMEM:
                return "the tables to fit in table memory (raise mem-size= on the " + (vm != null ? "vm" : "table") + " line)";
            case EEXIST:
                return "no live mapping in the way (hyp map never replaces one: unmap it first)";
            default:
                return "the operation to succeed";
        }
    }

    /** " to the 4k granule" (empty before the table line). */
    String toTheGranule() {
        return spec == null ? "" : " to the " + spec.geometry().granule().label() + " granule";
    }

    /** The EINVAL hint of a command on an {@code ADDR SIZE} range. */
    String alignedRangeExpected() {
        return addrName() + " and SIZE aligned" + toTheGranule() + ", SIZE above 0";
    }

    String addrName() {
        return spec != null && !spec.stage2() ? "VA" : "IPA";
    }

    // ------------------------------------------------------------------------------------------
    // Set-up by the table line

    /** The table line's spec: set first, so a refusal while building the table gets its hints. */
    void use(TableSpec spec) {
        this.spec = spec;
    }

    /**
     * The table the table line built, its memory and TLB system ({@code vm}: the VM they belong
     * to, else null); adds the scenario's cpu0 (TLB, MMU) and, for stage-2, its memory cache.
     */
    void attach(PhysicalMemory memory, TlbSystem tlbs, PageTable table, Vm vm, boolean hardwareAf) {
        Geometry g = spec.geometry();
        this.memory = memory;
        this.tlbs = tlbs;
        this.vm = vm;
        this.table = table;
        tlb = new Tlb("cpu0", g.granule());
        tlbs.register(tlb);
        if (table instanceof Stage2PageTable) {
            stage2 = (Stage2PageTable) table;
            fwb = stage2.fwb();
            // Topped up before each command to that command's worst case (topUp below), not a
            // vCPU's fault cache: capacity 1 keeps it at that bound instead of the kernel's 40.
            cache = new MemCache(memory, 1);
        } else {
            hyp = (HypPageTable) table;
        }
        mmu = new Mmu(g, memory, tlb, table.rootPa(), spec.stage2() ? spec.vmid() : 0, fwb, hardwareAf);
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
            if ((spec.flags() & Stage2PageTable.NO_XNX) != 0) sb.append(", no xnx");
            if ((spec.flags() & Stage2PageTable.IDMAP) != 0) sb.append(", idmap");
        }
        return sb.toString();
    }

    /** The header, the table-memory window and checking: what a table line prints. */
    String tableLine() {
        return header() + "; table memory [" + Numbers.hex(spec.memBase()) + ", +" + Numbers.size(spec.memSize()) + ")"
                + (spec.checking() ? "; checking on" : "");
    }

    // ------------------------------------------------------------------------------------------
    // What commands share

    TableSpec spec() { return spec; }
    Geometry geometry() { return spec.geometry(); }
    PhysicalMemory memory() { return memory; }
    TlbSystem tlbs() { return tlbs; }
    /** The scenario's own CPU's TLB (cpu0). */
    Tlb tlb() { return tlb; }
    /** Null on a hyp table. */
    Stage2PageTable stage2() { return stage2; }
    /** Null on a stage-2 table. */
    HypPageTable hyp() { return hyp; }
    /** The stage-2 memory cache (null on a hyp table). */
    MemCache cache() { return cache; }
    /** Null unless the table line was {@code vm}. */
    Vm vm() { return vm; }
    List<Memslot> slots() { return slots; }

    /** Whether command results are printed (no output writer: a silent run). */
    boolean printing() {
        return out != null;
    }

    /** The output writer (null: a silent run; see {@link #printing}). */
    PrintWriter out() {
        return out;
    }

    void print(String s) {
        if (out != null) out.println(s);
    }

    /** In checking mode, table refcounts are verified after every change. */
    void check() {
        if (spec.checking()) table.checkRefcounts();
    }

    /** Whether {@code [addr, addr + size)} is a non-empty range inside the input-address space. */
    boolean inside(long addr, long size) {
        long limit = spec.geometry().iaLimit();
        return size > 0 && addr < limit && size <= limit - addr;
    }

    /**
     * How many frames a memory cache can be given when {@code want} are wanted: capped by the free
     * table frames (plus those {@code holding} has already, null: none) and a cache's size limit,
     * so an operation that cannot fit fails inside the library with ENOMEM.
     */
    int framesFor(long want, MemCache holding) {
        long free = memory.frameCount() - memory.framesInUse() + (holding == null ? 0 : holding.size());
        return (int) Math.min(Math.min(want, free), Integer.MAX_VALUE - 8);
    }

    /** Tops the stage-2 memory cache up to {@code bound} frames (capped: {@link #framesFor}). */
    void topUp(long bound) {
        cache.topUp(framesFor(bound, cache));
    }

    /**
     * Counts and prints the outcome of an expect-style check: {@code echo: ok} or {@code echo:
     * FAILED, got ...} on the output, {@code file:line: expected wanted, got ...} on stderr.
     */
    void result(String echo, int line, String wanted, boolean ok, String got) {
        result(echo, line, wanted, ok, got, "got " + got);
    }

    /** {@link #result}, with {@code echo: FAILED, failure} on the output when it fails. */
    void result(String echo, int line, String wanted, boolean ok, String got, String failure) {
        if (ok) {
            passed++;
            print(echo + ": ok");
            return;
        }
        failed++;
        print(echo + ": FAILED, " + failure);
        err.println(file + ":" + line + ": expected " + wanted + ", got " + got);
        err.flush();
    }

    /** "512 x 4K pages" or "1 x 1G block, 511 x 2M blocks": the valid leaves now in the range. */
    String leafBreakdown(long addr, long size) {
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

    /** "L3 4K page 0x40000000-0x40000fff, now rw" style name of the leaf translating {@code addr}. */
    String leafName(long addr) {
        Leaf leaf = table.getLeaf(addr);
        if (!Pte.isValid(leaf.pte())) return "L" + leaf.level() + " entry (invalid)";
        long span = spec.geometry().granule().levelSize(leaf.level());
        return "L" + leaf.level() + " " + Numbers.size(span) + " " + (leaf.level() == Granule.LAST_LEVEL ? "page" : "block") + " "
                + Numbers.range(addr & -span, span) + ", now " + Describe.leafAttrs(spec.geometry(), fwb, leaf.pte());
    }

    static String plural(long n, String one, String many) {
        return n + " " + (n == 1 ? one : many);
    }

    // ------------------------------------------------------------------------------------------
    // What the ptlab commands read after the run

    /** The scenario's table (after {@link #run}). */
    public PageTable table() {
        return table;
    }

    /** Whether the stage-2 table was built for HCR_EL2.FWB (it changes how MemAttr decodes). */
    public boolean fwb() {
        return fwb;
    }

    public Translation translate(long addr, Access access) {
        return mmu.translateDetailed(addr, access);
    }

    public String describe(Translation t) {
        return Describe.translation(spec.geometry(), fwb, t);
    }

    public void dump(PrintWriter w) {
        TableDump.print(table, header(), fwb, w);
    }

    /** Table frames in use (memory-cache contents excluded, the VM's caches too). */
    long tableFrames() {
        return memory.framesInUse() - (cache == null ? 0 : cache.size()) - (vm == null ? 0 : vm.cachedFrames());
    }

    /** TLBI kinds in the order the summary and per-command counts name them. */
    private static final String[] TLBI_KIND_NAMES = {"by IPA", "range", "VMID", "hyp VA", "local"};
    private static final List<ToLongFunction<TlbSystem>> TLBI_KINDS = List.of(TlbSystem::ipaFlushes,
            TlbSystem::rangeFlushes, TlbSystem::vmidFlushes, TlbSystem::hypVaFlushes, TlbSystem::localIpaFlushes);

    /** TLBIs by kind so far ({@link #TLBI_KIND_NAMES}' order). */
    long[] tlbiKinds() {
        long[] n = new long[TLBI_KINDS.size()];
        for (int i = 0; i < n.length; i++) n[i] = TLBI_KINDS.get(i).applyAsLong(tlbs);
        return n;
    }

    /**
     * The TLBIs issued since {@code total} and {@code kinds} were taken: "1 range TLBI", "2 TLBIs
     * by IPA", "3 TLBIs (2 by IPA, 1 range)".
     */
    String tlbisSince(long total, long[] kinds) {
        long[] now = tlbiKinds();
        StringBuilder sb = new StringBuilder();
        int nonZero = 0;
        int only = -1;
        for (int i = 0; i < now.length; i++) {
            append(sb, now[i] - kinds[i], TLBI_KIND_NAMES[i]);
            if (now[i] != kinds[i]) {
                nonZero++;
                only = i;
            }
        }
        long n = tlbs.totalFlushes() - total;
        if (nonZero == 1 && now[only] - kinds[only] == n) {
            return only == 0 ? plural(n, "TLBI", "TLBIs") + " by IPA" : n + " " + TLBI_KIND_NAMES[only] + (n == 1 ? " TLBI" : " TLBIs");
        }
        return plural(n, "TLBI", "TLBIs") + (sb.length() == 0 ? "" : " (" + sb + ")");
    }

    /** The final line of {@code run}. */
    public String summary() {
        long frames = tableFrames();
        long[] kinds = tlbiKinds();
        StringBuilder tl = new StringBuilder();
        for (int i = 0; i < kinds.length; i++) append(tl, kinds[i], TLBI_KIND_NAMES[i]);
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
