package dev.ptlab.core.walk;

import static dev.ptlab.core.walk.Recorder.call;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.FrameAccessException;
import dev.ptlab.core.mem.Frames;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The walker contract (SPEC.md "Walker contract", kvm-pgtable.md §4): which entries are visited,
 * in which order, with which address and value, how re-reads after a visit steer the walk, and
 * how statuses go through the policy. Expected sequences are written out by hand from the
 * geometry (4K/40-bit: 2 concatenated L1 roots; 16K/40-bit: 16 concatenated L2 roots).
 */
class WalkerTest {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    private static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    private static final long MEM_BASE = 0x10_0000_0000L;

    private PhysicalMemory mem;
    private Stage2PageTable table;
    private MemCache cache;
    private long baseline;

    private Stage2PageTable newTable(Granule g) {
        mem = new PhysicalMemory(MEM_BASE, 256L << 20, g, true);
        baseline = mem.framesInUse();
        table = new Stage2PageTable(Geometry.stage2(g, 40), mem, new TlbSystem(), 1, 0);
        cache = new MemCache(mem);
        return table;
    }

    private void map(long ipa, long size, long pa) {
        cache.topUp(8);
        assertThat(table.map(ipa, size, pa, Prot.RW, cache)).isEqualTo(Status.OK);
    }

    /** Entry {@code idx} of the table frame at {@code pa}, read directly. */
    private long entry(long pa, int idx) {
        return FRAMES.frame(mem, pa)[idx];
    }

    private long child(long pa, int idx) {
        long e = entry(pa, idx);
        assertThat(Pte.isTable(e, 0)).as("entry %d of 0x%x is a table", idx, pa).isTrue();
        return table.geometry().outputAddress(e);
    }

    @AfterEach
    void teardown() {
        if (table != null && !table.destroyed()) {
            table.checkRefcounts();
            table.destroy();
            cache.release();
            assertThat(mem.framesInUse()).as("every frame returned").isEqualTo(baseline);
        }
    }

    // ---------------------------------------------------------------------------------------
    // which entries, which order

    @Test
    void leafVisitsInvalidEntriesOfAnEmptyTable() {
        newTable(Granule.G4K);
        Recorder r = new Recorder();
        assertThat(table.walk(0, 3 * G1, r, WalkFlags.LEAF, WalkPolicy.RANGE)).isEqualTo(Status.OK);
        long root = table.rootPa();
        assertThat(r.calls).containsExactly(
                call(Visit.LEAF, 1, 0, 0, root, 0),
                call(Visit.LEAF, 1, G1, 0, root, 1),
                call(Visit.LEAF, 1, 2 * G1, 0, root, 2));
    }

    @Test
    void wholeRangeOfAnEmptyTableVisitsEveryRootEntryOnce() {
        for (Granule g : new Granule[] {Granule.G4K, Granule.G16K}) {
            newTable(g);
            int roots = g == Granule.G4K ? 2 : 16;
            int level = g == Granule.G4K ? 1 : 2;
            int entries = g == Granule.G4K ? 512 : 2048;
            assertThat(table.geometry().rootPages()).isEqualTo(roots);
            assertThat(table.geometry().startLevel()).isEqualTo(level);
            Recorder r = new Recorder();
            table.walk(0, 1L << 40, r, WalkFlags.LEAF, WalkPolicy.RANGE);
            assertThat(r.calls).hasSize(roots * entries);
            Set<Long> seen = new HashSet<>();
            long span = 1L << 40 >> (g == Granule.G4K ? 10 : 15);
            for (int i = 0; i < r.calls.size(); i++) {
                Recorder.Call c = r.calls.get(i);
                long expectedRoot = table.rootPa() + (i / entries) * g.pageSize();
                assertThat(c.level()).isEqualTo(level);
                assertThat(c.tablePa()).isEqualTo(expectedRoot);
                assertThat(c.index()).isEqualTo(i % entries);
                assertThat(c.addr()).isEqualTo(i * span);
                assertThat(seen.add(c.tablePa() * 65536 + c.index())).isTrue();
            }
            teardown();
        }
    }

