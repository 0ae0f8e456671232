package dev.ptlab.jcstress;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE_INTERESTING;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

import dev.ptlab.core.arch.Prot;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * Publish after init. The writer splits a 2M block: it fills a new level-3 table with 512 page
 * entries (plain stores, off the table), breaks the block (LOCKED, TLBI) and publishes the table
 * descriptor with a store-release. The reader, an MMU translating page 300 with acquire loads,
 * must find either the block, the LOCKED entry, or the new table fully initialised: page 300
 * mapped to the same PA. An empty or stale entry in the new table is forbidden. r1: 1 via the
 * block (level 2), 2 the LOCKED level-2 entry, 3 via the new page (level 3), 0 anything else;
 * r2: 1 once the writer is done.
 */
@JCStressTest
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "the old block")
@Outcome(id = "2, 1", expect = ACCEPTABLE_INTERESTING, desc = "LOCKED level-2 entry: translation fault at level 2")
@Outcome(id = "3, 1", expect = ACCEPTABLE, desc = "the new table, fully initialised")
@Outcome(expect = FORBIDDEN, desc = "an uninitialised entry of the new table, a wrong PA, or the split failed")
@State
public class TablePublishVsMmu {
    static final long PAGE = Rig.A + 300 * Rig.K4 + 0x40;
    final Rig r = new Rig(true);

    public TablePublishVsMmu() {
        r.table.map(Rig.A, Rig.M2, Rig.P, Prot.RW, r.cache);
    }

    @Actor
    public void split(II_Result res) {
        r.table.split(Rig.A, Rig.M2, r.cache);
        res.r2 = 1;
    }

    @Actor
    public void mmu(II_Result res) {
        long pa = Rig.P + 300 * Rig.K4; // what page 300 maps to, via the block or the new page
        int seen = r.translate(PAGE, pa, pa, 2);
        if (seen == 1 || seen == 3) seen = r.mmu.lastLevel() == 2 ? 1 : r.mmu.lastLevel() == 3 ? 3 : 0;
        res.r1 = seen;
    }
}
