package dev.ptlab.conformance;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.image.TableImage;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.LongUnaryOperator;

/**
 * One table under test: built with the library's operations (and, for encodings the library never
 * writes, raw descriptor stores through the walker), the addresses to probe, ptlab's answers for
 * them, and the memory image QEMU walks.
 *
 * <p>The table's frames come from ptlab's default table window at 2^36 ({@link #WINDOW}), above
 * every small PA size the edge tables use; ptlab's answers come from its MMU walking the exported
 * image ({@link Mmu#overImage}), so root, table and leaf addresses are checked where QEMU sees
 * them (the image lives below 4G) — the case of issue 15's {@code ipa-bits=32}, PS 32 example.
 */
final class TableCase {
    static final long WINDOW = 0x10_0000_0000L;
    static final long WINDOW_SIZE = 128L << 20;
    static final int VMID = 9;

    final String name;
    final Geometry g;
    final int paBits;
    final boolean stage2;
    final PhysicalMemory mem;
    final PageTable table;
    final Stage2PageTable s2;
    final HypPageTable hyp;
    final MemCache cache;
    final Set<Long> addresses = new LinkedHashSet<>();
    /** What the table holds, for the coverage report: e.g. "block L1", "af=0", "annotation". */
    final Set<String> features = new LinkedHashSet<>();

    // Filled by finish():
    TableImage image;
    long[] addrs;
    /** ptlab's answers, two per address (read, write), in {@link Par}'s words. */
    String[] expected;

    TableCase(String name, Geometry g, int paBits) {
        this.name = name;
        this.g = g;
        this.paBits = paBits;
        this.stage2 = g.stage() == Stage.STAGE2;
        mem = new PhysicalMemory(WINDOW, WINDOW_SIZE, g.granule(), true);
        TlbSystem tlbs = new TlbSystem();
        if (stage2) {
            s2 = new Stage2PageTable(g, mem, tlbs, VMID, 0);
            hyp = null;
            table = s2;
        } else {
            hyp = new HypPageTable(g, mem, tlbs);
            s2 = null;
            table = hyp;
        }
        cache = new MemCache(mem);
    }

    long page() { return g.granule().pageSize(); }
    long top() { return g.iaLimit(); }
    long level(int l) { return g.granule().levelSize(l); }

    /**
     * Maps with the library (stage-2 replaces, hyp refuses to replace: false if it refused; a hyp
     * refusal is EINVAL, as the kernel's hyp_map_walker, and keeps what it mapped before it).
     */
    boolean map(long ia, long size, long pa, String prot) {
        try {
            if (stage2) {
                cache.topUp(64);
                s2.map(ia, size, pa, Prot.parse(prot), cache);
            } else {
                hyp.map(ia, size, pa, Prot.parse(prot));
            }
            return true;
        } catch (PageTableException e) {
            if ((!stage2 && e.errno() == Errno.EINVAL) || e.errno() == Errno.ENOMEM) return false;
            throw e;
        }
    }

    /**
     * Replaces the entry at {@code level} that translates {@code addr} with {@code f(old)}, through
     * a walk's context, keeping the table's reference counts exact. The walk must end at that level
     * (an invalid entry or a leaf there).
     */
    void poke(long addr, int level, LongUnaryOperator f) {
        int[] hit = {Integer.MIN_VALUE};
        table.walk(addr, 1, (ctx, visit) -> {
            hit[0] = ctx.level();
            if (ctx.level() != level) return Status.OK;
            long old = ctx.old();
            long now = f.applyAsLong(old);
            boolean was = ctx.isCounted(old), is = ctx.isCounted(now);
            // Break before make, as checking-mode memory insists (AF and permission changes are exempt).
            if (Pte.isValid(old) && Pte.isValid(now) && ((old ^ now) & Pte.TYPE) != 0) ctx.trySet(0);
            ctx.trySet(now);
            if (is && !was) ctx.getRef();
            if (was && !is) ctx.putRef();
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        if (hit[0] != level) {
            throw new IllegalStateException(name + ": poke 0x" + Long.toHexString(addr) + " wanted level " + level
                    + ", the walk ended at level " + hit[0]);
        }
    }

    /** Probe {@code a} and, where they exist, its neighbours one byte either side. */
    void around(long a) {
        add(a);
        add(a - 1);
        add(a + 1);
    }

    /** Probe the first, a middle and the last byte of {@code [start, start + size)}, and the bytes just outside. */
    void span(long start, long size, long middle) {
        add(start);
        add(start + middle);
        add(start + size - 1);
        add(start - 1);
        add(start + size);
    }

    void add(long a) {
        if (a < 0) return;
        addresses.add(a);
    }

    /** Valid leaves and non-zero invalid entries in {@code [start, start + size)}: {entryBase, span, descriptor}. */
    List<long[]> entries(long start, long size, int max) {
        List<long[]> out = new ArrayList<>();
        table.walk(start, size, (ctx, visit) -> {
            if (ctx.old() != 0 && out.size() < max) out.add(new long[] {ctx.entryBase(), ctx.entrySpan(), ctx.old()});
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        return out;
    }

    /** Lays out the image at {@code base}, computes ptlab's answers, and drops the table. */
    void finish(long base) {
        table.checkRefcounts();
        image = TableImage.of(table, base, paBits);
        Tlb tlb = new Tlb("cpu", g.granule());
        Mmu mmu = Mmu.overImage(image, tlb);
        addrs = addresses.stream().mapToLong(Long::longValue).toArray();
        expected = new String[addrs.length * 2];
        for (int i = 0; i < addrs.length; i++) {
            expected[2 * i] = Par.expected(mmu.translate(addrs[i], Access.READ), stage2);
            expected[2 * i + 1] = Par.expected(mmu.translate(addrs[i], Access.WRITE), stage2);
        }
    }

    /** The registers the probe programs: {VTCR, VTTBR, HCR} or {TCR, TTBR0, MAIR}. */
    long[] registers() {
        return stage2 ? new long[] {image.vtcr(), image.vttbr(), image.hcr()}
                : new long[] {image.tcrEl2(), image.ttbr0El2(), image.mairEl2()};
    }

    /** True if {@code pte} is a valid leaf at {@code level} (test helper for feature bookkeeping). */
    static boolean validLeaf(long pte, int level) {
        return Pte.isValidLeaf(pte, level);
    }

    @Override
    public String toString() {
        return name + " [" + g + ", PS " + paBits + "]";
    }
}
