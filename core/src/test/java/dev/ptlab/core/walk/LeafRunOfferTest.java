package dev.ptlab.core.walk;

import static dev.ptlab.core.walk.RawTree.K4;
import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.mem.Reclaimer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * When the walker offers a {@link LeafRunVisitor} a run (LeafRunVisitor's contract): before the
 * LEAF visit of each non-table entry of an exclusive walk with {@link WalkFlags#LEAF}, and
 * never in a shared walk or a walk that does not visit leaves. A run that takes nothing leaves
 * the entry to its ordinary LEAF visit; a run that takes entries is not visited again.
 */
class LeafRunOfferTest {
    /** Logs each offer and visit; takes {@code take} entries of the run offered at level-3 index {@code at}. */
    private static final class Logger implements LeafRunVisitor {
        final List<String> log = new ArrayList<>();
        private final int at;
        private final int take;

        Logger(int at, int take) {
            this.at = at;
            this.take = take;
        }

        @Override
        public void visitLeafRun(VisitContext ctx) {
            log.add("run L" + ctx.level() + "[" + ctx.index() + "]");
            if (ctx.level() == 3 && ctx.index() == at) {
                for (int i = 0; i < take; i++) ctx.nextInRun();
            }
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            log.add(visit + " L" + ctx.level() + "[" + ctx.index() + "]");
            return Status.OK;
        }
    }

    @Test
    void exclusiveLeafWalksOfferARunBeforeEachLeafVisit() {
        RawTree t = new RawTree(true);
        t.pages(0, 2, 0x8000_0000L); // entries 0, 1 valid; 2, 3 zero: all four are leaves
        Logger v = new Logger(-1, 0);
        assertThat(t.walk(0, 4 * K4, v)).isEqualTo(Status.OK);
        assertThat(v.log).containsExactly("run L3[0]", "LEAF L3[0]", "run L3[1]", "LEAF L3[1]",
                "run L3[2]", "LEAF L3[2]", "run L3[3]", "LEAF L3[3]");
    }

    @Test
    void entriesARunTakesAreNotVisitedAgain() {
        RawTree t = new RawTree(true);
        Logger v = new Logger(1, 2); // the run at entry 1 takes entries 1 and 2
        t.walk(0, 4 * K4, v);
        assertThat(v.log).containsExactly("run L3[0]", "LEAF L3[0]", "run L3[1]", "run L3[3]", "LEAF L3[3]");
    }

    @Test
    void sharedWalksAndWalksWithoutLeafVisitsOfferNoRun() {
        RawTree t = new RawTree(true);
        t.pages(0, 2, 0x8000_0000L);
        Logger shared = new Logger(-1, 0);
        Walker.walk(RawTree.GEO, t.mem, t.root, Walk.range(0, 4 * K4).flags(WalkFlags.LEAF | WalkFlags.SHARED)
                .reclaimer(new Reclaimer()), shared);
        assertThat(shared.log).containsExactly("LEAF L3[0]", "LEAF L3[1]", "LEAF L3[2]", "LEAF L3[3]");

        Logger tables = new Logger(-1, 0);
        Walker.walk(RawTree.GEO, t.mem, t.root, Walk.range(0, 4 * K4).flags(WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST), tables);
        assertThat(tables.log).containsExactly("TABLE_PRE L1[0]", "TABLE_PRE L2[0]", "TABLE_POST L2[0]", "TABLE_POST L1[0]");
    }
}
