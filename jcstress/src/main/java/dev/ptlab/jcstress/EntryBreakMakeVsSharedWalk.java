package dev.ptlab.jcstress;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE_INTERESTING;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.core.walk.Status;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Break-before-make of one leaf, seen by a software walker: the writer as in
 * {@link EntryBreakMakeVsMmu}, the reader a shared walk ({@code getLeaf}: read lock, reclaimer
 * section, acquire loads) reading the entry. r1: the entry it read (1 old, 2 LOCKED, 3 new, 0
 * other), r2: 1 if the map was OK.
 */
@JCStressTest
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "old leaf")
@Outcome(id = "2, 1", expect = ACCEPTABLE_INTERESTING, desc = "LOCKED: the writer owns the entry")
@Outcome(id = "3, 1", expect = ACCEPTABLE, desc = "new leaf")
@Outcome(expect = FORBIDDEN, desc = "a torn or intermediate descriptor, or the map did not succeed")
@State
public class EntryBreakMakeVsSharedWalk {
    final Rig r = new Rig(true);
    final long oldPte, newPte;

    public EntryBreakMakeVsSharedWalk() {
        r.table.map(Rig.A, Rig.K4, Rig.P, Prot.R, r.cache);
        oldPte = r.table.getLeaf(Rig.A).pte();
        newPte = r.leaf(Rig.Q, Prot.R, 3);
    }

    @Actor
    public void fault(II_Result res) {
        res.r2 = r.table.map(Rig.A, Rig.K4, Rig.Q, Prot.R, null, Rig.FAULT) == Status.OK ? 1 : 0;
    }

    @Actor
    public void walk(II_Result res) {
        Leaf l = r.table.getLeaf(Rig.A);
        long pte = l.pte();
        res.r1 = l.level() != 3 ? 0 : pte == oldPte ? 1 : pte == Pte.LOCKED ? 2 : pte == newPte ? 3 : 0;
    }
}
