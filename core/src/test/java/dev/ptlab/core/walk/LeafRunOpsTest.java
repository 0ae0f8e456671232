package dev.ptlab.core.walk;

import static dev.ptlab.core.walk.RawTree.K4;
import static dev.ptlab.core.walk.RawTree.M2;
import static dev.ptlab.core.walk.RawTree.leaf;
import static dev.ptlab.core.walk.RawTree.state;
import static dev.ptlab.core.walk.RawTree.visits;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.FrameAccessException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The leaf-run operations of {@link VisitContext} ({@link VisitContext#fillRun},
 * {@link VisitContext#clearRun}, {@link VisitContext#updateRun}) and the batched reference
 * counting of a run, on a hand-built tree ({@link RawTree}): which entries each changes, where it
 * stops (a non-zero or non-leaf entry, a table, the end of the table or of the walk's range, the
 * {@code max} argument, a reference count that must not reach 0), the context it leaves
 * (index, address, old value), the entries the walker then visits, and the tables' counts.
 * Expected values are derived in the comments from the tree each test builds.
 */
class LeafRunOpsTest {
    private static final long PA = 0x8000_0000L;
    private static final long W = Stage2Descriptor.S2AP_W;

    // ---------------------------------------------------------------------------------------
    // fillRun

    @Test
    void fillRunFillsZeroEntriesUpToTheFirstNonZeroOne() {
        RawTree t = new RawTree(true);
        t.set(t.l3, 5, leaf(0x9000_0000L, 3)); // count 1 + 1
        RawTree.Probe p = new RawTree.Probe(3, 0, ctx -> {
            String s = state(ctx.fillRun(leaf(PA, 3), K4, 100), ctx);
            ctx.nextInRun();
            return s;
        });
        assertThat(t.walk(0, M2, p)).isEqualTo(Status.OK);
        // Entries 0..4 are zero, 5 is not: five filled, the context on entry 4 (IPA 0x4000), as
        // after the publish of its value PA + 4 * 4K.
        assertThat(p.result).isEqualTo(state(5, 4, 0x4000, leaf(PA + 4 * K4, 3)));
        for (int i = 0; i < 5; i++) assertThat(t.frame(t.l3)[i]).isEqualTo(leaf(PA + i * K4, 3));
        assertThat(t.frame(t.l3)[5]).isEqualTo(leaf(0x9000_0000L, 3));
        assertThat(p.visits).isEqualTo(visits(3, 5, 512)); // the walker carries on at entry 5
        assertThat(t.mem.count(t.l3)).isEqualTo(2 + 5);
    }

    @Test
    void fillRunStopsAfterMaxEntries() {
        RawTree t = new RawTree(true);
        RawTree.Probe three = new RawTree.Probe(3, 0, ctx -> {
            String s = state(ctx.fillRun(leaf(PA, 3), K4, 3), ctx);
            ctx.nextInRun();
            return s;
        });
        t.walk(0, M2, three);
        assertThat(three.result).isEqualTo(state(3, 2, 0x2000, leaf(PA + 2 * K4, 3)));
        assertThat(t.frame(t.l3)[3]).isZero();
        assertThat(three.visits).isEqualTo(visits(3, 3, 512));
        assertThat(t.mem.count(t.l3)).isEqualTo(1 + 3);

        RawTree u = new RawTree(true);
        RawTree.Probe none = new RawTree.Probe(3, 0, ctx -> state(ctx.fillRun(leaf(PA, 3), K4, 0), ctx));
        u.walk(0, M2, none);
        assertThat(none.result).isEqualTo(state(0, 0, 0, 0)); // max 0: nothing, the context untouched
        assertThat(u.frame(u.l3)[0]).isZero();
        assertThat(none.visits).isEqualTo(visits(3, 0, 512));
        assertThat(u.mem.count(u.l3)).isEqualTo(1);
    }

    @Test
    void fillRunStopsAtTheEndOfTheTable() {
        RawTree t = new RawTree(true);
        RawTree.Probe p = new RawTree.Probe(3, 510, ctx -> {
            int n = ctx.fillRun(leaf(PA, 3), K4, 100);
            return state(n, ctx) + " next=" + ctx.nextInRun();
        });
        t.walk(0, M2, p);
        // Entries 510 and 511 are the last two of the table.
        assertThat(p.result).isEqualTo(state(2, 511, 511 * K4, leaf(PA + K4, 3)) + " next=false");
        assertThat(p.visits).isEqualTo(visits(3, 0, 510));
        assertThat(t.mem.count(t.l3)).isEqualTo(1 + 2);
    }

    @Test
    void fillRunStopsAtTheEndOfTheWalksRange() {
        RawTree t = new RawTree(true);
        RawTree.Probe p = new RawTree.Probe(3, 3, ctx -> {
            int n = ctx.fillRun(leaf(PA, 3), K4, 100);
            return state(n, ctx) + " next=" + ctx.nextInRun();
        });
        // [3 * 4K, 7 * 4K + 1) widens to whole pages [0x3000, 0x8000): entries 3..7.
        t.walk(3 * K4, 4 * K4 + 1, p);
        assertThat(p.result).isEqualTo(state(5, 7, 7 * K4, leaf(PA + 4 * K4, 3)) + " next=false");
        assertThat(t.frame(t.l3)[8]).isZero();
        assertThat(p.visits).isEmpty();
        assertThat(t.mem.count(t.l3)).isEqualTo(1 + 5);
    }

    @Test
    void fillRunOfBlocksCountsAnEntryTheRangeEndsInsideAndKeepsAnUnalignedAddress() {
        long block = leaf(0x4000_0000L, 2);
        long start = M2 + 5 * K4, end = 3 * M2 + K4; // level-2 entries 1, 2 and 3 start before end
        RawTree t = new RawTree(true);
        RawTree.Probe p = new RawTree.Probe(2, 1, ctx -> {
            int n = ctx.fillRun(block, M2, 100);
            return state(n, ctx) + " next=" + ctx.nextInRun();
        });
        t.walk(start, end - start, p);
        assertThat(p.result).isEqualTo(state(3, 3, 3 * M2, block + 2 * M2) + " next=false");
        assertThat(t.frame(t.l2)[4]).isZero();
        assertThat(t.mem.count(t.l2)).isEqualTo(2 + 3);

        // One entry filled: the context stays on it at the (unaligned) address the walk reached it.
        RawTree u = new RawTree(true);
        RawTree.Probe one = new RawTree.Probe(2, 1, ctx -> {
            String s = state(ctx.fillRun(block, M2, 1), ctx);
            ctx.nextInRun();
            return s;
        });
        u.walk(start, end - start, one);
        assertThat(one.result).isEqualTo(state(1, 1, start, block));
        assertThat(one.visits).containsExactly("L2[2]", "L2[3]");
        assertThat(u.mem.count(u.l2)).isEqualTo(2 + 1);
    }

    // ---------------------------------------------------------------------------------------
    // clearRun

    @Test
    void clearRunClearsValidLeavesUpToTheFirstOtherEntry() {
        RawTree t = new RawTree(true);
        t.pages(0, 10, PA);
        t.set(t.l3, 11, leaf(0x9000_0000L, 3)); // entry 10 stays zero; count 1 + 11
        RawTree.Probe p = new RawTree.Probe(3, 0, ctx -> {
            String s = state(ctx.clearRun(), ctx);
            ctx.nextInRun();
            return s;
        });
        t.walk(0, M2, p);
        assertThat(p.result).isEqualTo(state(10, 9, 9 * K4, 0));
        for (int i = 0; i < 10; i++) assertThat(t.frame(t.l3)[i]).isZero();
        assertThat(t.frame(t.l3)[11]).isEqualTo(leaf(0x9000_0000L, 3));
        assertThat(p.visits).isEqualTo(visits(3, 10, 512));
        assertThat(t.mem.count(t.l3)).isEqualTo(12 - 10);
    }

    @Test
    void clearRunStopsAtAnInvalidNonZeroEntryAndAtTheRangeEnd() {
        RawTree t = new RawTree(true);
        t.pages(0, 3, PA);
        long annotation = Pte.ownerAnnotation(5);
        t.set(t.l3, 3, annotation);
        t.pages(4, 6, PA); // count 1 + 6
        RawTree.Probe p = new RawTree.Probe(3, 0, ctx -> state(ctx.clearRun(), ctx));
        t.walk(0, M2, p);
        assertThat(p.result).isEqualTo(state(3, 2, 2 * K4, 0));
        assertThat(t.frame(t.l3)[3]).isEqualTo(annotation);
        assertThat(t.frame(t.l3)[4]).isEqualTo(leaf(PA + 4 * K4, 3));
        assertThat(t.mem.count(t.l3)).isEqualTo(7 - 3);

        RawTree u = new RawTree(true);
        u.pages(0, 10, PA); // count 11
        RawTree.Probe q = new RawTree.Probe(3, 1, ctx -> state(ctx.clearRun(), ctx) + " next=" + ctx.nextInRun());
        u.walk(K4, 4 * K4, q); // entries 1..4
        assertThat(q.result).isEqualTo(state(4, 4, 4 * K4, 0) + " next=false");
        assertThat(u.frame(u.l3)[5]).isEqualTo(leaf(PA + 5 * K4, 3));
        assertThat(u.mem.count(u.l3)).isEqualTo(11 - 4);
    }

    @Test
    void clearRunOfBlocksStopsAtATable() {
        RawTree t = new RawTree(true);
        long l3b = t.blocksThenTable();
        t.set(t.l2, 4, leaf(0x4080_0000L, 2)); // count 1 + 5
        RawTree.Probe p = new RawTree.Probe(2, 1, ctx -> state(ctx.clearRun(), ctx) + " next=" + ctx.nextInRun());
        t.walk(M2, 4 * M2, p);
        assertThat(p.result).isEqualTo(state(2, 2, 2 * M2, 0) + " next=false");
        List<String> expected = new ArrayList<>(visits(3, 0, 512)); // the walker descends into entry 3's table
        expected.add("L2[4]");
        assertThat(p.visits).isEqualTo(expected);
        assertThat(t.frame(t.l2)[3]).isEqualTo(Stage2Descriptor.table(RawTree.GEO, l3b));
        assertThat(t.mem.count(t.l2)).isEqualTo(6 - 2);
    }

    @Test
    void clearRunOfOneEntryKeepsTheUnalignedAddress() {
        RawTree t = new RawTree(true);
        t.set(t.l2, 1, leaf(0x4000_0000L, 2));
        long start = M2 + 5 * K4;
        RawTree.Probe p = new RawTree.Probe(2, 1, ctx -> state(ctx.clearRun(), ctx));
        t.walk(start, M2, p);
        assertThat(p.result).isEqualTo(state(1, 1, start, 0));
        assertThat(t.mem.count(t.l2)).isEqualTo(2);
    }

    /**
     * clearRun never drops the table's count to 0 itself: with count 6 (lowered by hand below the
     * 1 + 10 its entries hold) it clears 5 entries, leaving the count at 1 and the table live;
     * the drop that would free it is left to the per-entry path.
     */
    @Test
    void clearRunStopsWhereTheNextDropWouldFreeTheTable() {
        RawTree t = new RawTree(true);
        t.pages(0, 10, PA);
        t.mem.putExclusive(t.l3, 5); // 11 -> 6
        RawTree.Probe p = new RawTree.Probe(3, 0, ctx -> state(ctx.clearRun(), ctx) + " count=" + ctx.count(ctx.tablePa()));
        t.walk(0, M2, p);
        assertThat(p.result).isEqualTo(state(5, 4, 4 * K4, 0) + " count=1");
        assertThat(t.mem.isLive(t.l3)).isTrue();
        assertThat(t.frame(t.l3)[5]).isEqualTo(leaf(PA + 5 * K4, 3));

        // Entries filled earlier in the same run count towards the budget: count 4 (lowered from
        // 1 + 8), two entries filled (6), so five drops (2..6) leave it at 1.
        RawTree u = new RawTree(true);
        u.pages(2, 10, PA);
        u.mem.putExclusive(u.l3, 5); // 9 -> 4
        RawTree.Probe q = new RawTree.Probe(3, 0, ctx -> {
            int filled = ctx.fillRun(leaf(PA, 3), K4, 2);
            ctx.nextInRun();
            return "filled=" + filled + " " + state(ctx.clearRun(), ctx) + " count=" + ctx.count(ctx.tablePa());
        });
        u.walk(0, M2, q);
        assertThat(q.result).isEqualTo("filled=2 " + state(5, 6, 6 * K4, 0) + " count=1");
        assertThat(u.frame(u.l3)[7]).isEqualTo(leaf(PA + 7 * K4, 3));
    }

    // ---------------------------------------------------------------------------------------
    // updateRun

    @Test
    void updateRunChangesValidLeavesAndCountsOnlyThoseItChanged() {
        RawTree t = new RawTree(true);
        t.pages(0, 6, PA);
        t.frame(t.l3)[2] |= W;
        t.frame(t.l3)[4] |= W; // entry 6 stays zero
        RawTree.Probe p = new RawTree.Probe(3, 0, ctx -> {
            String s = state(ctx.updateRun(W, 0), ctx) + " changed=" + ctx.updatedInRun();
            ctx.nextInRun();
            return s;
        });
        t.walk(0, M2, p);
        // Six leaves passed, four of them (0, 1, 3, 5) without W before.
        assertThat(p.result).isEqualTo(state(6, 5, 5 * K4, leaf(PA + 5 * K4, 3) | W) + " changed=4");
        for (int i = 0; i < 6; i++) assertThat(t.frame(t.l3)[i]).isEqualTo(leaf(PA + i * K4, 3) | W);
        assertThat(p.visits).isEqualTo(visits(3, 6, 512));
        assertThat(t.mem.count(t.l3)).isEqualTo(7); // no reference changes

        RawTree u = new RawTree(true);
        u.pages(0, 3, PA);
        RawTree.Probe q = new RawTree.Probe(3, 1, ctx -> state(ctx.updateRun(0, Stage2Descriptor.AF), ctx)
                + " changed=" + ctx.updatedInRun() + " next=" + ctx.nextInRun());
        u.walk(K4, 2 * K4, q); // entries 1 and 2
        assertThat(q.result).isEqualTo(state(2, 2, 2 * K4, leaf(PA + 2 * K4, 3) & ~Stage2Descriptor.AF)
                + " changed=2 next=false");
        assertThat(u.frame(u.l3)[0]).isEqualTo(leaf(PA, 3));
        assertThat(u.frame(u.l3)[1]).isEqualTo(leaf(PA + K4, 3) & ~Stage2Descriptor.AF);
    }

    @Test
    void updateRunOfBlocksStopsAtATableAndKeepsTheAddressOfASingleEntry() {
        RawTree t = new RawTree(true);
        long l3b = t.blocksThenTable();
        RawTree.Probe p = new RawTree.Probe(2, 1, ctx -> state(ctx.updateRun(W, 0), ctx) + " next=" + ctx.nextInRun());
        t.walk(M2, 3 * M2, p);
        assertThat(p.result).isEqualTo(state(2, 2, 2 * M2, leaf(0x4020_0000L, 2) | W) + " next=false");
        assertThat(t.frame(t.l2)[3]).isEqualTo(Stage2Descriptor.table(RawTree.GEO, l3b));

        RawTree u = new RawTree(true);
        u.set(u.l2, 1, leaf(0x4000_0000L, 2));
        long start = M2 + 5 * K4;
        RawTree.Probe q = new RawTree.Probe(2, 1, ctx -> state(ctx.updateRun(W, 0), ctx));
        u.walk(start, M2, q);
        assertThat(q.result).isEqualTo(state(1, 1, start, leaf(0x4000_0000L, 2) | W));
    }

    @Test
    void updateRunRefusesBitsThatNeedBreakBeforeMake() {
        RawTree t = new RawTree(true);
        t.pages(0, 2, PA);
        long oaBit = 1L << 12;
        RawTree.Probe set = new RawTree.Probe(3, 0, ctx -> state(ctx.updateRun(oaBit, 0), ctx));
        assertThatThrownBy(() -> t.walk(0, M2, set)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("break-before-make");
        RawTree.Probe clear = new RawTree.Probe(3, 0, ctx -> state(ctx.updateRun(0, oaBit), ctx));
        assertThatThrownBy(() -> t.walk(0, M2, clear)).isInstanceOf(IllegalArgumentException.class);
        assertThat(t.frame(t.l3)[0]).isEqualTo(leaf(PA, 3));
        assertThat(t.frame(t.l3)[1]).isEqualTo(leaf(PA + K4, 3));
    }

    // ---------------------------------------------------------------------------------------
    // outside a run, on a free table

    /** Outside a leaf run (a LEAF visit) the run operations do nothing and say so. */
    @Test
    void runOperationsOutsideARunChangeNothing() {
        RawTree t = new RawTree(true);
        t.pages(0, 3, PA); // entry 3 zero; count 4
        List<String> seen = new ArrayList<>();
        LeafRunVisitor v = new LeafRunVisitor() {
            @Override
            public void visitLeafRun(VisitContext ctx) {
                if (ctx.index() == 0) {
                    // In the run: W on entries 0..2 (three changed); the walker carries on at entry 3.
                    seen.add("run " + ctx.updateRun(W, 0) + " changed=" + ctx.updatedInRun());
                    ctx.nextInRun();
                }
            }

            @Override
            public Status visit(VisitContext ctx, Visit visit) {
                if (ctx.index() == 3) {
                    seen.add("fill " + ctx.fillRun(leaf(PA, 3), K4, 10));
                    seen.add("update " + ctx.updateRun(W, 0) + " changed=" + ctx.updatedInRun());
                    ctx.trySet(leaf(PA + 3 * K4, 3));
                    ctx.getRef();
                    seen.add("clear " + ctx.clearRun());
                }
                return Status.OK;
            }
        };
        t.walk(0, 4 * K4, v);
        assertThat(seen).containsExactly("run 3 changed=3", "fill 0", "update 0 changed=0", "clear 0");
        assertThat(t.frame(t.l3)[3]).isEqualTo(leaf(PA + 3 * K4, 3));
        assertThat(t.frame(t.l3)[4]).isZero();
        assertThat(t.mem.count(t.l3)).isEqualTo(1 + 4);
    }

    /**
     * On a table whose count is 0 (a freed frame, reachable here only without checking mode) the
     * run operations change nothing: the per-entry path reports the misuse (getRef throws).
     */
    @Test
    void runOperationsOnAFreeTableChangeNothing() {
        RawTree t = new RawTree(false);
        long freed = t.mem.allocate();
        t.mem.free(freed);
        long[] f = t.frame(freed);
        f[8] = leaf(PA, 3);
        RawTree.Probe fill = new RawTree.Probe(3, 0, ctx -> {
            String s = "fill " + ctx.fillRun(leaf(PA, 3), K4, 4);
            try {
                ctx.getRef();
                return s + ", getRef took a reference";
            } catch (FrameAccessException e) {
                return s + ", getRef throws";
            }
        });
        Walker.walkSubtree(RawTree.GEO, t.mem, freed, 3, 0, WalkFlags.LEAF, fill);
        assertThat(fill.result).isEqualTo("fill 0, getRef throws");
        RawTree.Probe clear = new RawTree.Probe(3, 8, ctx -> "clear " + ctx.clearRun());
        Walker.walkSubtree(RawTree.GEO, t.mem, freed, 3, 0, WalkFlags.LEAF, clear);
        assertThat(clear.result).isEqualTo("clear 0");
        assertThat(f[0]).isZero();
        assertThat(f[8]).isEqualTo(leaf(PA, 3));
        assertThat(t.mem.count(freed)).isZero();
    }

    // ---------------------------------------------------------------------------------------
    // batched reference counting

    /** getRef/publish per entry in a run: count() sees every reference taken, and so does the table afterwards. */
    @Test
    void referencesTakenInARunAreCountedWhenReadAndWhenTheRunEnds() {
        RawTree t = new RawTree(true);
        t.pages(0, 3, PA); // count 4
        RawTree.Probe p = new RawTree.Probe(3, 3, ctx -> {
            ctx.getRef();
            ctx.publish(leaf(PA + 3 * K4, 3));
            ctx.nextInRun();
            ctx.getRef();
            ctx.publish(leaf(PA + 4 * K4, 3));
            String s = "count=" + ctx.count(ctx.tablePa());
            ctx.nextInRun();
            ctx.getRef();
            ctx.publish(leaf(PA + 5 * K4, 3));
            ctx.nextInRun();
            return s;
        });
        t.walk(0, M2, p);
        assertThat(p.result).isEqualTo("count=6");
        assertThat(t.mem.count(t.l3)).isEqualTo(7);
        List<String> expected = new ArrayList<>(visits(3, 0, 3)); // before the run, and after it
        expected.addAll(visits(3, 6, 512));
        assertThat(p.visits).isEqualTo(expected);
    }

    /**
     * Runs {@code action} in the first leaf run of a detached level-3 table holding one page
     * (count 2), on memory without checking mode (the walk reads on once the table is freed).
     */
    private static String inRunOfOnePageTable(RawTree.Probe.Action action) {
        RawTree t = new RawTree(false);
        long table = t.mem.allocate();
        t.set(table, 0, leaf(PA, 3));
        RawTree.Probe p = new RawTree.Probe(3, 0, action);
        Walker.walkSubtree(RawTree.GEO, t.mem, table, 3, 0, WalkFlags.LEAF, p);
        return p.result;
    }

    private static String live(VisitContext ctx) {
        return "live=" + ctx.memory().isLive(ctx.tablePa());
    }

    /**
     * A drop in a run that takes the table's count to 0 frees it at that call, as outside a run
     * (the batch never defers a free): entry 0's reference, then the allocation's.
     */
    @Test
    void aDropToZeroInARunFreesTheTableAtOnce() {
        assertThat(inRunOfOnePageTable(ctx -> {
            ctx.trySet(0);
            ctx.putRef();
            String s = live(ctx);
            ctx.putRef();
            return s + " " + live(ctx);
        })).isEqualTo("live=true live=false");
    }

    /** put() on the run's own table applies the drops pending in the run first, so it frees the table when they bring it to 1. */
    @Test
    void putOnTheRunsTableAppliesPendingDropsFirst() {
        assertThat(inRunOfOnePageTable(ctx -> {
            ctx.trySet(0);
            ctx.putRef();
            ctx.put(ctx.tablePa());
            return live(ctx);
        })).isEqualTo("live=false");
    }
}
