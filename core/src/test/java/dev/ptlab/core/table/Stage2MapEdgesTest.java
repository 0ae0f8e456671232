package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Stage-2 map at its edges, with the counts it reports: bulk runs of leaves that end inside a
 * block-sized entry, the force-pages callback, the unmap-first coalescing order's counts
 * (exclusive and shared); and the argument checks of the attribute walks (wrprotect,
 * testClearYoung, flush) and of the table's constructor.
 */
class Stage2MapEdgesTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long A = G1 + 4 * M2, P = 0x8000_0000L;

    /**
     * With FWB and no execute right no cache maintenance is due, so map fills runs of leaves in
     * bulk. A range of two blocks and a page: the level-2 run holds two blocks (the third
     * entry is only partly inside the range) and the page goes into a new level-3 table.
     */
    @Test
    void aBulkRunOfBlocksStopsBeforeAnEntryTheRangeEndsInside() {
        Fixture f = new Fixture(Granule.G4K, 40, Stage2PageTable.FWB);
        assertThat(f.map(A, 2 * M2 + K4, P, Prot.RW)).isEqualTo(Status.OK);
        List<long[]> leaves = Fixture.leaves(f.table, A, 4 * M2);
        assertThat(leaves).hasSize(3);
        assertThat(leaves.get(0)).containsExactly(A, 2, f.table.getLeaf(A).pte());
        assertThat(leaves.get(1)[0]).isEqualTo(A + M2);
        assertThat(leaves.get(1)[1]).isEqualTo(2);
        assertThat(leaves.get(2)[0]).isEqualTo(A + 2 * M2);
        assertThat(leaves.get(2)[1]).isEqualTo(3);
        assertThat(f.table.getLeaf(A + 2 * M2 + K4).pte()).isZero();
        assertThat(f.pa(A + M2 + 5 * K4)).isEqualTo(P + M2 + 5 * K4);
        assertThat(f.table.counters().leavesInstalled()).isEqualTo(3);
        f.destroyAndCheck();
    }

    /** A bulk run of pages counts every leaf it installs: 8 pages from an empty level-3 table. */
    @Test
    void aBulkRunCountsEveryLeafItInstalls() {
        Fixture f = new Fixture(Granule.G4K, 40, Stage2PageTable.FWB);
        f.map(A + 3 * K4, 8 * K4, P, Prot.RW);
        assertThat(f.table.counters().leavesInstalled()).isEqualTo(8);
        assertThat(f.table.counters().tablesInstalled()).isEqualTo(2); // level 2 under root entry 1, level 3 under it
        f.destroyAndCheck();
    }

    @Test
    void theForcePagesCallbackSeesTheRangeAndItsVerdictDecidesTheLeafSize() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        List<String> calls = new ArrayList<>();
        f.table.setForcePteCallback((addr, end, prot) -> {
            calls.add("0x" + Long.toHexString(addr) + "..0x" + Long.toHexString(end) + " " + prot);
            return addr == A;
        });
        f.map(A, M2, P, Prot.RW);
        f.map(A + M2, M2, P + M2, Prot.R);
        assertThat(calls).containsExactly("0x" + Long.toHexString(A) + "..0x" + Long.toHexString(A + M2) + " " + Prot.RW,
                "0x" + Long.toHexString(A + M2) + "..0x" + Long.toHexString(A + 2 * M2) + " " + Prot.R);
        assertThat(f.table.getLeaf(A + 7 * K4).level()).as("forced to pages").isEqualTo(3);
        assertThat(f.table.getLeaf(A + M2 + 7 * K4).level()).as("not forced: a block").isEqualTo(2);
        f.table.setForcePteCallback(null);
        f.destroyAndCheck();
    }

    /**
     * Unmap-first coalescing of a level-3 table of 511 pages into a block: one table entry
     * broken, one block installed, one table freed, and an invalid window of 512 walker steps
     * (the teardown visits each of the old table's 512 entries once). Exclusive: freed in the
     * window. Shared: the old subtree (level-2 entry at A) goes to the free-unlinked hook.
     */
    @Test
    void unmapFirstCoalescingCountsItsBreakItsWindowAndTheTableItFrees() {
        for (boolean shared : new boolean[] {false, true}) {
            Fixture f = new Fixture(Granule.G4K, 40, 0);
            f.table.setCoalescePolicy(CoalescePolicy.UNMAP_FIRST);
            List<String> hooked = new ArrayList<>();
            f.table.setFreeUnlinkedHook((t, subtree) -> {
                hooked.add("level " + subtree.level() + " base 0x" + Long.toHexString(subtree.base()));
                t.freeUnlinked(subtree);
            });
            f.map(A, M2 - K4, P, Prot.RW);
            f.table.counters().reset();
            assertThat(f.map(A, M2, P, Prot.RW, shared ? WalkFlags.SHARED : 0)).isEqualTo(Status.OK);
            TableCounters c = f.table.counters();
            assertThat(c.coalesced()).as("shared %s", shared).isEqualTo(1);
            assertThat(c.breakBeforeMake()).as("shared %s", shared).isEqualTo(1);
            assertThat(c.invalidWindowSteps()).as("shared %s", shared).isEqualTo(512);
            assertThat(c.leavesInstalled()).as("shared %s", shared).isEqualTo(1);
            assertThat(c.tablesFreed()).as("shared %s", shared).isEqualTo(1);
            assertThat(c.raced()).as("shared %s", shared).isZero();
            assertThat(hooked).as("shared %s", shared).isEqualTo(shared ? List.of("level 2 base 0x" + Long.toHexString(A)) : List.of());
            assertThat(f.table.getLeaf(A).level()).isEqualTo(2);
            f.destroyAndCheck();
        }
    }

    // ---------------------------------------------------------------------------------------
    // argument checks

    @Test
    void attributeWalksRefuseUnalignedAndEmptyRanges() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, M2, P, Prot.RW);
        long block = f.table.getLeaf(A).pte();
        assertThatThrownBy(() -> f.table.wrprotect(A + 8, K4)).isInstanceOf(PageTableException.class)
                .extracting(e -> ((PageTableException) e).argument()).isEqualTo("ipa");
        assertThatThrownBy(() -> f.table.testClearYoung(A + 8, K4, true)).isInstanceOf(PageTableException.class)
                .extracting(e -> ((PageTableException) e).argument()).isEqualTo("ipa");
        assertThatThrownBy(() -> f.table.flush(A + 8, K4)).isInstanceOf(PageTableException.class)
                .extracting(e -> ((PageTableException) e).argument()).isEqualTo("ipa");
        assertThatThrownBy(() -> f.table.testClearYoung(A, 0, true)).isInstanceOf(PageTableException.class)
                .extracting(e -> ((PageTableException) e).argument()).isEqualTo("size");
        assertThat(f.table.getLeaf(A).pte()).as("nothing changed").isEqualTo(block);
        f.destroyAndCheck();
    }

    /** Called from a visitor of a walk of the same table, each refuses naming itself (not the walk it would start). */
    @Test
    void attributeWalksCalledFromAVisitorNameThemselves() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.RW);
        List<String> refused = new ArrayList<>();
        f.table.walk(A, K4, (ctx, v) -> {
            for (Runnable op : new Runnable[] {() -> f.table.wrprotect(A, K4), () -> f.table.testClearYoung(A, K4, true),
                    () -> f.table.flush(A, K4)}) {
                try {
                    op.run();
                    refused.add("allowed");
                } catch (IllegalStateException e) {
                    refused.add(e.getMessage().substring(0, e.getMessage().indexOf(' ')));
                }
            }
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(refused).containsExactly("wrprotect", "testClearYoung", "flush");
        f.destroyAndCheck();
    }

    @Test
    void vmidRangeIsZeroTo65535AndVtcrDescribesTheGeometry() {
        PhysicalMemory mem = new PhysicalMemory(Fixture.MEM_BASE, 16L << 20, Granule.G4K, true);
        Geometry g = Geometry.stage2(Granule.G4K, 40);
        for (int vmid : new int[] {0, 0xFFFF}) {
            Stage2PageTable t = new Stage2PageTable(g, mem, new TlbSystem(), vmid, 0);
            assertThat(t.vmid()).isEqualTo(vmid);
            // T0SZ and SL0 read back: 40-bit IPA, level-1 start (two concatenated roots).
            assertThat(Registers.vtcrIpaBits(t.vtcr(false))).isEqualTo(40);
            assertThat(Registers.vtcrStartLevel(t.vtcr(true), Granule.G4K)).isEqualTo(1);
            t.destroy();
        }
        for (int vmid : new int[] {-1, 0x10000}) {
            assertThatThrownBy(() -> new Stage2PageTable(g, mem, new TlbSystem(), vmid, 0)).isInstanceOf(PageTableException.class)
                    .extracting(e -> ((PageTableException) e).argument()).isEqualTo("vmid");
        }
        assertThat(mem.framesInUse()).as("a refused table gives its roots back").isZero();
    }
}
