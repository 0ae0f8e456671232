package dev.ptlab.core.walk;

import static dev.ptlab.core.walk.RawTree.K4;
import static dev.ptlab.core.walk.RawTree.M2;
import static dev.ptlab.core.walk.RawTree.leaf;
import static dev.ptlab.core.walk.RawTree.state;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.FrameAccessException;
import dev.ptlab.core.mem.PhysicalMemory;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The rest of {@link VisitContext}'s contract: a run operation that takes nothing leaves the
 * context where it was; the context after a multi-entry update started mid-table; references
 * pending in a run keep the table alive; a drop outside a run is applied at once; which entries
 * hold a reference in each kind of table; what a TABLE_PRE visit sees; a context refuses use
 * after its walk ended and (checking mode) use of a table frame freed under it.
 */
class VisitContextEdgesTest {
    private static final long PA = 0x8000_0000L;

    /** A run operation that takes no entry (fill over a non-zero entry, update of a zero one) leaves index, address and old value as they were. */
    @Test
    void aRunOperationThatTakesNothingLeavesTheContextAsItWas() {
        RawTree t = new RawTree(true);
        t.pages(3, 4, PA); // entry 3 valid, entry 4 zero
        RawTree.Probe fill = new RawTree.Probe(3, 3, ctx -> state(ctx.fillRun(leaf(0x9000_0000L, 3), K4, 8), ctx));
        t.walk(0, M2, fill);
        assertThat(fill.result).isEqualTo(state(0, 3, 3 * K4, leaf(PA + 3 * K4, 3)));
        RawTree.Probe update = new RawTree.Probe(3, 4, ctx -> state(ctx.updateRun(Stage2Descriptor.S2AP_W, 0), ctx));
        t.walk(0, M2, update);
        assertThat(update.result).isEqualTo(state(0, 4, 4 * K4, 0));
        assertThat(t.mem.count(t.l3)).isEqualTo(2);
    }

    /** Started at entry 2, an update of entries 2..5 leaves the context on entry 5 at its own address. */
    @Test
    void aRunUpdateStartedMidTableEndsAtTheLastEntrysAddress() {
        RawTree t = new RawTree(true);
        t.pages(2, 6, PA);
        RawTree.Probe p = new RawTree.Probe(3, 2, ctx -> state(ctx.updateRun(Stage2Descriptor.S2AP_W, 0), ctx));
        t.walk(0, M2, p);
        assertThat(p.result).isEqualTo(state(4, 5, 5 * K4, leaf(PA + 5 * K4, 3) | Stage2Descriptor.S2AP_W));
    }

    /**
     * Two leaves installed and one removed again in one run of an empty table (count 1): the
     * references taken count before the drop, so the table stays live, and ends at 1 + 1.
     */
    @Test
    void referencesPendingInARunKeepTheTableAliveThroughALaterDrop() {
        RawTree t = new RawTree(true);
        RawTree.Probe p = new RawTree.Probe(3, 0, ctx -> {
            ctx.getRef();
            ctx.publish(leaf(PA, 3));
            ctx.nextInRun();
            ctx.getRef();
            ctx.publish(leaf(PA + K4, 3));
            ctx.trySet(0);
            ctx.putRef();
            return "live=" + ctx.memory().isLive(ctx.tablePa());
        });
        t.walk(0, M2, p);
        assertThat(p.result).isEqualTo("live=true");
        assertThat(t.mem.count(t.l3)).isEqualTo(2);
        assertThat(t.frame(t.l3)[0]).isEqualTo(leaf(PA, 3));
        assertThat(t.frame(t.l3)[1]).isZero();
    }

    /** Outside a run (a LEAF visit) a drop reaches the table at once: its count reads one less straight after. */
    @Test
    void aDropOutsideARunIsAppliedAtOnce() {
        RawTree t = new RawTree(true);
        t.pages(0, 2, PA); // count 3
        List<Integer> counts = new ArrayList<>();
        t.walk(0, K4, (ctx, v) -> {
            ctx.trySet(0);
            ctx.putRef();
            counts.add(ctx.memory().count(ctx.tablePa()));
            return Status.OK;
        });
        assertThat(counts).containsExactly(2);
    }