    @Test
    void preLeafPostOrderAndAddresses() {
        newTable(Granule.G4K);
        map(0x1000, 0x2000, 0x8000_1000L);
        long root = table.rootPa();
        long l2 = child(root, 0), l3 = child(l2, 0);
        long e1 = entry(root, 0), e2 = entry(l2, 0);

        Recorder r = new Recorder();
        table.walk(0, M2 + K4, r, WalkFlags.LEAF | WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        List<Recorder.Call> expected = new ArrayList<>();
        expected.add(call(Visit.TABLE_PRE, 1, 0, e1, root, 0));
        expected.add(call(Visit.TABLE_PRE, 2, 0, e2, l2, 0));
        for (int i = 0; i < 512; i++) expected.add(call(Visit.LEAF, 3, i * K4, entry(l3, i), l3, i));
        expected.add(call(Visit.TABLE_POST, 2, 0, e2, l2, 0));
        expected.add(call(Visit.LEAF, 2, M2, 0, l2, 1));
        expected.add(call(Visit.TABLE_POST, 1, 0, e1, root, 0));
        assertThat(r.calls).containsExactlyElementsOf(expected);
        // The leaves include the two valid pages and 510 invalid entries.
        assertThat(r.atLevel(Visit.LEAF, 3).stream().filter(c -> Pte.isValid(c.old()))).hasSize(2);

        // Each flag alone selects only its kind of visit, in the same relative order.
        Recorder pre = new Recorder();
        table.walk(0, M2 + K4, pre, WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
        assertThat(pre.calls).containsExactly(expected.get(0), expected.get(1));
        Recorder post = new Recorder();
        table.walk(0, M2 + K4, post, WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        assertThat(post.calls).containsExactly(expected.get(514), expected.get(516));
        Recorder leaf = new Recorder();
        table.walk(0, M2 + K4, leaf, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(leaf.calls).containsExactlyElementsOf(r.of(Visit.LEAF));
        Recorder none = new Recorder();
        assertThat(table.walk(0, M2 + K4, none, 0, WalkPolicy.RANGE)).isEqualTo(Status.OK);
        assertThat(none.calls).isEmpty();
    }

    // ---------------------------------------------------------------------------------------
    // re-read after a visit

    @Test
    void leafTurnedIntoTableIsDescendedInto() {
        newTable(Granule.G4K);
        Geometry geo = table.geometry();
        List<Long> installed = new ArrayList<>();
        Recorder r = new Recorder((ctx, v) -> {
            if (v == Visit.LEAF && ctx.level() < 3 && ctx.old() == 0) {
                long frame = ctx.memory().allocate();
                installed.add(frame);
                ctx.getRef(); // the new entry is counted on the frame that holds it
                assertThat(ctx.trySet(Stage2Descriptor.table(geo, frame))).isTrue();
            }
            return Status.OK;
        });
        long start = 0x4000_0000L;
        table.walk(start, 3 * K4, r, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        assertThat(installed).hasSize(2);
        long root = table.rootPa(), l2 = installed.get(0), l3 = installed.get(1);
        long t2 = Stage2Descriptor.table(geo, l2), t3 = Stage2Descriptor.table(geo, l3);
        assertThat(r.calls).containsExactly(
                call(Visit.LEAF, 1, start, 0, root, 1),
                call(Visit.LEAF, 2, start, 0, l2, 0),
                call(Visit.LEAF, 3, start, 0, l3, 0),
                call(Visit.LEAF, 3, start + K4, 0, l3, 1),
                call(Visit.LEAF, 3, start + 2 * K4, 0, l3, 2),
                // POST sees the table the LEAF visit installed (the value it descended through).
                call(Visit.TABLE_POST, 2, start, t3, l2, 0),
                call(Visit.TABLE_POST, 1, start, t2, root, 1));
        assertThat(mem.count(l2)).isEqualTo(2);
        assertThat(mem.count(l3)).isEqualTo(1);
        table.checkRefcounts();
    }

    @Test
    void tableTurnedIntoBlockIsNotDescendedInto() {
        newTable(Granule.G4K);
        map(M2, 2 * K4, 0x8020_0000L);
        long root = table.rootPa(), l2 = child(root, 0), oldL3 = child(l2, 1);
        long block = Stage2Descriptor.leaf(table.geometry(), 0x9000_0000L,
                Stage2Descriptor.attributes(Prot.RW, false, table.geometry().oaFormat()), 2);
        Recorder r = new Recorder((ctx, v) -> {
            if (v == Visit.TABLE_PRE && ctx.level() == 2) {
                // Break before make (the checking mode insists), then the block: counted -> counted,
                // so the L2 frame's count is unchanged.
                assertThat(ctx.trySet(0)).isTrue();
                assertThat(ctx.trySet(block)).isTrue();
                // Free the detached subtree now: in checking mode, descending into it would throw.
                mem.free(oldL3);
            }
            return Status.OK;
        });
        table.walk(0, 3 * M2, r, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
        assertThat(r.calls).containsExactly(
                call(Visit.TABLE_PRE, 1, 0, entry(root, 0), root, 0),
                call(Visit.LEAF, 2, 0, 0, l2, 0),
                call(Visit.TABLE_PRE, 2, M2, Stage2Descriptor.table(table.geometry(), oldL3), l2, 1),
                // no LEAF visit of the new block, no visit below it, and the address moved past it
                call(Visit.LEAF, 2, 2 * M2, 0, l2, 2));
        assertThatThrownBy(() -> FRAMES.frame(mem, oldL3)).isInstanceOf(FrameAccessException.class);
        table.checkRefcounts();
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        Mmu mmu = new Mmu(table.geometry(), mem, tlb, table.rootPa(), 1, false, false);
        assertThat(mmu.translate(M2 + 0x1234, Access.READ)).isEqualTo(0x9000_1234L);
        assertThat(mmu.lastLevel()).isEqualTo(2);
    }

    @Test
    void postSeesValueObservedBeforeDescendingAndTheAddressWhereTheEntryWasReached() {
        newTable(Granule.G4K);
        map(M2 + K4, 2 * K4, 0x8020_1000L);
        long root = table.rootPa(), l2 = child(root, 0);
        long original = entry(l2, 1);
        long marked = original | Pte.SW_BITS & (1L << 55); // a software bit: hardware ignores it in a table descriptor
        long[] reread = new long[1];
        Recorder r = new Recorder((ctx, v) -> {
            if (v == Visit.LEAF && ctx.level() == 3 && ctx.addr() == M2 + K4) {
                // Someone changes the parent entry while its subtree is being walked.
                Frames.setRelease(FRAMES.frame(mem, l2), 1, marked);
            }
            if (v == Visit.TABLE_POST && ctx.level() == 2) reread[0] = ctx.read();
            return Status.OK;
        });
        long start = M2 + K4 + 0x800; // unaligned: the walk starts at the page containing it
        table.walk(start, 2 * K4, r, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        assertThat(r.of(Visit.TABLE_POST)).containsExactly(
                call(Visit.TABLE_POST, 2, M2 + K4, original, l2, 1),
                call(Visit.TABLE_POST, 1, M2 + K4, entry(root, 0), root, 0));
        assertThat(reread[0]).as("the entry did change; POST still reports the pre-descent value").isEqualTo(marked);
        // [0x201800, 0x203800) touches pages 0x201000, 0x202000 and 0x203000.
        assertThat(r.of(Visit.LEAF)).extracting(Recorder.Call::addr).containsExactly(M2 + K4, M2 + 2 * K4, M2 + 3 * K4);
        Frames.setRelease(FRAMES.frame(mem, l2), 1, original);
    }

    // ---------------------------------------------------------------------------------------
    // addresses

    @Test
    void unalignedRangeCoversEveryPageItTouches() {
        newTable(Granule.G4K);
        map(0, M2, 0x8000_1000L); // PA not 2M-aligned: 512 pages in one L3 table
        Recorder r = new Recorder();
        table.walk(0x1800, 0x1000, r, WalkFlags.LEAF, WalkPolicy.RANGE);
        // The kernel computes end from the rounded-down start and visits only 0x1000; we must not.
        assertThat(r.of(Visit.LEAF)).extracting(Recorder.Call::addr).containsExactly(0x1000L, 0x2000L);

        SplittableRandom rnd = new SplittableRandom();
        long seed = rnd.nextLong();
        rnd = new SplittableRandom(seed);
        for (int i = 0; i < 500; i++) {
            long addr = rnd.nextLong(M2 - 1);
            long size = 1 + rnd.nextLong(Math.min(M2 - addr, 9 * K4));
            Recorder rr = new Recorder();
            table.walk(addr, size, rr, WalkFlags.LEAF, WalkPolicy.RANGE);
            TreeSet<Long> expected = new TreeSet<>();
            for (long p = 0; p < M2; p += K4) {
                if (p < addr + size && p + K4 > addr) expected.add(p);
            }
            assertThat(rr.of(Visit.LEAF)).as("seed %d: addr 0x%x size 0x%x", seed, addr, size)
                    .extracting(Recorder.Call::addr).containsExactlyElementsOf(expected);
        }
    }

    @Test
    void addressAdvancesOnlyAtLeaves() {
        newTable(Granule.G4K);
        map(3 * M2 + 5 * K4, K4, 0x8000_0000L);
        Recorder r = new Recorder();
        long start = 3 * M2 + 2 * K4 + 7;
        table.walk(start, 2 * M2, r, WalkFlags.LEAF | WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        long aligned = 3 * M2 + 2 * K4;
        // The first visit at each level sees the (page-aligned) walk address, not the entry base.
        assertThat(r.calls.get(0)).extracting(Recorder.Call::visit, Recorder.Call::level, Recorder.Call::addr)
                .containsExactly(Visit.TABLE_PRE, 1, aligned);
        assertThat(r.calls.get(1)).extracting(Recorder.Call::visit, Recorder.Call::level, Recorder.Call::addr)
                .containsExactly(Visit.TABLE_PRE, 2, aligned);
        List<Recorder.Call> l3 = r.atLevel(Visit.LEAF, 3);
        assertThat(l3).hasSize(510); // pages 2..511 of the 4th 2M region
        for (int i = 0; i < l3.size(); i++) assertThat(l3.get(i).addr()).isEqualTo(aligned + i * K4);
        // After the table's subtree, the next L2 entry is reached at the end of the table's span.
        assertThat(r.atLevel(Visit.LEAF, 2)).extracting(Recorder.Call::addr).containsExactly(4 * M2, 5 * M2);
    }

    @Test
    void walkCrossesConcatenatedRoots4k() {
        newTable(Granule.G4K);
        long boundary = 512 * G1; // root 0 maps [0, 512G), root 1 [512G, 1T)
        Recorder r = new Recorder();
        table.walk(boundary - 2 * G1, 4 * G1, r, WalkFlags.LEAF, WalkPolicy.RANGE);
        long root0 = table.rootPa(), root1 = root0 + K4;
        assertThat(r.calls).containsExactly(
                call(Visit.LEAF, 1, boundary - 2 * G1, 0, root0, 510),
                call(Visit.LEAF, 1, boundary - G1, 0, root0, 511),
                call(Visit.LEAF, 1, boundary, 0, root1, 0),
                call(Visit.LEAF, 1, boundary + G1, 0, root1, 1));

        map(boundary - K4, 2 * K4, 0x8000_0000L);
        Recorder leaves = new Recorder();
        table.walk(boundary - K4, 2 * K4, leaves, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(leaves.calls).extracting(Recorder.Call::level, Recorder.Call::addr, c -> Pte.isValid(c.old()))
                .containsExactly(org.assertj.core.groups.Tuple.tuple(3, boundary - K4, true),
                        org.assertj.core.groups.Tuple.tuple(3, boundary, true));
        assertThat(entry(root0, 511)).matches(Pte::isValid);
        assertThat(entry(root1, 0)).matches(Pte::isValid);
        Mmu mmu = new Mmu(table.geometry(), mem, new Tlb("cpu0", Granule.G4K), table.rootPa(), 1, false, false);
        assertThat(mmu.translate(boundary - 8, Access.READ)).isEqualTo(0x8000_0FF8L);
        assertThat(mmu.translate(boundary + 8, Access.READ)).isEqualTo(0x8000_1008L);
    }

    @Test
    void walkCrossesConcatenatedRoots16k() {
        newTable(Granule.G16K);
        long span = 1L << 25, boundary = 1L << 36; // 16 roots of 2048 x 32M = 64G each
        Recorder r = new Recorder();
        table.walk(boundary - 2 * span, 4 * span, r, WalkFlags.LEAF, WalkPolicy.RANGE);
        long root0 = table.rootPa(), root1 = root0 + 0x4000;
        assertThat(r.calls).containsExactly(
                call(Visit.LEAF, 2, boundary - 2 * span, 0, root0, 2046),
                call(Visit.LEAF, 2, boundary - span, 0, root0, 2047),
                call(Visit.LEAF, 2, boundary, 0, root1, 0),
                call(Visit.LEAF, 2, boundary + span, 0, root1, 1));
        // the last root
        Recorder last = new Recorder();
        table.walk((1L << 40) - span, span, last, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(last.calls).containsExactly(call(Visit.LEAF, 2, (1L << 40) - span, 0, root0 + 15 * 0x4000, 2047));
    }

    // ---------------------------------------------------------------------------------------
    // argument errors

    @Test
    void rangeOutsideTheInputAddressSpaceIsErange() {
        newTable(Granule.G4K);
        long limit = 1L << 40;
        Recorder r = new Recorder();
        assertThatThrownBy(() -> table.walk(limit - K4, 2 * K4, r, WalkFlags.LEAF, WalkPolicy.RANGE))
                .isInstanceOfSatisfying(PageTableException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ERANGE);
                    assertThat(e.kernelReturn()).isEqualTo(-34);
                    assertThat(e.getMessage()).contains("0xfffffff000").contains("0x10000001000").contains("40-bit");
                });
        assertThatThrownBy(() -> table.walk(limit, K4, r, WalkFlags.LEAF, WalkPolicy.RANGE))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ERANGE));
        assertThatThrownBy(() -> table.walk(-K4, K4, r, WalkFlags.LEAF, WalkPolicy.RANGE))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ERANGE));
        assertThatThrownBy(() -> table.walk(K4, Long.MAX_VALUE, r, WalkFlags.LEAF, WalkPolicy.RANGE))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ERANGE));
        assertThat(r.calls).isEmpty();
        // exactly up to the limit is fine
        assertThat(table.walk(limit - K4, K4, r, WalkFlags.LEAF, WalkPolicy.RANGE)).isEqualTo(Status.OK);
        assertThat(r.calls).hasSize(1);
    }

    @Test
    void negativeSizeIsAnErrorAndZeroSizeVisitsNothing() {
        newTable(Granule.G4K);
        map(0, K4, 0x8000_0000L);
        Recorder r = new Recorder();
        assertThatThrownBy(() -> table.walk(0, -1, r, WalkFlags.LEAF, WalkPolicy.RANGE))
                .isInstanceOfSatisfying(PageTableException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.EINVAL);
                    assertThat(e.getMessage()).contains("size");
                });
        assertThat(table.walk(0x800, 0, r, WalkFlags.LEAF | WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST, WalkPolicy.RANGE))
                .isEqualTo(Status.OK);
        assertThat(r.calls).isEmpty();
    }

