package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A stage-2 table on checking-mode physical memory, with a TLB system, one CPU's MMU whose TLB
 * is registered (so the table's TLBIs keep it coherent), and a memory cache. Test support.
 */
public final class Fixture {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    public static final long MEM_BASE = 0x10_0000_0000L;
    public static final int VMID = 7;

    public final Granule granule;
    public final PhysicalMemory mem;
    public final TlbSystem tlbs = new TlbSystem();
    public final Stage2PageTable table;
    public final MemCache cache;
    public final Tlb tlb;
    public final Mmu mmu;
    /** Frames in use before the table existed. */
    public final long baseline;

    public Fixture(Granule g, int ipaBits, int tableFlags) {
        this(g, ipaBits, tableFlags, 512L << 20);
    }

    public Fixture(Granule g, int ipaBits, int tableFlags, long memBytes) {
        granule = g;
        mem = new PhysicalMemory(MEM_BASE, memBytes, g, true);
        baseline = mem.framesInUse();
        table = new Stage2PageTable(Geometry.stage2(g, ipaBits), mem, tlbs, VMID, tableFlags);
        cache = new MemCache(mem);
        tlb = new Tlb("cpu0", g);
        tlbs.register(tlb);
        mmu = new Mmu(table.geometry(), mem, tlb, table.rootPa(), VMID, table.fwb(), false);
    }

    public Status map(long ipa, long size, long pa, Prot prot) {
        return map(ipa, size, pa, prot, 0);
    }

    public Status map(long ipa, long size, long pa, Prot prot, int flags) {
        topUpFor(size);
        return table.map(ipa, size, pa, prot, cache, flags);
    }

    /** Tops the cache up to the worst case for a range: a new table under every entry it overlaps, at each level. */
    public void topUpFor(long size) {
        long need = 0;
        for (int level = table.geometry().startLevel(); level < 3; level++) {
            need += size / table.geometry().granule().levelSize(level) + 2;
        }
        cache.topUp((int) need);
    }

    /** Translates for a read; returns the PA, failing the test on a fault. */
    public long pa(long addr) {
        long r = mmu.translate(addr, Access.READ);
        assertThat(Translation.isFault(r)).as("0x%x translates (got %s)", addr, describe(r)).isFalse();
        return r;
    }

    public void assertFault(long addr, Access access, FaultType type, int level) {
        long r = mmu.translate(addr, access);
        assertThat(describe(r)).as("0x%x %s", addr, access).isEqualTo(type + "@" + level);
    }

    public static String describe(long r) {
        return Translation.isFault(r) ? Translation.faultType(r) + "@" + Translation.faultLevel(r) : "pa 0x" + Long.toHexString(r);
    }

    /** Frames in use beyond the roots (tables + memory cache contents). */
    public long tableFrames() {
        return mem.framesInUse() - baseline - table.geometry().rootPages() - cache.size();
    }

    /** Destroys the table, releases the cache, and checks every frame came back. */
    public void destroyAndCheck() {
        table.checkRefcounts();
        table.destroy();
        cache.release();
        assertThat(mem.framesInUse()).as("frames in use after destroy").isEqualTo(baseline);
    }

    /** Valid leaves in a range, as (address, level, pte), found by a LEAF walk. */
    public static List<long[]> leaves(PageTable t, long addr, long size) {
        List<long[]> out = new ArrayList<>();
        t.walk(addr, size, (ctx, v) -> {
            if (Pte.isValid(ctx.old())) out.add(new long[] {ctx.entryBase(), ctx.level(), ctx.old()});
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        return out;
    }

    /** Every table frame reachable from the roots, with a copy of its entries. */
    public static Map<Long, List<Long>> snapshot(PageTable t) {
        Map<Long, List<Long>> out = new TreeMap<>();
        Geometry g = t.geometry();
        for (int i = 0; i < g.rootPages(); i++) {
            copy(t, t.rootPa() + i * g.granule().pageSize(), g.startLevel(), out);
        }
        return out;
    }

    private static void copy(PageTable t, long pa, int level, Map<Long, List<Long>> out) {
        long[] f = FRAMES.frame(t.memory(), pa);
        List<Long> entries = new ArrayList<>(f.length);
        for (long e : f) entries.add(e);
        out.put(pa, entries);
        for (long e : Arrays.copyOf(f, f.length)) {
            if (Pte.isTable(e, level)) copy(t, t.geometry().outputAddress(e), level + 1, out);
        }
    }
}
