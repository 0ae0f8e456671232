package dev.ptlab.bench;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.core.table.Stage2PageTable;

/**
 * The table every benchmark uses: a 48-bit IPA, 4K-granule stage-2 table (four levels, start
 * level 0) with FWB and range TLBI, checking mode off, and 1 GiB of IPA space at
 * {@link #IPA} mapped in 4K pages to {@link #PA}. The PA is offset by one page from a 2 MiB
 * boundary, so no block fits and map places exactly {@link #PAGES} level-3 leaves.
 */
final class Fixture {
    static final long IPA = 0x4000_0000L;
    static final long PA = 0x8000_1000L;
    /**
     * A PA 2 MiB-aligned but not 1 GiB-aligned: map of the GiB to it places exactly
     * {@link #BLOCKS} level-2 blocks (a 1 GiB-aligned PA would give one level-1 block).
     */
    static final long BLOCK_PA = 0x8020_0000L;
    static final long SIZE = 1L << 30;
    static final int PAGES = (int) (SIZE >>> 12);
    /** 2 MiB blocks in the GiB. */
    static final int BLOCKS = (int) (SIZE >>> 21);
    /** Pages per 2 MiB block (entries of one level-3 table). */
    static final int PAGES_PER_BLOCK = PAGES / BLOCKS;
    /** Tables one GiB of pages needs below an empty root: one L1, one L2 and 512 L3 tables. */
    static final int TABLES = 1 + 1 + 512;
    static final int VMID = 1;

    final PhysicalMemory memory;
    final TlbSystem tlbs = new TlbSystem();
    final Tlb tlb = new Tlb("cpu0", Granule.G4K);
    final Stage2PageTable table;
    final MemCache cache;

    Fixture() {
        memory = new PhysicalMemory(0x1_0000_0000L, 64L << 20, Granule.G4K, false);
        tlbs.register(tlb);
        table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 48), memory, tlbs, VMID,
                Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI);
        cache = new MemCache(memory);
        if (table.geometry().startLevel() != 0 || table.geometry().rootPages() != 1) {
            throw new IllegalStateException("expected a 4-level table with one root, got " + table.geometry());
        }
    }

    /** Maps the whole GiB in pages and checks that it took exactly {@link #PAGES} leaves. */
    void mapAll() {
        cache.topUp(TABLES + 8);
        long before = table.counters().leavesInstalled();
        table.map(IPA, SIZE, PA, Prot.RW, cache);
        checkMapped(before);
    }

    void checkMapped(long leavesBefore) {
        long leaves = table.counters().leavesInstalled() - leavesBefore;
        if (leaves != PAGES) throw new IllegalStateException("map installed " + leaves + " leaves, expected " + PAGES);
        Leaf first = table.getLeaf(IPA);
        Leaf last = table.getLeaf(IPA + SIZE - 1);
        if (first.level() != 3 || !first.valid() || last.level() != 3 || !last.valid()) {
            throw new IllegalStateException("expected level-3 pages at both ends, got " + first + " and " + last);
        }
    }

    /**
     * Maps the whole GiB as {@link #BLOCKS} level-2 blocks to {@link #BLOCK_PA} and checks the
     * shape (an L1 and an L2 table, 512 blocks).
     */
    void mapBlocks() {
        cache.topUp(8);
        long before = table.counters().leavesInstalled();
        table.map(IPA, SIZE, BLOCK_PA, Prot.RW, cache);
        long leaves = table.counters().leavesInstalled() - before;
        if (leaves != BLOCKS) throw new IllegalStateException("map installed " + leaves + " leaves, expected " + BLOCKS);
        checkLeafLevel(2);
    }

    /** Checks that both ends of the GiB are valid leaves at {@code level} with the PA of {@link #BLOCK_PA}. */
    void checkLeafLevel(int level) {
        Leaf first = table.getLeaf(IPA);
        Leaf last = table.getLeaf(IPA + SIZE - 1);
        long lastPa = table.geometry().outputAddress(last.pte());
        long expectLast = (BLOCK_PA + SIZE - 1) & -table.geometry().granule().levelSize(level);
        if (first.level() != level || !first.valid() || last.level() != level || !last.valid()
                || table.geometry().outputAddress(first.pte()) != BLOCK_PA || lastPa != expectLast) {
            throw new IllegalStateException("expected level-" + level + " leaves to PA 0x" + Long.toHexString(BLOCK_PA)
                    + " at both ends, got " + first + " and " + last);
        }
    }

    void unmapAll() {
        unmapAll(PAGES);
    }

    /** Unmaps the GiB, which must hold {@code expectedLeaves} leaves, and checks every table was freed. */
    void unmapAll(int expectedLeaves) {
        long before = table.counters().leavesRemoved();
        table.unmap(IPA, SIZE);
        checkUnmapped(before, expectedLeaves);
    }

    void checkUnmapped(long leavesBefore) {
        checkUnmapped(leavesBefore, PAGES);
    }

    void checkUnmapped(long leavesBefore, int expectedLeaves) {
        long leaves = table.counters().leavesRemoved() - leavesBefore;
        if (leaves != expectedLeaves) {
            throw new IllegalStateException("unmap removed " + leaves + " leaves, expected " + expectedLeaves);
        }
        // Every table below the root was emptied and freed: only the root and the cache remain.
        long expected = 1 + cache.size();
        if (memory.framesInUse() != expected) {
            throw new IllegalStateException(memory.framesInUse() + " frames in use after unmap, expected " + expected);
        }
    }
}
