package dev.ptlab.core.table;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * A stage-2 table on checking-mode memory whose TLB maintenance and cache maintenance all go
 * into one {@link OpsLog}, with one vCPU (TLB registered with the log's TLB system, MMU without
 * hardware AF update) and a memory cache. Test support.
 */
final class OpsRig {
    static final long MEM_BASE = 0x10_0000_0000L;
    static final int VMID = 5;

    final Granule granule;
    final PhysicalMemory mem;
    final OpsLog log = new OpsLog();
    final Stage2PageTable table;
    final MemCache cache;
    final Tlb tlb;
    final Mmu mmu;

    OpsRig(Granule g, int ipaBits, int tableFlags) {
        this(g, ipaBits, tableFlags, 256L << 20);
    }

    OpsRig(Granule g, int ipaBits, int tableFlags, long memBytes) {
        granule = g;
        mem = new PhysicalMemory(MEM_BASE, memBytes, g, true);
        table = new Stage2PageTable(Geometry.stage2(g, ipaBits), mem, log, VMID, tableFlags);
        log.table = table;
        mem.cacheMaintenance().setListener(log);
        cache = new MemCache(mem);
        tlb = new Tlb("cpu0", g);
        log.hw.register(tlb);
        mmu = new Mmu(table.geometry(), mem, tlb, table.rootPa(), VMID, table.fwb(), false);
    }

    /** A second vCPU of the same VM (its TLB gets broadcast invalidations only). */
    Mmu otherCpu(String name) {
        Tlb t = new Tlb(name, granule);
        log.hw.register(t);
        return new Mmu(table.geometry(), mem, t, table.rootPa(), VMID, table.fwb(), false);
    }

    Status map(long ipa, long size, long pa, String prot) {
        return map(ipa, size, pa, prot, 0);
    }

    Status map(long ipa, long size, long pa, String prot, int flags) {
        cache.topUp(16);
        return table.map(ipa, size, pa, Prot.parse(prot), cache, flags);
    }

    /** Frames in use outside the memory cache: roots and table frames. */
    long frames() {
        return mem.framesInUse() - cache.size();
    }

    long page() {
        return granule.pageSize();
    }

    long span(int level) {
        return granule.levelSize(level);
    }

    /** The entry at {@code level} on the walk path of {@code addr} (a table entry, or the leaf if the path ends there). */
    long entryAt(long addr, int level) {
        long[] found = {Long.MIN_VALUE};
        table.walk(addr, 1, (ctx, v) -> {
            if (ctx.level() == level) found[0] = ctx.old();
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
        if (found[0] == Long.MIN_VALUE) throw new AssertionError("walk of 0x" + Long.toHexString(addr) + " never reached level " + level);
        return found[0];
    }

    /** PA of the table frame the level-{@code level} entry for {@code addr} points at. */
    long childOf(long addr, int level) {
        long e = entryAt(addr, level);
        if (!Pte.isTable(e, level)) throw new AssertionError("level-" + level + " entry for 0x" + Long.toHexString(addr) + " is not a table: 0x" + Long.toHexString(e));
        return table.geometry().outputAddress(e);
    }

    /** PA of the table frame holding the level-{@code level} entry for {@code addr}. */
    long frameHolding(long addr, int level) {
        long[] found = {Long.MIN_VALUE};
        table.walk(addr, 1, (ctx, v) -> {
            if (ctx.level() == level) found[0] = ctx.tablePa();
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
        if (found[0] == Long.MIN_VALUE) throw new AssertionError("walk of 0x" + Long.toHexString(addr) + " never reached level " + level);
        return found[0];
    }

    /**
     * Puts the LOCKED marker in the valid leaf translating {@code addr}, as a walker doing
     * break-before-make would (dropping the entry's reference), and returns the old value.
     */
    long lock(long addr) {
        long[] old = {0};
        table.walk(addr, 1, (ctx, v) -> {
            if (!Pte.isValid(ctx.old())) throw new AssertionError("nothing to lock at 0x" + Long.toHexString(addr));
            old[0] = ctx.old();
            ctx.trySet(Pte.LOCKED);
            ctx.putRef();
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        return old[0];
    }

    /** Ends what {@link #lock} began: publishes {@code value} over the LOCKED entry. */
    void unlock(long addr, long value) {
        table.walk(addr, 1, (ctx, v) -> {
            if (!Pte.isLocked(ctx.old())) throw new AssertionError("0x" + Long.toHexString(addr) + " is not locked");
            ctx.getRef();
            ctx.publish(value);
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
    }
}