    // ---------------------------------------------------------------------------------------
    // statuses and policies

    /** Four valid pages at 0..0x3000 in one L3 table; visitor returns {@code status} at 0x1000. */
    private Recorder walkReturning(Status status, WalkPolicy policy, Status[] result) {
        Recorder r = new Recorder((ctx, v) -> ctx.addr() == K4 ? status : Status.OK);
        result[0] = table.walk(0, 4 * K4, r, WalkFlags.LEAF, policy);
        return r;
    }

    @Test
    void racedAndNotMappedFollowThePolicy() {
        newTable(Granule.G4K);
        map(0, 4 * K4, 0x8000_0000L);
        Status[] res = new Status[1];
        for (Status s : new Status[] {Status.RACED, Status.NOT_MAPPED}) {
            Recorder fault = walkReturning(s, WalkPolicy.FAULT, res);
            assertThat(res[0]).isEqualTo(s);
            assertThat(fault.calls).extracting(Recorder.Call::addr).containsExactly(0L, K4);

            Recorder range = walkReturning(s, WalkPolicy.RANGE, res);
            assertThat(res[0]).isEqualTo(Status.OK);
            assertThat(range.calls).extracting(Recorder.Call::addr).containsExactly(0L, K4, 2 * K4, 3 * K4);
        }
        Recorder hole = walkReturning(Status.NOT_MAPPED, WalkPolicy.STOP_AT_HOLE, res);
        assertThat(res[0]).isEqualTo(Status.NOT_MAPPED);
        assertThat(hole.calls).hasSize(2);
        Recorder raced = walkReturning(Status.RACED, WalkPolicy.STOP_AT_HOLE, res);
        assertThat(res[0]).isEqualTo(Status.OK);
        assertThat(raced.calls).hasSize(4);

        assertThat(WalkPolicy.forFlags(WalkFlags.HANDLE_FAULT)).isSameAs(WalkPolicy.FAULT);
        assertThat(WalkPolicy.forFlags(WalkFlags.SHARED | WalkFlags.HANDLE_FAULT)).isSameAs(WalkPolicy.FAULT);
        assertThat(WalkPolicy.forFlags(0)).isSameAs(WalkPolicy.RANGE);
        assertThat(WalkPolicy.forFlags(WalkFlags.SHARED)).isSameAs(WalkPolicy.RANGE);
    }

