package dev.ptlab.core.walk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.mem.Reclaimer;
import org.junit.jupiter.api.Test;

/** A walk description: what it holds, and the one place the default policy is chosen. */
class WalkTest {
    @Test
    void holdsRangeFlagsAndReclaimer() {
        Reclaimer r = new Reclaimer();
        Walk w = Walk.range(0x4000, 0x2000).flags(WalkFlags.LEAF | WalkFlags.SHARED).reclaimer(r);
        assertThat(w.addr()).isEqualTo(0x4000);
        assertThat(w.size()).isEqualTo(0x2000);
        assertThat(w.flags()).isEqualTo(WalkFlags.LEAF | WalkFlags.SHARED);
        assertThat(w.reclaimer()).isSameAs(r);
    }

    @Test
    void thePolicyDefaultsToTheKernelsChoiceForTheFlagsUnlessSet() {
        assertThat(Walk.range(0, 1).policy()).isSameAs(WalkPolicy.RANGE);
        assertThat(Walk.range(0, 1).flags(WalkFlags.LEAF | WalkFlags.HANDLE_FAULT).policy()).isSameAs(WalkPolicy.FAULT);
        Walk w = Walk.range(0, 1).flags(WalkFlags.HANDLE_FAULT).policy(WalkPolicy.STOP_AT_HOLE);
        assertThat(w.policy()).isSameAs(WalkPolicy.STOP_AT_HOLE);
        assertThat(w.policy(null).policy()).as("null restores the default").isSameAs(WalkPolicy.FAULT);
    }
}
