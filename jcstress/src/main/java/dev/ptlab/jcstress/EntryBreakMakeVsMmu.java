package dev.ptlab.jcstress;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE_INTERESTING;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.walk.Status;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Break-before-make of one leaf, seen by a hardware walker. The writer is a vCPU fault mapping a
 * page that is mapped to P to Q instead (shared map: CAS P -> LOCKED, TLBI, CAS Q in with a
 * release store); the reader is another vCPU's MMU translating the page (acquire loads, no lock).
 * r1: what the MMU saw, r2: 1 if the map was OK.
 */
@JCStressTest
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "old leaf: the walk finished before the break")
@Outcome(id = "2, 1", expect = ACCEPTABLE_INTERESTING, desc = "LOCKED: a translation fault at level 3, the vCPU re-faults")
@Outcome(id = "3, 1", expect = ACCEPTABLE, desc = "new leaf")
@Outcome(expect = FORBIDDEN, desc = "a torn or intermediate descriptor, or the map did not succeed")
@State
public class EntryBreakMakeVsMmu {
    final Rig r = new Rig(true);

    public EntryBreakMakeVsMmu() {
        r.table.map(Rig.A, Rig.K4, Rig.P, Prot.R, r.cache);
    }

    @Actor
    public void fault(II_Result res) {
        res.r2 = r.table.map(Rig.A, Rig.K4, Rig.Q, Prot.R, null, Rig.FAULT) == Status.OK ? 1 : 0;
    }

    @Actor
    public void mmu(II_Result res) {
        res.r1 = r.translate(Rig.A + 0x123, Rig.P, Rig.Q, 3);
    }
}