    @Test
    void stopOnAPostVisitEndsTheWalk() {
        newTable(Granule.G4K);
        map(0, K4, 0x8000_0000L);
        map(M2, K4, 0x8000_0000L);
        Recorder r = new Recorder((ctx, v) -> v == Visit.TABLE_POST && ctx.level() == 2 ? Status.RACED : Status.OK);
        Status s = table.walk(0, 2 * M2, r, WalkFlags.LEAF | WalkFlags.TABLE_POST, WalkPolicy.FAULT);
        assertThat(s).isEqualTo(Status.RACED);
        // Only the first table's subtree and its POST; no visit of the second table, no POST of L1.
        assertThat(r.calls).hasSize(513);
        assertThat(r.calls.get(512).visit()).isEqualTo(Visit.TABLE_POST);
    }

    @Test
    void retryRereadsTheEntryAndIsBounded() {
        newTable(Granule.G4K);
        map(0, 4 * K4, 0x8000_0000L);
        long sw = 1L << 55;
        int[] tries = new int[1];
        List<Long> seenAtK4 = new ArrayList<>();
        Recorder r = new Recorder((ctx, v) -> {
            if (ctx.addr() != K4) return Status.OK;
            seenAtK4.add(ctx.old());
            if (tries[0]++ < 2) {
                // Another agent changes the entry; the visitor reports the race.
                Frames.setRelease(FRAMES.frame(mem, ctx.tablePa()), ctx.index(), ctx.old() ^ sw);
                return Status.RACED;
            }
            return Status.OK;
        });
        long original = table.getLeaf(K4).pte();
        Status s = table.walk(0, 4 * K4, r, WalkFlags.LEAF, WalkPolicy.of(WalkPolicy.Action.RETRY, WalkPolicy.Action.STOP, 3));
        assertThat(s).isEqualTo(Status.OK);
        assertThat(r.calls).extracting(Recorder.Call::addr).containsExactly(0L, K4, K4, K4, 2 * K4, 3 * K4);
        // Each retry saw the value the previous attempt left behind: the entry was re-read.
        assertThat(seenAtK4).containsExactly(original, original ^ sw, original);

        for (int max : new int[] {0, 1, 5}) {
            Recorder always = new Recorder((ctx, v) -> ctx.addr() == K4 ? Status.RACED : Status.OK);
            Status st = table.walk(0, 4 * K4, always, WalkFlags.LEAF, WalkPolicy.of(WalkPolicy.Action.RETRY, WalkPolicy.Action.STOP, max));
            assertThat(st).isEqualTo(Status.RACED);
            assertThat(always.calls).extracting(Recorder.Call::addr).as("maxRetries %d", max)
                    .containsExactlyElementsOf(retryExpectation(max));
        }
        // NOT_MAPPED retried the same way
        Recorder nm = new Recorder((ctx, v) -> ctx.addr() == 2 * K4 ? Status.NOT_MAPPED : Status.OK);
        assertThat(table.walk(0, 4 * K4, nm, WalkFlags.LEAF, WalkPolicy.of(WalkPolicy.Action.STOP, WalkPolicy.Action.RETRY, 2)))
                .isEqualTo(Status.NOT_MAPPED);
        assertThat(nm.calls).extracting(Recorder.Call::addr).containsExactly(0L, K4, 2 * K4, 2 * K4, 2 * K4);
    }

