package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Walk;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Misuse of the table API (issue 16): foreign memory caches, walk flags the operations must not
 * take, TLB maintenance failing inside break-before-make, operations re-entered from a visitor,
 * and null or out-of-range arguments. Each is refused (or undone) with an error naming what was
 * wrong, and the table stays consistent and usable afterwards.
 */
class HostileTableTest {
    static final long K4 = 4096, M2 = 2L << 20, G1 = 1L << 30;
    static final long A = 0x4000_0000L;
    static final long P = Fixture.MEM_BASE + 0x1000_0000L;

    static PageTableException refusal(Runnable r) {
        PageTableException e = catchThrowableOfType(r::run, PageTableException.class);
        assertThat(e).as("expected a PageTableException").isNotNull();
        return e;
    }

    /** Still consistent and usable: the checker passes, getLeaf, unmap and destroy work, nothing leaks. */
    static void assertUsable(Fixture f) {
        f.table.checkRefcounts();
        f.table.getLeaf(A);
        f.table.unmap(0, f.table.geometry().iaLimit());
        f.destroyAndCheck();
    }

    // ---- 1. a memory cache of another PhysicalMemory ----

    @Test
    void aCacheOfAnotherMemoryIsRefusedUpFrontWhetherOrNotItsBaseIsTheSame() {
        for (long base : new long[] {Fixture.MEM_BASE, 0x80_0000_0000L}) {
            Fixture f = new Fixture(Granule.G4K, 40, 0);
            f.map(A, M2, P, Prot.RW); // a block to split
            PhysicalMemory other = new PhysicalMemory(base, 64L << 20, Granule.G4K, true);
            MemCache foreign = new MemCache(other);
            foreign.topUp(600);
            Map<Long, List<Long>> before = Fixture.snapshot(f.table);
            assertThat(refusal(() -> f.table.map(A + G1, K4, P, Prot.RW, foreign)).argument()).isEqualTo("cache");
            assertThat(refusal(() -> f.table.map(A + G1, K4, P, Prot.RW, foreign, WalkFlags.SHARED)).argument())
                    .isEqualTo("cache");
            assertThat(refusal(() -> f.table.split(A, M2, foreign)).argument()).isEqualTo("cache");
            assertThat(refusal(() -> f.table.setOwner(A + G1, K4, foreign, 3)).argument()).isEqualTo("cache");
            assertThat(refusal(() -> f.table.createUnlinked(P, 2, Prot.RW, foreign, false)).argument())
                    .isEqualTo("cache");
            assertThat(Fixture.snapshot(f.table)).as("table unchanged (base 0x%x)", base).isEqualTo(before);
            assertThat(foreign.size()).as("nothing taken from the foreign cache").isEqualTo(600);
            foreign.release();
            assertUsable(f);
        }
    }

    @Test
    void idmapGreedyRefusesACacheOfAnotherMemory() {
        Fixture f = new Fixture(Granule.G4K, 40, Stage2PageTable.IDMAP);
        MemCache foreign = new MemCache(new PhysicalMemory(Fixture.MEM_BASE, 16L << 20, Granule.G4K, true));
        foreign.topUp(8);
        long addr = Fixture.MEM_BASE + 0x20_0000;
        assertThat(refusal(() -> f.table.idmapGreedy(addr, Prot.RW, AddressRange.ofSize(addr, M2), foreign)).argument())
                .isEqualTo("cache");
        assertThat(f.table.getLeaf(addr).pte()).isZero();
        assertUsable(f);
    }

    // ---- 2. walk flags ----