    /** Stage 2 counts every non-zero entry but LOCKED; hyp tables count valid entries; process tables every non-zero one. */
    @Test
    void whichEntriesHoldAReferenceDependsOnTheKindOfTable() {
        long valid = leaf(PA, 3), annotation = Pte.ownerAnnotation(3);
        List<String> seen = new ArrayList<>();
        for (Geometry g : new Geometry[] {RawTree.GEO, Geometry.hyp(Granule.G4K, 48), Geometry.process(Granule.G4K, 48)}) {
            PhysicalMemory mem = new PhysicalMemory(RawTree.MEM_BASE, 1L << 20, Granule.G4K, true);
            long table = mem.allocate();
            Walker.walkSubtree(g, mem, table, 3, 0, WalkFlags.LEAF, (ctx, v) -> {
                if (ctx.index() == 0) {
                    seen.add(g.stage() + " valid=" + ctx.isCounted(valid) + " annotation=" + ctx.isCounted(annotation)
                            + " locked=" + ctx.isCounted(Pte.LOCKED) + " zero=" + ctx.isCounted(0));
                }
                return Status.OK;
            });
        }
        assertThat(seen).containsExactly(
                "STAGE2 valid=true annotation=true locked=false zero=false",
                "HYP valid=true annotation=false locked=false zero=false",
                "PROCESS valid=true annotation=true locked=true zero=false");
    }

    @Test
    void aTablePreVisitSeesATableEntryAndItsChild() {
        RawTree t = new RawTree(true);
        List<String> seen = new ArrayList<>();
        Walker.walk(RawTree.GEO, t.mem, t.root, Walk.range(0, K4).flags(WalkFlags.TABLE_PRE | WalkFlags.LEAF), (ctx, v) -> {
            seen.add(v + " L" + ctx.level() + " table=" + ctx.isTable() + " geometry=" + (ctx.geometry() == RawTree.GEO)
                    + (ctx.isTable() ? " child=0x" + Long.toHexString(ctx.childTable()) : ""));
            return Status.OK;
        });
        assertThat(seen).containsExactly(
                "TABLE_PRE L1 table=true geometry=true child=0x" + Long.toHexString(t.l2),
                "TABLE_PRE L2 table=true geometry=true child=0x" + Long.toHexString(t.l3),
                "LEAF L3 table=false geometry=true");
    }

    /** Every operation of a context kept past its walk is refused, run operations included. */
    @Test
    void runOperationsAreRefusedAfterTheWalkEnded() {
        RawTree t = new RawTree(true);
        t.pages(0, 4, PA);
        VisitContext[] kept = new VisitContext[1];
        RawTree.Probe p = new RawTree.Probe(3, 0, ctx -> {
            kept[0] = ctx;
            return ctx.toString();
        });
        // A walk of the level-3 table itself: the context ends at level 3, where skipRun reads nothing.
        Walker.walkSubtree(RawTree.GEO, t.mem, t.l3, 3, 0, WalkFlags.LEAF, p);
        assertThat(p.result).contains("addr=0x0", "level=3", "[0]", "flags=LEAF");
        VisitContext c = kept[0];
        List<Runnable> ops = List.of(c::nextInRun, c::skipRun, () -> c.fillRun(leaf(PA, 3), K4, 4), c::clearRun,
                () -> c.updateRun(Stage2Descriptor.S2AP_W, 0), c::getRef, c::putRef);
        for (Runnable op : ops) {
            assertThatThrownBy(op::run).isInstanceOf(IllegalStateException.class).hasMessageContaining("after its walk ended");
        }
        for (int i = 0; i < 4; i++) assertThat(t.frame(t.l3)[i]).isEqualTo(leaf(PA + i * K4, 3));
        assertThat(t.mem.count(t.l3)).isEqualTo(5);
    }

    /** Checking mode: once the table being visited is freed under the visitor, reading an entry through the context is refused. */
    @Test
    void aContextRefusesATableFrameFreedUnderIt() {
        RawTree t = new RawTree(true);
        List<String> seen = new ArrayList<>();
        assertThatThrownBy(() -> t.walk(0, K4, (ctx, v) -> {
            ctx.memory().putExclusive(ctx.tablePa()); // count 1 -> 0: freed
            try {
                seen.add("read 0x" + Long.toHexString(ctx.read()));
            } catch (FrameAccessException e) {
                seen.add(e.getMessage());
            }
            return Status.OK;
        })).isInstanceOf(FrameAccessException.class);
        assertThat(seen).hasSize(1);
        assertThat(seen.get(0)).contains("0x" + Long.toHexString(t.l3), "after it was freed");
    }
}
