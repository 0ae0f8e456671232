package dev.ptlab.core.table;

import static dev.ptlab.core.table.OpsLog.Kind.DC;
import static dev.ptlab.core.table.OpsLog.Kind.FREE_UNLINKED;
import static dev.ptlab.core.table.OpsLog.Kind.IC;
import static dev.ptlab.core.table.OpsLog.Kind.TLBI_IPA;
import static dev.ptlab.core.table.OpsLog.Kind.TLBI_IPA_LOCAL;
import static dev.ptlab.core.table.OpsLog.Kind.TLBI_RANGE;
import static dev.ptlab.core.table.OpsLog.Kind.TLBI_VMID;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Order and number of the side effects of stage-2 operations: TLB invalidations (scope, level
 * hint, what the entry holds when they run), cache maintenance, and frees of detached subtrees.
 * Expectations come from the reference (kvm-pgtable.md §6-§7) and seed 001, not from the code:
 *
 * <ul>
 *   <li>break-before-make: entry → LOCKED, one TLBI for what was evicted (leaf: by IPA with the
 *       leaf's level; table: its whole span), CMO of the new target, publish (§7.2-§7.5);</li>
 *   <li>coalescing install-first: the block is live before the old subtree is torn down, so the
 *       span is invalid for no teardown step; unmap-first (the old order): VMID-wide TLBI, subtree
 *       freed while the entry is invalid, then the block (seed 001);</li>
 *   <li>attribute updates (wrprotect, mkyoung, test-clear-young) issue no TLBI; relax-perms one
 *       local TLBI (§6.7).</li>
 * </ul>
 */
class Stage2OrderingTest {
    static final Granule G4K = Granule.G4K;
    static final long A = 0x4000_0000L;      // 1G-aligned IPA
    static final long P = 0x8000_0000L;      // 1G-aligned PA
    static final long Q = 0xC000_0000L;      // another 1G-aligned PA
    static final long K4 = 0x1000, M2 = 2L << 20, G1 = 1L << 30;

    static Leaf locked(int level) {
        return new Leaf(Pte.LOCKED, level);
    }

    static void assertValidLeaf(Leaf l, long pa, int level, OpsRig r) {
        assertThat(l.level()).as("level of %s", l).isEqualTo(level);
        assertThat(Pte.isValidLeaf(l.pte(), l.level())).as("%s is a valid leaf", l).isTrue();
        assertThat(r.table.geometry().outputAddress(l.pte())).as("output address of %s", l).isEqualTo(pa);
    }

    // ------------------------------------------------------------------------------------------
    // coalescing (seed 001)

    @ParameterizedTest(name = "RANGE_TLBI={0}")
    @ValueSource(booleans = {false, true})
    void installFirstInstallsTheBlockBeforeTheOldSubtreeIsFreed(boolean rangeTlbi) {
        OpsRig r = new OpsRig(G4K, 40, rangeTlbi ? Stage2PageTable.RANGE_TLBI : 0);
        r.table.setFreeUnlinkedHook(r.log.recordingHook());
        r.map(A, M2, P + K4, "rw"); // PA misaligned for a block: 512 pages in one level-3 table
        long child = r.childOf(A, 2);
        long holder = r.frameHolding(A, 2);
        int holderCount = r.mem.count(holder);
        long framesBefore = r.frames();
        r.log.clear();
        r.log.hw.resetCounters();
        r.table.counters().reset();
        r.log.watch = A + 0x7000;
        r.log.probe = () -> r.mem.isLive(child);

        assertThat(r.map(A, M2, P, "rw")).isEqualTo(Status.OK);

        Leaf block = r.table.getLeaf(A + 0x7000);
        assertValidLeaf(block, P, 2, r);
        List<OpsLog.Event> ev = r.log.events;
        assertThat(r.log.kinds()).as("%s", ev).containsExactly(rangeTlbi ? TLBI_RANGE : TLBI_VMID, DC, FREE_UNLINKED);
        // 1. the table entry is broken: LOCKED while its whole span is invalidated
        if (rangeTlbi) {
            assertThat(ev.get(0).addr()).isEqualTo(A);
            assertThat(ev.get(0).size()).isEqualTo(M2);
        }
        assertThat(ev.get(0).watched()).isEqualTo(locked(2));
        assertThat(ev.get(0).probe()).as("old subtree still allocated at the TLBI").isTrue();
        // 2. D-cache maintenance of the new target, still LOCKED (RW: no I-cache)
        assertThat(ev.get(1).addr()).isEqualTo(P);
        assertThat(ev.get(1).size()).isEqualTo(M2);
        assertThat(ev.get(1).watched()).isEqualTo(locked(2));
        // 3. the hook gets the old subtree when the block is already live
        assertThat(ev.get(2).addr()).as("subtree base").isEqualTo(A);
        assertThat(ev.get(2).level()).as("subtree's parent level").isEqualTo(2);
        assertThat(ev.get(2).watched()).isEqualTo(block);
        assertThat(ev.get(2).probe()).as("old subtree not yet freed when handed to the hook").isTrue();
        assertThat(r.mem.isLive(child)).as("old subtree freed by the hook").isFalse();

        assertThat(r.log.hw.rangeFlushes()).isEqualTo(rangeTlbi ? 1 : 0);
        assertThat(r.log.hw.vmidFlushes()).isEqualTo(rangeTlbi ? 0 : 1);
        assertThat(r.log.hw.totalFlushes()).isEqualTo(1);
        TableCounters c = r.table.counters();
        assertThat(c.coalesced()).isEqualTo(1);
        assertThat(c.invalidWindowSteps()).isZero();
        assertThat(c.breakBeforeMake()).isEqualTo(1);
        assertThat(c.leavesInstalled()).isEqualTo(1);
        assertThat(c.tablesFreed()).isEqualTo(1);
        assertThat(r.frames()).isEqualTo(framesBefore - 1);
        assertThat(r.mem.count(holder)).as("table -> block keeps the holder's count").isEqualTo(holderCount);
        r.table.checkRefcounts();
    }

    @ParameterizedTest(name = "RANGE_TLBI={0}")
    @ValueSource(booleans = {false, true})
    void unmapFirstFreesTheOldSubtreeWhileTheEntryIsInvalidThenInstalls(boolean rangeTlbi) {
        OpsRig r = new OpsRig(G4K, 40, rangeTlbi ? Stage2PageTable.RANGE_TLBI : 0);
        r.table.setCoalescePolicy(CoalescePolicy.UNMAP_FIRST);
        r.table.setFreeUnlinkedHook((t, s) -> fail("unmap-first must not use the free-unlinked hook"));
        r.map(A, M2, P + K4, "rw");
        long child = r.childOf(A, 2);
        long holder = r.frameHolding(A, 2);
        int holderCount = r.mem.count(holder);
        r.log.clear();
        r.log.hw.resetCounters();
        r.table.counters().reset();
        r.log.watch = A + 0x7000;
        r.log.probe = () -> r.mem.isLive(child);

        assertThat(r.map(A, M2, P, "rw")).isEqualTo(Status.OK);

        assertValidLeaf(r.table.getLeaf(A + 0x7000), P, 2, r);
        List<OpsLog.Event> ev = r.log.events;
        // The old order always invalidates the whole VMID, range TLBI or not.
        assertThat(r.log.kinds()).as("%s", ev).containsExactly(TLBI_VMID, DC);
        assertThat(ev.get(0).watched()).isEqualTo(locked(2));
        assertThat(ev.get(0).probe()).as("subtree still allocated at the TLBI").isTrue();
        // Between the TLBI and the CMO the subtree was freed; the entry stayed invalid throughout.
        assertThat(ev.get(1).probe()).as("subtree already freed at the CMO").isFalse();
        assertThat(ev.get(1).watched()).isEqualTo(locked(2));
        assertThat(ev.get(1).addr()).isEqualTo(P);
        assertThat(r.log.hw.vmidFlushes()).isEqualTo(1);
        assertThat(r.log.hw.totalFlushes()).isEqualTo(1);
        TableCounters c = r.table.counters();
        assertThat(c.coalesced()).isEqualTo(1);
        // The teardown visits every entry of the one freed level-3 table.
        assertThat(c.invalidWindowSteps()).isEqualTo(G4K.entriesPerTable());
        assertThat(c.tablesFreed()).isEqualTo(1);
        assertThat(r.mem.count(holder)).isEqualTo(holderCount);
        r.table.checkRefcounts();
    }

    /**
     * A subtree of mixed content under the entry at the granule's lowest block level. Returns
     * the number of table frames in it (counted from how it was built).
     */
    static int populateMixedSubtree(OpsRig r, long a) {
        Granule g = r.granule;
        long pg = g.pageSize();
        if (g == Granule.G4K) {
            // Level-1 entry: a level-2 table with pages, a block, an annotation and a hole.
            r.map(a, 16 * pg, P + 3 * pg, "rw");                   // region 0: level-3 table #1
            r.map(a + M2, M2, Q + M2, "rwx");                       // region 1: a 2M block
            r.map(a + 5 * M2 + 3 * pg, 7 * pg, Q + 5 * pg, "r");    // region 5: level-3 table #2
            r.cache.topUp(8);
            r.table.setOwner(a + 9 * M2, 4 * pg, r.cache, 3);       // region 9: level-3 table #3
            r.map(a + 11 * M2, pg, P, "rw");                        // region 11: mapped, then
            r.table.unmap(a + 11 * M2, pg);                         //   unmapped (table freed)
            return 1 + 3;
        }
        // 16K / 64K: the lowest block level is 2; one level-3 table with pages and annotations.
        r.map(a, 16 * pg, P + 3 * pg, "rw");
        r.cache.topUp(8);
        r.table.setOwner(a + 100 * pg, 4 * pg, r.cache, 2);
        r.map(a + 200 * pg, pg, Q, "rx");
        return 1;
    }

    static Stream<Arguments> granules() {
        return Stream.of(Arguments.of(Granule.G4K, 40), Arguments.of(Granule.G16K, 40), Arguments.of(Granule.G64K, 42));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("granules")
    void bothOrdersLeaveIdenticalTablesAndExactRefcounts(Granule g, int ipaBits) {
        int level = g.minBlockLevel();
        long span = g.levelSize(level);
        long a = span * 3;                  // span-aligned
        long pa = P & -span;                 // span-aligned (P is 1G-aligned; 512M for 64K divides it)
        String[] dumps = new String[2];
        long[] frames = new long[2];
        int[] holderCounts = new int[2];
        for (CoalescePolicy policy : CoalescePolicy.values()) {
            OpsRig r = new OpsRig(g, ipaBits, 0);
            r.table.setCoalescePolicy(policy);
            r.map(a - g.pageSize(), g.pageSize(), Q, "rw");    // neighbours, left alone
            r.map(a + span, g.pageSize(), Q + g.pageSize(), "r");
            int subtreeFrames = populateMixedSubtree(r, a);
            long holder = r.frameHolding(a, level);
            int holderCount = r.mem.count(holder);
            long framesBefore = r.frames();
            // Fill the vCPU's TLB from the old subtree: the span TLBI must remove all of it.
            long[] probes = {a, a + 5 * g.pageSize(), a + span / 2 + 7 * g.pageSize(), a + span - g.pageSize()};
            for (long p : probes) r.mmu.translate(p, Access.READ);
            r.table.counters().reset();

            r.map(a, span, pa, "rwx");

            assertValidLeaf(r.table.getLeaf(a), pa, level, r);
            assertThat(r.table.counters().coalesced()).isEqualTo(1);
            long steps = r.table.counters().invalidWindowSteps();
            if (policy == CoalescePolicy.INSTALL_FIRST) {
                assertThat(steps).isZero();
            } else {
                assertThat(steps).as("teardown visits every entry of every freed table")
                        .isEqualTo((long) subtreeFrames * g.entriesPerTable());
            }
            assertThat(r.frames()).as("frames freed").isEqualTo(framesBefore - subtreeFrames);
            assertThat(r.mem.count(holder)).isEqualTo(holderCount);
            for (long p : probes) {
                assertThat(r.mmu.translate(p, Access.EXEC)).as("0x%x after coalescing", p).isEqualTo(pa + (p - a));
                assertThat(r.mmu.lastLevel()).isEqualTo(level);
            }
            r.table.checkRefcounts();
            StringBuilder sb = new StringBuilder();
            for (long[] l : Fixture.leaves(r.table, 0, r.table.geometry().iaLimit())) {
                sb.append(Long.toHexString(l[0])).append('/').append(l[1]).append('/').append(Long.toHexString(l[2])).append(' ');
            }
            dumps[policy.ordinal()] = sb.toString();
            frames[policy.ordinal()] = r.frames();
            holderCounts[policy.ordinal()] = r.mem.count(holder);
        }
        assertThat(dumps[1]).isEqualTo(dumps[0]);
        assertThat(dumps[0].split(" ")).hasSize(3); // two neighbours and the block
        assertThat(frames[1]).isEqualTo(frames[0]);
        assertThat(holderCounts[1]).isEqualTo(holderCounts[0]);
    }

    // ------------------------------------------------------------------------------------------
    // one TLBI per break, of the right scope

    static Stream<Arguments> leafLevels() {
        return Stream.of(Arguments.of(Granule.G4K, 3), Arguments.of(Granule.G4K, 2), Arguments.of(Granule.G4K, 1),
                Arguments.of(Granule.G16K, 3), Arguments.of(Granule.G16K, 2),
                Arguments.of(Granule.G64K, 3), Arguments.of(Granule.G64K, 2));
    }

    @ParameterizedTest(name = "{0} level {1}")
    @MethodSource("leafLevels")
    void replacingALeafInvalidatesItsIpaOnceWithItsLevel(Granule g, int level) {
        OpsRig r = new OpsRig(g, 42, 0);
        long span = g.levelSize(level);
        long a = span * 5, p1 = span * 8, p2 = span * 11;
        r.map(a, span, p1, "rw");
        assertThat(r.table.getLeaf(a).level()).isEqualTo(level);
        r.log.clear();
        r.log.hw.resetCounters();
        r.table.counters().reset();
        r.log.watch = a + span - g.pageSize();

        r.map(a, span, p2, "rw");

        List<OpsLog.Event> ev = r.log.events;
        assertThat(r.log.kinds()).as("%s", ev).containsExactly(TLBI_IPA, DC);
        assertThat(ev.get(0).addr()).isEqualTo(a);
        assertThat(ev.get(0).level()).isEqualTo(level);
        assertThat(ev.get(0).watched()).isEqualTo(locked(level));
        assertThat(ev.get(1).watched()).isEqualTo(locked(level));
        assertThat(ev.get(1).addr()).isEqualTo(p2);
        assertThat(ev.get(1).size()).isEqualTo(span);
        assertValidLeaf(r.table.getLeaf(a), p2, level, r);
        assertThat(r.log.hw.ipaFlushes()).isEqualTo(1);
        assertThat(r.log.hw.totalFlushes()).isEqualTo(1);
        assertThat(r.table.counters().breakBeforeMake()).isEqualTo(1);
        r.table.checkRefcounts();
    }

    @Test
    void memoryTypeChangeIsABreakWithOneTlbiAndNoCmoForDevice() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, K4, P, "rw");
        r.log.clear();
        r.log.watch = A;
        r.map(A, K4, P, "rw+device");
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA);
        assertThat(r.log.events.get(0).watched()).isEqualTo(locked(3));
        assertThat(r.log.events.get(0).level()).isEqualTo(3);
        assertThat(Stage2Descriptor.memAttrField(r.table.getLeaf(A).pte())).isEqualTo(Stage2Descriptor.MEMATTR_DEVICE_nGnRE);
        r.table.checkRefcounts();
    }

    @Test
    void permissionOnlyOrSoftwareBitOnlyChangesThroughMapIssueNoTlbi() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, K4, P, "rw");
        long before = r.table.getLeaf(A).pte();
        r.log.clear();
        r.map(A, K4, P, "r");       // permission-only: left to relaxPerms
        assertThat(r.table.getLeaf(A).pte()).isEqualTo(before);
        r.map(A, K4, P, "rw+sw1");  // software bit only: plain store
        assertThat(r.table.getLeaf(A).pte()).isEqualTo(before | Prot.SW1_BIT);
        assertThat(r.log.events).isEmpty();
        assertThat(r.log.hw.totalFlushes()).isZero();
    }

    @Test
    void shrinkingABlockInvalidatesTheBlockOnceAndTheNewPageNeedsNone() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, M2, P, "rw");
        r.log.clear();
        long page = A + 3 * K4;
        r.log.watch = page;

        r.map(page, K4, Q, "rw");

        List<OpsLog.Event> ev = r.log.events;
        assertThat(r.log.kinds()).as("%s", ev).containsExactly(TLBI_IPA, DC);
        assertThat(ev.get(0).addr()).isEqualTo(A);
        assertThat(ev.get(0).level()).isEqualTo(2);
        assertThat(ev.get(0).watched()).isEqualTo(locked(2));
        // the page goes into the new, empty table: invalid -> valid, no break
        assertThat(ev.get(1).watched()).isEqualTo(new Leaf(0, 3));
        assertThat(ev.get(1).addr()).isEqualTo(Q);
        assertValidLeaf(r.table.getLeaf(page), Q, 3, r);
        assertThat(r.table.getLeaf(A)).as("rest of the block is unmapped").isEqualTo(new Leaf(0, 3));
        r.table.checkRefcounts();
    }

    @Test
    void invalidToValidIssuesNoTlbiInExclusiveOrSharedWalks() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.cache.topUp(8);
        r.table.setOwner(A + 8 * K4, K4, r.cache, 4);  // an annotation (invalid, counted)
        r.log.clear();
        r.map(A, 16 * K4, P, "rw");                   // pages, over zeroes and the annotation
        r.map(A + G1, M2, P + M2, "rw");               // a block
        r.map(A + 32 * K4, K4, Q, "rw", WalkFlags.SHARED | WalkFlags.HANDLE_FAULT);
        assertThat(r.log.tlbis()).isEmpty();
        assertThat(r.log.hw.totalFlushes()).isZero();
        assertThat(r.log.kinds()).containsOnly(DC).hasSize(16 + 1 + 1);
        assertValidLeaf(r.table.getLeaf(A + 8 * K4), P + 8 * K4, 3, r);
        r.table.checkRefcounts();
    }

    @Test
    void splitInvalidatesEachSplitBlockOnceAtItsLevel() {
        OpsRig r = new OpsRig(G4K, 40, 0, 512L << 20);
        r.map(A, G1, P, "rw");
        r.map(A + G1, G1, Q, "rw");
        r.log.clear();
        // full split: one TLBI for the 1G block, none for what was built off-table
        r.cache.topUp(r.table.framesForFullSplit(1));
        r.table.split(A, G1, r.cache);
        assertThat(r.log.events).as("%s", r.log.events).hasSize(1);
        assertThat(r.log.events.get(0).kind()).isEqualTo(TLBI_IPA);
        assertThat(r.log.events.get(0).addr()).isEqualTo(A);
        assertThat(r.log.events.get(0).level()).isEqualTo(1);
        // partial split with three frames: the 1G block, then two of its 2M blocks, then ENOMEM
        r.log.clear();
        MemCache three = new MemCache(r.mem, 3);
        three.topUp(3);
        assertThatThrownBy(() -> r.table.split(A + G1, G1, three)).isInstanceOf(PageTableException.class);
        List<String> got = new ArrayList<>();
        for (OpsLog.Event e : r.log.events) got.add(e.kind() + "@" + Long.toHexString(e.addr()) + "/L" + e.level());
        assertThat(got).containsExactly("TLBI_IPA@80000000/L1", "TLBI_IPA@80000000/L2", "TLBI_IPA@80200000/L2");
        assertThat(r.log.kinds()).doesNotContain(DC, IC); // same target memory: no cache maintenance
        r.table.checkRefcounts();
    }

    @Test
    void setOwnerOverABlockInvalidatesTheBlockOnce() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, M2, P, "rw");
        r.cache.topUp(8);
        r.log.clear();
        r.table.setOwner(A + 4 * K4, 3 * K4, r.cache, 9);
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA);
        assertThat(r.log.events.get(0).addr()).isEqualTo(A);
        assertThat(r.log.events.get(0).level()).isEqualTo(2);
        r.table.checkRefcounts();
    }

    // ------------------------------------------------------------------------------------------
    // cache maintenance: after the TLBI, before the install

    static Stream<Arguments> cmoCases() {
        List<Arguments> out = new ArrayList<>();
        for (String prot : List.of("rw", "r", "rwx", "rx", "x", "rw+device", "rw+nc", "rwx+sw1")) {
            for (boolean fwb : new boolean[] {false, true}) {
                for (boolean skip : new boolean[] {false, true}) {
                    for (boolean replace : new boolean[] {false, true}) {
                        out.add(Arguments.of(prot, fwb, skip, replace));
                    }
                }
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} fwb={1} skipCmo={2} replace={3}")
    @MethodSource("cmoCases")
    void cacheMaintenanceRunsBetweenTheTlbiAndTheInstall(String prot, boolean fwb, boolean skip, boolean replace) {
        OpsRig r = new OpsRig(G4K, 40, fwb ? Stage2PageTable.FWB : 0);
        if (replace) r.map(A, M2, P, prot);
        r.log.clear();
        r.mem.cacheMaintenance().reset();
        r.log.watch = A + 0x5000;

        r.map(A, M2, Q, prot, skip ? WalkFlags.SKIP_CMO : 0);

        // Derived from the prot text: Normal WB unless device/nc; executable at EL1 and EL0 iff 'x'.
        boolean cacheable = !prot.contains("device") && !prot.contains("nc");
        boolean exec = prot.split("\\+")[0].contains("x");
        List<OpsLog.Kind> expected = new ArrayList<>();
        if (replace) expected.add(TLBI_IPA);
        if (cacheable && !fwb && !skip) expected.add(DC);  // D-cache first, then I-cache (§7.5)
        if (exec && !skip) expected.add(IC);
        assertThat(r.log.kinds()).as("%s", r.log.events).isEqualTo(expected);
        for (OpsLog.Event e : r.log.events) {
            if (e.isTlbi()) continue;
            assertThat(e.addr()).isEqualTo(Q);
            assertThat(e.size()).isEqualTo(M2);
            // not installed yet: LOCKED for a replacement, still empty for a fresh install
            assertThat(e.watched()).isEqualTo(replace ? locked(2) : new Leaf(0, 2));
        }
        assertValidLeaf(r.table.getLeaf(A + 0x5000), Q, 2, r);
        long dcs = r.log.kinds().stream().filter(k -> k == DC).count();
        long ics = r.log.kinds().stream().filter(k -> k == IC).count();
        assertThat(r.mem.cacheMaintenance().dcacheOps()).isEqualTo(dcs);
        assertThat(r.mem.cacheMaintenance().dcacheBytes()).isEqualTo(dcs * M2);
        assertThat(r.mem.cacheMaintenance().icacheOps()).isEqualTo(ics);
        assertThat(r.mem.cacheMaintenance().icacheBytes()).isEqualTo(ics * M2);
    }

    @Test
    void cacheMaintenanceOfManyPagesIsOnePerPageEachBeforeItsInstall() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.cache.topUp(4);
        List<String> seen = new ArrayList<>();
        r.mem.cacheMaintenance().setListener(new dev.ptlab.core.mem.CacheMaintenance.Listener() {
            @Override
            public void dcacheCleanInvalPoc(long pa, long size) {
                long ipa = A + (pa - P);
                seen.add(Long.toHexString(pa) + ":" + Pte.isValid(r.table.getLeaf(ipa).pte()));
            }

            @Override
            public void icacheInvalPou(long pa, long size) {
                fail("rw is not executable");
            }
        });
        r.table.map(A, 20 * K4, P, Prot.RW, r.cache);
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 20; i++) expected.add(Long.toHexString(P + i * K4) + ":false");
        assertThat(seen).isEqualTo(expected);
    }

    @Test
    void unmapCleansTheDcacheAfterTheLeafsTlbi() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, 2 * K4, P, "rw");
        r.map(A + M2, K4, Q, "rw");
        r.log.clear();
        r.log.watch = A;
        r.table.unmap(A, K4);   // the level-3 table keeps one page
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA, DC);
        OpsLog.Event tlbi = r.log.events.get(0), dc = r.log.events.get(1);
        assertThat(tlbi.addr()).isEqualTo(A);
        assertThat(tlbi.level()).isEqualTo(3);
        assertThat(tlbi.watched()).as("cleared before the TLBI").isEqualTo(new Leaf(0, 3));
        assertThat(dc.addr()).isEqualTo(P);
        assertThat(dc.size()).isEqualTo(K4);

        // last page of a table: leaf TLBI, CMO, then the emptied table entry's TLBI (level unknown)
        r.log.clear();
        r.log.watch = A + M2;
        r.table.unmap(A + M2, K4);
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA, DC, TLBI_IPA);
        assertThat(r.log.events.get(2).addr()).isEqualTo(A + M2);
        assertThat(r.log.events.get(2).level()).isEqualTo(TlbMaintenance.LEVEL_UNKNOWN);
        assertThat(r.log.events.get(2).watched()).isEqualTo(new Leaf(0, 2));
        r.table.checkRefcounts();
    }

    @ParameterizedTest(name = "RANGE_TLBI={0}")
    @ValueSource(booleans = {false, true})
    void unmapWithFwbNeedsNoDcache(boolean rangeTlbi) {
        OpsRig r = new OpsRig(G4K, 40, Stage2PageTable.FWB | (rangeTlbi ? Stage2PageTable.RANGE_TLBI : 0));
        r.map(A, 4 * K4, P, "rw");
        r.log.clear();
        r.table.unmap(A, 2 * K4);
        assertThat(r.log.kinds()).doesNotContain(DC);
        if (rangeTlbi) {
            assertThat(r.log.kinds()).containsExactly(TLBI_RANGE); // deferred, once after the walk
        } else {
            assertThat(r.log.kinds()).containsExactly(TLBI_IPA, TLBI_IPA);
        }
    }

    // ------------------------------------------------------------------------------------------
    // relaxPerms: one local TLBI

    @Test
    void relaxPermsIssuesExactlyOneLocalTlbiAndOtherCpusFixThemselves() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        Mmu cpu1 = r.otherCpu("cpu1");
        r.map(A, K4, P, "r");
        // both CPUs cache the read-only entry while faulting on a write
        assertThat(Fixture.describe(r.mmu.translate(A, Access.WRITE))).isEqualTo("PERMISSION@3");
        assertThat(Fixture.describe(cpu1.translate(A, Access.WRITE))).isEqualTo("PERMISSION@3");
        r.log.clear();
        r.log.hw.resetCounters();
        r.mem.cacheMaintenance().reset();
        r.log.watch = A;

        assertThat(r.table.relaxPerms(A + 0x10, Prot.RW, 0, r.tlb)).isEqualTo(Status.OK);

        assertThat(r.log.kinds()).containsExactly(TLBI_IPA_LOCAL);
        OpsLog.Event e = r.log.events.get(0);
        assertThat(e.addr()).isEqualTo(A);
        assertThat(e.level()).isEqualTo(3);
        assertThat(Stage2Descriptor.writable(e.watched().pte())).as("entry updated before the TLBI").isTrue();
        assertThat(r.log.hw.localIpaFlushes()).isEqualTo(1);
        assertThat(r.log.hw.totalFlushes()).isEqualTo(1);
        assertThat(r.mmu.translate(A, Access.WRITE)).isEqualTo(P);
        // cpu1 was not invalidated: it faults on its stale entry, and fixes itself the same way
        assertThat(Fixture.describe(cpu1.translate(A, Access.WRITE))).isEqualTo("PERMISSION@3");
        assertThat(cpu1.lastTlbHit()).isTrue();
        assertThat(r.table.relaxPerms(A, Prot.RW, 0, cpu1.tlb())).isEqualTo(Status.OK);
        assertThat(cpu1.translate(A, Access.WRITE)).isEqualTo(P);
        assertThat(r.log.hw.localIpaFlushes()).isEqualTo(2);
        assertThat(r.log.hw.ipaFlushes() + r.log.hw.rangeFlushes() + r.log.hw.vmidFlushes()).isZero();
        assertThat(r.mem.cacheMaintenance().dcacheOps()).isZero();
    }

    @Test
    void relaxPermsOnABlockHintsTheBlockLevelAndNotMappedStillFlushesLocally() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, M2, P, "r");
        r.log.clear();
        assertThat(r.table.relaxPerms(A + 0x12_3456, Prot.RW, 0, r.tlb)).isEqualTo(Status.OK);
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA_LOCAL);
        assertThat(r.log.events.get(0).addr()).isEqualTo(A + 0x12_3000);
        assertThat(r.log.events.get(0).level()).isEqualTo(2);
        r.log.clear();
        assertThat(r.table.relaxPerms(A + G1, Prot.RW, 0, r.tlb)).isEqualTo(Status.NOT_MAPPED);
        // The kernel flushes locally on -EAGAIN too, which is what an invalid entry gives.
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA_LOCAL);
        assertThat(r.log.events.get(0).level()).isEqualTo(TlbMaintenance.LEVEL_UNKNOWN);
    }

    @Test
    void relaxPermsInvalidatesTheIcacheOnlyWhenExecuteIsAdded() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, K4, P, "r");
        r.map(A + M2, M2, Q, "rx");
        long before = r.table.getLeaf(A).pte();
        r.log.clear();
        r.mem.cacheMaintenance().reset();
        r.log.watch = A;

        assertThat(r.table.relaxPerms(A, Prot.RX, 0, r.tlb)).isEqualTo(Status.OK);
        assertThat(r.log.kinds()).containsExactly(IC, TLBI_IPA_LOCAL);
        OpsLog.Event ic = r.log.events.get(0);
        assertThat(ic.addr()).isEqualTo(P);
        assertThat(ic.size()).isEqualTo(K4);
        assertThat(ic.watched().pte()).as("I-cache invalidated before execute is granted").isEqualTo(before);
        assertThat(Stage2Descriptor.isExecutable(r.table.getLeaf(A).pte())).isTrue();
        assertThat(r.mem.cacheMaintenance().icacheOps()).isEqualTo(1);
        assertThat(r.mem.cacheMaintenance().icacheBytes()).isEqualTo(K4);

        // already executable: adding write needs no I-cache maintenance
        r.log.clear();
        assertThat(r.table.relaxPerms(A + M2, Prot.RWX, 0, r.tlb)).isEqualTo(Status.OK);
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA_LOCAL);
        assertThat(r.mem.cacheMaintenance().icacheOps()).isEqualTo(1);
        assertThat(r.mem.cacheMaintenance().dcacheOps()).isZero();
    }

    // ------------------------------------------------------------------------------------------
    // wrprotect: no TLBI of its own

    @Test
    void wrprotectLeavesTheTlbiToTheCaller() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, M2, P, "rw");                 // a block
        r.map(A + M2, 16 * K4, Q + K4, "rw");  // pages
        long blockAddr = A + 0x5000, pageAddr = A + M2 + 0x3000;
        assertThat(r.mmu.translate(blockAddr, Access.WRITE)).isEqualTo(P + 0x5000);
        assertThat(r.mmu.translate(pageAddr, Access.WRITE)).isEqualTo(Q + K4 + 0x3000);
        r.log.clear();
        r.log.hw.resetCounters();
        r.table.counters().reset();

        r.table.wrprotect(A, 2 * M2);

        assertThat(r.log.events).isEmpty();
        assertThat(r.log.hw.totalFlushes()).isZero();
        assertThat(r.table.counters().attrUpdates()).isEqualTo(1 + 16);
        assertThat(Stage2Descriptor.writable(r.table.getLeaf(blockAddr).pte())).isFalse();
        // the vCPU still writes through its TLB ...
        assertThat(r.mmu.translate(blockAddr, Access.WRITE)).isEqualTo(P + 0x5000);
        assertThat(r.mmu.lastTlbHit()).isTrue();
        assertThat(r.mmu.translate(pageAddr, Access.WRITE)).isEqualTo(Q + K4 + 0x3000);
        // ... (an uncached page already faults) ...
        assertThat(Fixture.describe(r.mmu.translate(A + M2 + 0x4000, Access.WRITE))).isEqualTo("PERMISSION@3");
        // ... until the caller's range TLBI
        r.log.flushVmidRange(OpsRig.VMID, A, 2 * M2);
        assertThat(Fixture.describe(r.mmu.translate(blockAddr, Access.WRITE))).isEqualTo("PERMISSION@2");
        assertThat(Fixture.describe(r.mmu.translate(pageAddr, Access.WRITE))).isEqualTo("PERMISSION@3");
        assertThat(r.mmu.translate(blockAddr, Access.READ)).isEqualTo(P + 0x5000);
        r.table.checkRefcounts();
    }

    @ParameterizedTest(name = "shared={0}")
    @ValueSource(booleans = {false, true})
    void attributeUpdatesCountOnlyEntriesTheyChange(boolean shared) {
        int flags = shared ? WalkFlags.SHARED : 0;
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, 16 * K4, P + K4, "rw");
        r.map(A + M2, M2, P + M2, "rw");
        TableCounters c = r.table.counters();
        c.reset();
        r.table.wrprotect(A, 2 * M2);
        assertThat(c.attrUpdates()).isEqualTo(16 + 1);
        r.table.wrprotect(A, 2 * M2);
        assertThat(c.attrUpdates()).as("already read-only: nothing changed").isEqualTo(16 + 1);
        assertThat(r.table.mkyoung(A + K4, flags)).isEqualTo(Status.OK);
        assertThat(r.table.mkyoung(A + M2, flags)).isEqualTo(Status.OK);
        assertThat(c.attrUpdates()).as("already young: nothing changed").isEqualTo(16 + 1);
        r.table.testClearYoung(A, K4, true);
        assertThat(r.table.mkyoung(A, flags)).isEqualTo(Status.OK);
        assertThat(c.attrUpdates()).as("one mkold, one mkyoung").isEqualTo(16 + 1 + 2);
        assertThat(r.table.relaxPerms(A, Prot.RW, flags, r.tlb)).isEqualTo(Status.OK);
        assertThat(r.table.relaxPerms(A, Prot.RW, flags, r.tlb)).isEqualTo(Status.OK);
        assertThat(c.attrUpdates()).as("write added once").isEqualTo(16 + 1 + 2 + 1);
    }

    // ------------------------------------------------------------------------------------------
    // access flag: no TLBI, AF = 0 never cached

    @Test
    void mkoldAndMkyoungIssueNoTlbiBecauseOldEntriesAreNeverCached() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, 2 * K4, P, "rw");
        r.map(A + M2, M2, Q, "rw");
        r.log.clear();
        r.log.hw.resetCounters();

        assertThat(r.table.testClearYoung(A, 2 * K4, true)).isTrue();
        assertThat(r.table.testClearYoung(A, 2 * K4, false)).as("both were made old").isFalse();
        assertThat(r.table.getLeaf(A).pte() & Stage2Descriptor.AF).isZero();
        assertThat(r.table.getLeaf(A + K4).pte() & Stage2Descriptor.AF).isZero();
        long fills = r.tlb.fills();
        assertThat(Fixture.describe(r.mmu.translate(A, Access.READ))).isEqualTo("ACCESS_FLAG@3");
        assertThat(Fixture.describe(r.mmu.translate(A, Access.READ))).isEqualTo("ACCESS_FLAG@3");
        assertThat(r.mmu.lastTlbHit()).isFalse();
        assertThat(r.tlb.fills()).as("an AF=0 entry is not cached").isEqualTo(fills);

        assertThat(r.table.mkyoung(A + 0x123)).isEqualTo(Status.OK);
        assertThat(r.mmu.translate(A, Access.READ)).as("no TLBI needed").isEqualTo(P);
        assertThat(Fixture.describe(r.mmu.translate(A + K4, Access.READ))).isEqualTo("ACCESS_FLAG@3");
        assertThat(r.table.testClearYoung(A, 2 * K4, false)).isTrue();

        // a young, cached block made old stays usable through the TLB: no TLBI was issued
        assertThat(r.mmu.translate(A + M2 + 0x40, Access.READ)).isEqualTo(Q + 0x40);
        assertThat(r.table.testClearYoung(A + M2, M2, true)).isTrue();
        assertThat(r.mmu.translate(A + M2 + 0x40, Access.READ)).isEqualTo(Q + 0x40);
        assertThat(r.mmu.lastTlbHit()).isTrue();
        assertThat(r.table.mkyoung(A + M2 + 0x40)).isEqualTo(Status.OK);

        assertThat(r.log.events).isEmpty();
        assertThat(r.log.hw.totalFlushes()).isZero();
        r.table.checkRefcounts();
    }

    @Test
    void mkyoungReportsNotMappedForInvalidEntriesAndRacedForALockedOne() {
        OpsRig r = new OpsRig(G4K, 40, 0);
        r.map(A, 2 * K4, P, "rw");
        r.cache.topUp(8);
        r.table.setOwner(A + 4 * K4, K4, r.cache, 6);
        assertThat(r.table.mkyoung(A + 2 * K4)).as("zero entry").isEqualTo(Status.NOT_MAPPED);
        assertThat(r.table.mkyoung(A + 4 * K4)).as("annotation").isEqualTo(Status.NOT_MAPPED);
        assertThat(r.table.mkyoung(A + G1)).as("nothing below the root").isEqualTo(Status.NOT_MAPPED);
        assertThat(r.table.testClearYoung(A + M2, M2, true)).isFalse();

        r.table.testClearYoung(A, K4, true);
        long old = r.lock(A);
        assertThat(r.table.mkyoung(A)).isEqualTo(Status.RACED);
        assertThat(r.table.getLeaf(A).pte()).isEqualTo(Pte.LOCKED);
        assertThat(r.table.testClearYoung(A, 2 * K4, true)).as("the locked entry is skipped; the other is young").isTrue();
        assertThat(r.table.getLeaf(A).pte()).isEqualTo(Pte.LOCKED);
        r.unlock(A, old);
        assertThat(r.table.mkyoung(A)).isEqualTo(Status.OK);
        assertThat(r.table.getLeaf(A).pte()).isEqualTo(old | Stage2Descriptor.AF);
        assertThat(r.log.hw.totalFlushes()).isZero();
        r.table.checkRefcounts();
    }
}