    @Test
    void operationsRefuseInternalUnknownAndAllFlagsNamingFlags() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.RW);
        long first = f.table.getLeaf(A).pte();
        long flushes = f.tlbs.ipaFlushes();
        for (int bad : new int[] {WalkFlags.SKIP_BBM_TLBI, WalkFlags.LEAF, WalkFlags.TABLE_PRE, WalkFlags.TABLE_POST, 1 << 7,
                1 << 31, -1}) {
            f.topUpFor(K4);
            assertThat(refusal(() -> f.table.map(A, K4, P + K4, Prot.RW, f.cache, bad)).argument())
                    .as("map flags %s", WalkFlags.toString(bad)).isEqualTo("flags");
            assertThat(refusal(() -> f.table.mkyoung(A, bad)).argument()).isEqualTo("flags");
            assertThat(refusal(() -> f.table.relaxPerms(A, Prot.RW, bad, null)).argument()).isEqualTo("flags");
        }
        assertThat(refusal(() -> f.table.mkyoung(A, WalkFlags.SKIP_CMO)).argument()).isEqualTo("flags");
        assertThat(f.table.getLeaf(A).pte()).as("still the first mapping").isEqualTo(first);
        assertThat(f.pa(A)).isEqualTo(P);
        assertThat(f.tlbs.ipaFlushes()).isEqualTo(flushes);
        // The flags the Javadoc lists are accepted.
        assertThat(f.table.map(A, K4, P + K4, Prot.RW, f.cache, WalkFlags.SKIP_CMO)).isEqualTo(Status.OK);
        assertThat(f.table.mkyoung(A, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT)).isEqualTo(Status.OK);
        assertThat(f.pa(A)).isEqualTo(P + K4);
        assertUsable(f);
    }

    @Test
    void mkyoungWithAllFlagsSetDoesNotTouchTableDescriptors() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.RW);
        Map<Long, List<Long>> before = Fixture.snapshot(f.table);
        refusal(() -> f.table.mkyoung(A, -1));
        assertThat(Fixture.snapshot(f.table)).isEqualTo(before);
        assertUsable(f);
    }

    @Test
    void aWalkWithUnknownFlagBitsIsRefused() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        assertThat(refusal(() -> f.table.walk(0, K4, (c, v) -> Status.OK, 1 << 9, null)).argument()).isEqualTo("flags");
        assertThat(WalkFlags.toString(WalkFlags.LEAF | 1 << 9)).isEqualTo("LEAF|0x200");
        assertUsable(f);
    }

    // ---- 3. TLB maintenance failing inside break-before-make ----

    /** A TlbMaintenance that forwards to a TlbSystem, failing one chosen call. */
    static final class FailingTlbi implements TlbMaintenance {
        final TlbSystem inner = new TlbSystem();
        /** Calls to let through before the one that fails; negative: none fails. */
        int failAfter = -1;
        int failures;

        private void maybeFail() {
            if (failAfter > 0) {
                failAfter--;
            } else if (failAfter == 0) {
                failAfter = -1;
                failures++;
                throw new IllegalStateException("injected TLBI failure");
            }
        }

        @Override public void flushVmidIpa(int vmid, long ipa, int levelHint) { maybeFail(); inner.flushVmidIpa(vmid, ipa, levelHint); }
        @Override public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
            maybeFail();
            inner.flushVmidIpaLocal(local, vmid, ipa, levelHint);
        }
        @Override public void flushVmidRange(int vmid, long ipa, long size) { maybeFail(); inner.flushVmidRange(vmid, ipa, size); }
        @Override public void flushVmid(int vmid) { maybeFail(); inner.flushVmid(vmid); }
        @Override public void flushHypVa(long va, int levelHint) { maybeFail(); inner.flushHypVa(va, levelHint); }
    }

    static PhysicalMemory memory() {
        return new PhysicalMemory(Fixture.MEM_BASE, 64L << 20, Granule.G4K, true);
    }

    /** Runs {@code op} with the next TLBI failing; the failure surfaces and the table is as before. */
    static void failsAndRestores(FailingTlbi tlbi, PageTable t, Runnable op) {
        Map<Long, List<Long>> before = Fixture.snapshot(t);
        tlbi.failAfter = 0;
        assertThatThrownBy(op::run).hasMessageContaining("injected TLBI failure");
        assertThat(tlbi.failures).as("the TLBI was reached").isPositive();
        tlbi.failures = 0;
        assertThat(Fixture.snapshot(t)).as("no LOCKED entry, nothing changed").isEqualTo(before);
        t.checkRefcounts();
    }

    @Test
    void aThrowingTlbiInsideBreakBeforeMakeRestoresTheOldEntryOnExclusiveAndSharedPaths() {
        PhysicalMemory m = memory();
        long baseline = m.framesInUse();
        FailingTlbi tlbi = new FailingTlbi();
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), m, tlbi, 1, 0);
        MemCache cache = new MemCache(m);
        cache.topUp(1200);
        assertThat(t.map(A, M2, P, Prot.RW, cache)).isEqualTo(Status.OK); // a block
        assertThat(t.map(A + M2, K4, P, Prot.RW, cache)).isEqualTo(Status.OK); // a table with one page
        // Replacing a leaf (exclusive, shared), shrinking a block into a table, splitting a block,
        // annotating over a leaf, coalescing a table into a block, unmapping a leaf and the table
        // emptied by it: each breaks a valid entry, and the TLBI fails.
        for (int flags : new int[] {0, WalkFlags.SHARED, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT}) {
            failsAndRestores(tlbi, t, () -> t.map(A, M2, P + M2, Prot.RW, cache, flags));
            failsAndRestores(tlbi, t, () -> t.map(A + 4 * K4, K4, P, Prot.R, cache, flags));
            failsAndRestores(tlbi, t, () -> t.map(A + M2, M2, P, Prot.RW, cache, flags));
        }
        for (CoalescePolicy policy : CoalescePolicy.values()) {
            t.setCoalescePolicy(policy);
            failsAndRestores(tlbi, t, () -> t.map(A + M2, M2, P, Prot.RW, cache));
        }
        failsAndRestores(tlbi, t, () -> t.split(A, M2, cache));
        failsAndRestores(tlbi, t, () -> t.setOwner(A, K4, cache, 5));
        failsAndRestores(tlbi, t, () -> t.unmap(A + M2, K4));
        failsAndRestores(tlbi, t, () -> t.unmap(A, M2));
        // Frames taken for tables that were never linked went back (checked by the count at the end).
        assertThat(t.getLeaf(A).level()).isEqualTo(2);
        t.unmap(A, 2 * M2);
        assertThat(t.getLeaf(A).pte()).isZero();
        destroyAndCount(t, cache, baseline);
    }

    @Test
    void aThrowingTlbiWhenAnEmptiedTableIsUnlinkedKeepsItLinked() {
        PhysicalMemory m = memory();
        long baseline = m.framesInUse();
        MemCache cache = new MemCache(m);
        cache.topUp(8);
        FailingTlbi tlbi = new FailingTlbi();
        Stage2PageTable u = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), m, tlbi, 2, 0);
        u.map(A, K4, P, Prot.RW, cache);
        // The leaf's TLBI goes through, the TLBI for unlinking the emptied table fails.
        tlbi.failAfter = 1;
        assertThatThrownBy(() -> u.unmap(A, K4)).hasMessageContaining("injected");
        assertThat(tlbi.failures).isOne();
        u.checkRefcounts();
        assertThat(u.getLeaf(A).pte()).isZero();
        assertThat(u.getLeaf(A).level()).as("the emptied level-3 table is still linked").isEqualTo(3);
        destroyAndCount(u, cache, baseline);
    }

    /** Destroys {@code t}, releases {@code cache}: the memory is back to {@code baseline} frames in use. */
    static void destroyAndCount(PageTable t, MemCache cache, long baseline) {
        t.destroy();
        cache.release();
        assertThat(t.memory().framesInUse()).as("frames in use after destroy").isEqualTo(baseline);
    }

    @Test
    void aThrowingTlbiInHypUnmapKeepsTheLeaf() {
        PhysicalMemory m = memory();
        FailingTlbi tlbi = new FailingTlbi();
        HypPageTable h = new HypPageTable(Geometry.hyp(Granule.G4K, 48), m, tlbi);
        h.map(A, K4, P, Prot.RW);
        failsAndRestores(tlbi, h, () -> h.unmap(A, K4));
        assertThat(h.getLeaf(A).pte()).isNotZero();
        assertThat(h.unmap(A, K4)).isEqualTo(K4);
        h.destroy();
    }

    @Test
    void throwingCacheMaintenanceBeforeTheMakeRestoresTheEntry() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.RW); // a leaf to replace
        f.map(A + M2, K4, P, Prot.RW); // a table to coalesce
        boolean[] armed = {false};
        f.mem.cacheMaintenance().setListener(new dev.ptlab.core.mem.CacheMaintenance.Listener() {
            @Override
            public void dcacheCleanInvalPoc(long pa, long size) {
                if (armed[0]) throw new IllegalStateException("injected CMO failure");
            }

            @Override
            public void icacheInvalPou(long pa, long size) {
                dcacheCleanInvalPoc(pa, size);
            }
        });
        f.topUpFor(4 * M2);
        for (CoalescePolicy policy : CoalescePolicy.values()) {
            f.table.setCoalescePolicy(policy);
            for (int flags : new int[] {0, WalkFlags.SHARED, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT}) {
                boolean gone = policy == CoalescePolicy.UNMAP_FIRST && flags == 0; // frees the old subtree first
                long[][] calls = {{A, K4}, {A + 8 * K4, K4}, {A + M2, M2}};
                for (long[] c : calls) {
                    Map<Long, List<Long>> before = Fixture.snapshot(f.table);
                    armed[0] = true;
                    assertThatThrownBy(() -> f.table.map(c[0], c[1], P + G1, Prot.RWX, f.cache, flags))
                            .hasMessageContaining("injected CMO failure");
                    armed[0] = false;
                    f.table.checkRefcounts();
                    if (gone && c[1] == M2) {
                        assertThat(f.table.getLeaf(c[0]).pte()).as("the freed subtree's entry is left empty").isZero();
                        f.map(A + M2, K4, P, Prot.RW);
                    } else {
                        assertThat(Fixture.snapshot(f.table)).as("%s %s 0x%x", policy, WalkFlags.toString(flags), c[0])
                                .isEqualTo(before);
                    }
                }
            }
        }
        assertThat(f.pa(A)).isEqualTo(P);
        assertUsable(f);
    }

    // ---- 4. re-entry from a visitor ----

    @Test
    void operationsCalledFromAVisitorOfTheSameTableAreRefused() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, 4 * K4, P, Prot.RW);
        Map<Long, List<Long>> before = Fixture.snapshot(f.table);
        String[] names = {"destroy", "unmap", "map", "wrprotect", "split", "walk", "checkRefcounts", "mkyoung"};
        Runnable[] ops = {
            f.table::destroy,
            () -> f.table.unmap(A, 4 * K4),
            () -> f.table.map(A, K4, P + K4, Prot.R, f.cache),
            () -> f.table.wrprotect(A, K4),
            () -> f.table.split(A, K4, f.cache),
            () -> f.table.walk(A, K4, (c, v) -> Status.OK, WalkFlags.LEAF, null),
            f.table::checkRefcounts,
            () -> f.table.mkyoung(A, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT),
        };
        for (int flags : new int[] {WalkFlags.LEAF, WalkFlags.LEAF | WalkFlags.SHARED}) {
            // Reading is allowed from any visitor.
            long[] seenLeaf = {0};
            f.table.walk(Walk.range(A, K4).flags(flags), (ctx, v) -> {
                seenLeaf[0] = f.table.getLeaf(A + K4).pte();
                return Status.OK;
            });
            assertThat(seenLeaf[0]).isEqualTo(f.table.getLeaf(A + K4).pte()).isNotZero();
            // A shared operation inside a shared walk is another CPU's fault beside it: allowed.
            int n = (flags & WalkFlags.SHARED) != 0 ? ops.length - 1 : ops.length;
            for (int i = 0; i < n; i++) {
                Runnable op = ops[i];
                RuntimeException[] seen = new RuntimeException[1];
                Status s = f.table.walk(Walk.range(A, K4).flags(flags), (ctx, v) -> {
                    try {
                        op.run();
                    } catch (RuntimeException e) {
                        seen[0] = e;
                    }
                    return Status.OK;
                });
                assertThat(s).isEqualTo(Status.OK);
                assertThat(seen[0]).as("%s from a %s visitor", names[i], WalkFlags.toString(flags))
                        .isInstanceOf(IllegalStateException.class);
                if ((flags & WalkFlags.SHARED) == 0 || i == 0) {
                    assertThat(seen[0]).hasMessageContaining(names[i]).hasMessageContaining("visitor");
                }
            }
        }
        assertThat(f.table.destroyed()).isFalse();
        assertThat(Fixture.snapshot(f.table)).isEqualTo(before);
        assertUsable(f);
    }

    @Test
    void hypOperationsCalledFromAVisitorAreRefused() {
        PhysicalMemory m = memory();
        HypPageTable h = new HypPageTable(Geometry.hyp(Granule.G4K, 48), m, new TlbSystem());
        h.map(A, K4, P, Prot.RW);
        RuntimeException[] seen = new RuntimeException[2];
        h.walk(A, K4, (ctx, v) -> {
            seen[0] = catchThrowableOfType(() -> h.unmap(A, K4), IllegalStateException.class);
            seen[1] = catchThrowableOfType(h::destroy, IllegalStateException.class);
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(seen[0]).hasMessageContaining("unmap");
        assertThat(seen[1]).hasMessageContaining("destroy");
        assertThat(h.getLeaf(A).pte()).isNotZero();
        h.checkRefcounts();
        h.destroy();
    }

    // ---- 5. argument errors instead of NPEs and raw array errors ----

    @Test
    void nullVisitorAndAVisitorReturningNullAreArgumentErrors() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, M2 + K4, P, Prot.RW);
        assertThat(refusal(() -> f.table.walk(A, K4, null, WalkFlags.LEAF, null)).argument()).isEqualTo("visitor");
        assertThat(refusal(() -> f.table.walk(null, (c, v) -> Status.OK)).argument()).isEqualTo("walk");
        for (int flags : new int[] {WalkFlags.LEAF, WalkFlags.LEAF | WalkFlags.SHARED, WalkFlags.TABLE_PRE,
                WalkFlags.LEAF | WalkFlags.TABLE_POST}) {
            int[] visits = {0};
            PageTableException e = refusal(() -> f.table.walk(A, M2 + K4, (c, v) -> {
                visits[0]++;
                return null;
            }, flags, null));
            assertThat(e.argument()).isEqualTo("visitor");
            assertThat(e).hasMessageContaining("returned null");
            assertThat(visits[0]).as("the walk stops at the first null").isEqualTo(1);
        }
        assertUsable(f);
    }

    @Test
    void aNullPolicyIsTheDefaultForTheFlags() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, 3 * K4, P, Prot.RW);
        // Default without HANDLE_FAULT: RANGE, which goes on after RACED; with it: FAULT, which stops.
        for (int flags : new int[] {WalkFlags.LEAF, WalkFlags.LEAF | WalkFlags.HANDLE_FAULT}) {
            int[] visits = {0};
            Status s = f.table.walk(A, 3 * K4, (c, v) -> {
                visits[0]++;
                return Status.RACED;
            }, flags, null);
            boolean fault = (flags & WalkFlags.HANDLE_FAULT) != 0;
            assertThat(visits[0]).as(WalkFlags.toString(flags)).isEqualTo(fault ? 1 : 3);
            assertThat(s).isEqualTo(fault ? Status.RACED : Status.OK);
        }
        assertUsable(f);
    }

    @Test
    void framesForFullSplitRefusesLevelsOutsideTheTable() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        assertThat(refusal(() -> f.table.framesForFullSplit(-100)).argument()).isEqualTo("level");
        assertThat(refusal(() -> f.table.framesForFullSplit(4)).argument()).isEqualTo("level");
        assertThat(refusal(() -> f.table.framesForFullSplit(f.table.geometry().startLevel() - 1)).argument())
                .isEqualTo("level");
        assertThat(f.table.framesForFullSplit(3)).isZero();
        assertThat(f.table.framesForFullSplit(2)).isEqualTo(1);
        assertThat(f.table.framesForFullSplit(1)).isEqualTo(513);
        f.destroyAndCheck();
    }

    @Test
    void freeUnlinkedRefusesAnotherTablesSubtree() {
        Fixture a = new Fixture(Granule.G4K, 40, 0);
        Stage2PageTable b = new Stage2PageTable(Geometry.stage2(Granule.G4K, 48), a.mem, a.tlbs, 9, 0);
        a.cache.topUp(a.table.framesForFullSplit(1));
        long inUse = a.mem.framesInUse();
        UnlinkedTable sub = a.table.createUnlinked(P & -G1, 1, Prot.RW, a.cache, false);
        assertThat(refusal(() -> b.freeUnlinked(sub)).argument()).isEqualTo("subtree");
        assertThat(sub.freed()).isFalse();
        a.table.freeUnlinked(sub);
        assertThat(a.mem.framesInUse()).as("the subtree's one frame is back").isEqualTo(inUse - 1);
        b.destroy();
        a.destroyAndCheck();
    }

    @Test
    void registerValuesAfterDestroyAreRefused() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.table.destroy();
        assertThatThrownBy(f.table::vttbr).isInstanceOf(IllegalStateException.class).hasMessageContaining("destroyed");
        HypPageTable h = new HypPageTable(Geometry.hyp(Granule.G4K, 48), memory(), new TlbSystem());
        h.destroy();
        assertThatThrownBy(h::ttbr0).isInstanceOf(IllegalStateException.class).hasMessageContaining("destroyed");
    }
}
