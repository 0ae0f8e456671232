package dev.ptlab.core.walk;

import static dev.ptlab.core.walk.RawTree.K4;
import static dev.ptlab.core.walk.RawTree.M2;
import static dev.ptlab.core.walk.RawTree.leaf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.FrameAccessException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Walker edges not covered elsewhere: the input-address limit itself, walkSubtree's argument
 * checks and result, no visit after the table being walked was freed (checking mode), no frame
 * checks without checking mode, a retried entry that became a leaf in a walk without LEAF
 * visits; and the text of flags, policies and walks.
 */
class WalkerEdgesTest {
    @Test
    void aWalkStartingAtTheInputLimitIsOutOfRangeEvenWhenEmpty() {
        RawTree t = new RawTree(true);
        long limit = RawTree.GEO.iaLimit();
        assertThatThrownBy(() -> t.walk(limit, 0, (c, v) -> Status.OK)).isInstanceOf(PageTableException.class)
                .hasMessageContaining("outside");
        assertThat(t.walk(limit - K4, 0, (c, v) -> Status.OK)).isEqualTo(Status.OK);
    }

    @Test
    void walkSubtreeChecksLevelVisitorAndFlagsAndReportsOk() {
        RawTree t = new RawTree(true);
        Visitor ok = (c, v) -> Status.NOT_MAPPED; // the subtree policy goes on past it
        assertThat(Walker.walkSubtree(RawTree.GEO, t.mem, t.l3, 3, 0, WalkFlags.LEAF, ok)).isEqualTo(Status.OK);
        assertThatThrownBy(() -> Walker.walkSubtree(RawTree.GEO, t.mem, t.l3, 4, 0, WalkFlags.LEAF, ok))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("level");
        assertThatThrownBy(() -> Walker.walkSubtree(RawTree.GEO, t.mem, t.l3, 3, 0, WalkFlags.LEAF, null))
                .isInstanceOf(PageTableException.class).extracting(e -> ((PageTableException) e).argument()).isEqualTo("visitor");
        assertThatThrownBy(() -> Walker.walkSubtree(RawTree.GEO, t.mem, t.l3, 3, 0, WalkFlags.LEAF | 1 << 9, ok))
                .isInstanceOf(PageTableException.class).extracting(e -> ((PageTableException) e).argument()).isEqualTo("flags");
    }

    /** Checking mode: a visitor frees the table it is visiting; the walk stops at its next read, visiting nothing more. */
    @Test
    void noEntryIsVisitedAfterTheTableWasFreed() {
        RawTree t = new RawTree(true);
        List<Integer> visited = new ArrayList<>();
        assertThatThrownBy(() -> t.walk(0, 4 * K4, (ctx, v) -> {
            visited.add(ctx.index());
            if (ctx.index() == 0) ctx.memory().putExclusive(ctx.tablePa()); // count 1 -> 0: freed (poisoned)
            return Status.OK;
        })).isInstanceOf(FrameAccessException.class).hasMessageContaining("after it was freed");
        assertThat(visited).containsExactly(0);
    }

    /** Without checking mode nothing checks frames: a level-2 table in a reused frame (generation 1) is walked as any other. */
    @Test
    void withoutCheckingModeAReusedFrameIsWalkedNormally() {
        RawTree t = new RawTree(false);
        long reused = t.mem.allocate();
        t.mem.free(reused);
        long l2b = t.mem.allocate();
        assertThat(l2b).as("the freed frame is handed out again").isEqualTo(reused);
        t.set(t.root, 1, Stage2Descriptor.table(RawTree.GEO, l2b)); // IPA [1G, 2G)
        t.set(l2b, 0, Stage2Descriptor.table(RawTree.GEO, t.mem.allocate()));
        List<String> seen = new ArrayList<>();
        Status s = Walker.walk(RawTree.GEO, t.mem, t.root, Walk.range(1L << 30, K4).flags(WalkFlags.TABLE_PRE | WalkFlags.LEAF),
                (ctx, v) -> {
                    seen.add(v + " L" + ctx.level());
                    return Status.OK;
                });
        assertThat(s).isEqualTo(Status.OK);
        assertThat(seen).containsExactly("TABLE_PRE L1", "TABLE_PRE L2", "LEAF L3");
    }

    /**
     * A TABLE_PRE-only walk whose visitor replaces the table by a block and asks for a retry: the
     * entry, now a leaf, is not visited as one (the walk has no LEAF visits) and not descended.
     */
    @Test
    void aRetriedEntryThatBecameALeafIsNotVisitedWithoutLeafVisits() {
        RawTree t = new RawTree(false);
        List<String> seen = new ArrayList<>();
        WalkPolicy retryOnce = WalkPolicy.of(WalkPolicy.Action.RETRY, WalkPolicy.Action.CONTINUE, 1);
        Status s = Walker.walk(RawTree.GEO, t.mem, t.root, Walk.range(0, M2).flags(WalkFlags.TABLE_PRE).policy(retryOnce),
                (ctx, v) -> {
                    seen.add(v + " L" + ctx.level());
                    if (ctx.level() == 2) {
                        ctx.publish(leaf(0x4000_0000L, 2));
                        return Status.RACED;
                    }
                    return Status.OK;
                });
        assertThat(s).isEqualTo(Status.OK);
        assertThat(seen).containsExactly("TABLE_PRE L1", "TABLE_PRE L2");
    }

    @Test
    void flagsPoliciesAndWalksPrintWhatTheyHold() {
        assertThat(WalkFlags.toString(WalkFlags.LEAF | WalkFlags.SHARED)).isEqualTo("LEAF|SHARED");
        assertThat(WalkFlags.toString(WalkFlags.SKIP_CMO)).isEqualTo("SKIP_CMO");
        assertThat(WalkFlags.toString(1 << 9)).isEqualTo("0x200");
        assertThat(WalkFlags.toString(WalkFlags.TABLE_POST | 1 << 9)).isEqualTo("TABLE_POST|0x200");
        assertThat(WalkFlags.toString(0)).isEqualTo("0");
        WalkPolicy p = WalkPolicy.of(WalkPolicy.Action.STOP, WalkPolicy.Action.RETRY, 1_000_000);
        assertThat(p.onRaced()).isEqualTo(WalkPolicy.Action.STOP);
        assertThat(p.onNotMapped()).isEqualTo(WalkPolicy.Action.RETRY);
        assertThat(p).hasToString("WalkPolicy[raced=STOP, notMapped=RETRY, maxRetries=1000000]");
        assertThat(WalkPolicy.of(WalkPolicy.Action.STOP, WalkPolicy.Action.STOP, 0).maxRetries()).isZero();
        assertThatThrownBy(() -> WalkPolicy.of(WalkPolicy.Action.STOP, WalkPolicy.Action.STOP, 1_000_001))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> WalkPolicy.of(WalkPolicy.Action.STOP, WalkPolicy.Action.STOP, -1))
                .isInstanceOf(IllegalArgumentException.class);
        assertThat(Walk.range(0x1000, 0x2000).flags(WalkFlags.LEAF).policy(WalkPolicy.FAULT))
                .hasToString("Walk[0x1000 +0x2000, LEAF, " + WalkPolicy.FAULT + "]");
    }
}
