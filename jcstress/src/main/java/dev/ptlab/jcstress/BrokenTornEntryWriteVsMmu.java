package dev.ptlab.jcstress;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * DELIBERATELY BROKEN (not run by verify): {@link EntryBreakMakeVsMmu}'s writer replaced by one
 * that writes the new descriptor as two halves, low half first, with no break in between (on
 * non-checking memory, which would otherwise reject the valid-to-valid change). The MMU can walk
 * through the intermediate value, old high half with new low half, which maps neither PA: the
 * FORBIDDEN outcome this test exists to show jcstress reports. Run with
 * {@code java -jar jcstress/target/jcstress.jar -t BrokenTornEntryWriteVsMmu -m sanity}.
 */
@JCStressTest
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "old leaf")
@Outcome(id = "3, 1", expect = ACCEPTABLE, desc = "new leaf")
@Outcome(expect = FORBIDDEN, desc = "the torn descriptor (old high half, new low half)")
@State
public class BrokenTornEntryWriteVsMmu {
    final Rig r = new Rig(false);
    final long newPte;

    public BrokenTornEntryWriteVsMmu() {
        r.table.map(Rig.A, Rig.K4, Rig.P, Prot.R, r.cache);
        newPte = r.leaf(Rig.Q, Prot.R, 3);
    }

    @Actor
    public void tornWrite(II_Result res) {
        Status s = r.table.walk(Rig.A, Rig.K4, (ctx, visit) -> {
            long old = ctx.old();
            if (!Pte.isValid(old)) return Status.RACED;
            ctx.trySet((old & 0xFFFF_FFFF_0000_0000L) | (newPte & 0xFFFF_FFFFL)); // BROKEN: half a descriptor
            ctx.trySet(newPte);
            return Status.OK;
        }, WalkFlags.LEAF | Rig.FAULT, WalkPolicy.FAULT);
        res.r2 = s == Status.OK ? 1 : 0;
    }

    @Actor
    public void mmu(II_Result res) {
        res.r1 = r.translate(Rig.A + 0x123, Rig.P, Rig.Q, 3);
    }
}