    private static List<Long> retryExpectation(int max) {
        List<Long> out = new ArrayList<>();
        out.add(0L);
        for (int i = 0; i <= max; i++) out.add(K4);
        return out;
    }

    @Test
    void retryOfAlwaysRacingPreAndPostVisitsTerminates() {
        newTable(Granule.G4K);
        map(0, K4, 0x8000_0000L);
        for (int flag : new int[] {WalkFlags.TABLE_PRE, WalkFlags.TABLE_POST}) {
            Recorder r = new Recorder((ctx, v) -> v != Visit.LEAF && ctx.level() == 2 ? Status.RACED : Status.OK);
            Status s = table.walk(0, K4, r, flag | WalkFlags.LEAF, WalkPolicy.of(WalkPolicy.Action.RETRY, WalkPolicy.Action.RETRY, 4));
            assertThat(s).isEqualTo(Status.RACED);
            Visit kind = flag == WalkFlags.TABLE_PRE ? Visit.TABLE_PRE : Visit.TABLE_POST;
            assertThat(r.atLevel(kind, 2)).hasSize(5);
        }
    }

    @Test
    void noFitReachingTheWalkerIsAnIllegalState() {
        newTable(Granule.G4K);
        map(0, K4, 0x8000_0000L);
        VisitContext[] kept = new VisitContext[1];
        Visitor v = (ctx, visit) -> {
            kept[0] = ctx;
            return Status.NO_FIT;
        };
        for (WalkPolicy p : new WalkPolicy[] {WalkPolicy.RANGE, WalkPolicy.FAULT}) {
            assertThatThrownBy(() -> table.walk(0, K4, v, WalkFlags.LEAF, p))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("NO_FIT");
            assertThatThrownBy(() -> kept[0].read()).isInstanceOf(IllegalStateException.class);
        }
    }

    @Test
    void policyArgumentsAreChecked() {
        assertThatThrownBy(() -> WalkPolicy.of(null, WalkPolicy.Action.STOP, 0)).hasMessageContaining("onRaced");
        assertThatThrownBy(() -> WalkPolicy.of(WalkPolicy.Action.STOP, null, 0)).hasMessageContaining("onNotMapped");
        assertThatThrownBy(() -> WalkPolicy.of(WalkPolicy.Action.STOP, WalkPolicy.Action.STOP, -1)).hasMessageContaining("maxRetries: -1");
        assertThat(WalkPolicy.FAULT.actionFor(Status.OK)).isEqualTo(WalkPolicy.Action.CONTINUE);
        assertThat(WalkPolicy.FAULT.actionFor(Status.RACED)).isEqualTo(WalkPolicy.Action.STOP);
        assertThat(WalkPolicy.RANGE.actionFor(Status.NOT_MAPPED)).isEqualTo(WalkPolicy.Action.CONTINUE);
    }

    // ---------------------------------------------------------------------------------------
    // the context

    @Test
    void sharedTrySetIsACompareAndSwapAgainstOld() {
        newTable(Granule.G4K);
        map(0, 2 * K4, 0x8000_0000L);
        long sw0 = 1L << 55, sw1 = 1L << 56;
        long before0 = table.getLeaf(0).pte(), before1 = table.getLeaf(K4).pte();
        boolean[] results = new boolean[4];
        long[] oldAfter = new long[2];
        Visitor v = (ctx, visit) -> {
            if (ctx.level() != 3) return Status.OK;
            long old = ctx.old();
            if (ctx.addr() == 0) {
                // another walker got there first
                Frames.compareAndExchange(FRAMES.frame(mem, ctx.tablePa()), ctx.index(), old, old | sw1);
                results[0] = ctx.trySet(old | sw0);
                oldAfter[0] = ctx.old();
            } else if (ctx.addr() == K4) {
                results[1] = ctx.trySet(old | sw0);
                oldAfter[1] = ctx.old();
            }
            return Status.OK;
        };
        table.walk(0, 2 * K4, v, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE);
        assertThat(results[0]).as("stale old: CAS fails").isFalse();
        assertThat(oldAfter[0]).isEqualTo(before0);
        assertThat(table.getLeaf(0).pte()).isEqualTo(before0 | sw1);
        assertThat(results[1]).isTrue();
        assertThat(oldAfter[1]).isEqualTo(before1 | sw0);
        assertThat(table.getLeaf(K4).pte()).isEqualTo(before1 | sw0);

        // An exclusive walk stores unconditionally.
        table.walk(0, K4, (ctx, visit) -> {
            if (ctx.level() == 3) {
                Frames.setRelease(FRAMES.frame(mem, ctx.tablePa()), ctx.index(), ctx.old() | sw0);
                results[2] = ctx.trySet(before0);
            }
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
        assertThat(results[2]).isTrue();
        assertThat(table.getLeaf(0).pte()).isEqualTo(before0);
    }

    @Test
    void contextRefusesUseAfterItsWalkEnded() {
        newTable(Granule.G4K);
        map(0, K4, 0x8000_0000L);
        VisitContext[] kept = new VisitContext[1];
        long[] readInside = new long[1];
        table.walk(0, K4, (ctx, v) -> {
            kept[0] = ctx;
            readInside[0] = ctx.read();
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE);
        assertThat(readInside[0]).matches(Pte::isValid);
        VisitContext c = kept[0];
        long l3 = c.tablePa();
        assertThatThrownBy(c::read).isInstanceOf(IllegalStateException.class).hasMessageContaining("after its walk ended");
        assertThatThrownBy(() -> c.trySet(0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> c.publish(0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(c::getRef).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(c::putRef).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> c.count(l3)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> c.put(l3)).isInstanceOf(IllegalStateException.class);
        assertThat(table.getLeaf(0).pte()).as("nothing changed").isEqualTo(readInside[0]);
        assertThat(mem.count(l3)).isEqualTo(2);
        // also after a walk that ended with an exception
        assertThatThrownBy(() -> table.walk(0, K4, (ctx, v) -> {
            kept[0] = ctx;
            throw new ArithmeticException("boom");
        }, WalkFlags.LEAF, WalkPolicy.RANGE)).isInstanceOf(ArithmeticException.class);
        assertThatThrownBy(kept[0]::read).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void walkSubtreeWalksADetachedTableAndChecksItsBase() {
        newTable(Granule.G4K);
        map(G1 + 5 * K4, K4, 0x8000_0000L);
        long l2 = child(table.rootPa(), 1);
        Recorder r = new Recorder();
        Walker.walkSubtree(table.geometry(), mem, l2, 2, G1, WalkFlags.LEAF | WalkFlags.TABLE_PRE, r);
        assertThat(r.calls).hasSize(1 + 512 + 511);
        assertThat(r.calls.get(0)).extracting(Recorder.Call::visit, Recorder.Call::addr).containsExactly(Visit.TABLE_PRE, G1);
        assertThat(r.calls.get(r.calls.size() - 1).addr()).isEqualTo(2 * G1 - M2);
        assertThatThrownBy(() -> Walker.walkSubtree(table.geometry(), mem, l2, 2, G1 + M2, WalkFlags.LEAF, r))
                .isInstanceOf(PageTableException.class).hasMessageContaining("base");
    }

    // ---------------------------------------------------------------------------------------
    // allocation

    @Test
    void noAllocationPerVisitedEntry() {
        java.lang.management.ThreadMXBean std = ManagementFactory.getThreadMXBean();
        assumeThat(std).isInstanceOf(com.sun.management.ThreadMXBean.class);
        com.sun.management.ThreadMXBean bean = (com.sun.management.ThreadMXBean) std;
        assumeThat(bean.isThreadAllocatedMemorySupported()).isTrue();
        if (!bean.isThreadAllocatedMemoryEnabled()) bean.setThreadAllocatedMemoryEnabled(true);
        newTable(Granule.G16K);
        map(0x4000, 64L << 20, 0x8000_8000L); // IPA and PA not congruent mod 32M: 4096 pages in 3 L3 tables
        long[] count = new long[1];
        Visitor v = (ctx, visit) -> {
            count[0] += ctx.old() & 1;
            return Status.OK;
        };
        int flags = WalkFlags.LEAF | WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST;
        for (int i = 0; i < 5; i++) table.walk(0, 1L << 40, v, flags, WalkPolicy.RANGE); // warm up
        long tid = Thread.currentThread().getId();
        count[0] = 0;
        long before = bean.getThreadAllocatedBytes(tid);
        int rounds = 10;
        for (int i = 0; i < rounds; i++) table.walk(0, 1L << 40, v, flags, WalkPolicy.RANGE);
        long allocated = bean.getThreadAllocatedBytes(tid) - before;
        long entries = rounds * (16L * 2048 + 3 * 2048);
        assertThat(count[0]).as("valid entries seen: 4096 pages, 3 tables pre and post").isEqualTo(rounds * (4096L + 6));
        assertThat(allocated).as("%d bytes for %d visited entries", allocated, entries).isLessThan(entries);
    }
}
