package dev.ptlab.core.walk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.InvariantViolation;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.mem.FrameAccessException;
import dev.ptlab.core.table.Fixture;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Checking mode as a visitor meets it: a compare-and-swap store in a shared walk is held to
 * break-before-make like any other store, and an entry is never handed to a visitor after its
 * table frame was freed, not even when the visitor asked for the entry to be visited again.
 */
class WalkerCheckingModeTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long A = G1 + 4 * M2, P = 0x8000_0000L;

    @Test
    void aSharedWalkCasReplacingAValidLeafByAnotherOutputAddressIsABreakBeforeMakeViolation() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.RW);
        long before = f.table.getLeaf(A).pte();
        long moved = before + K4; // same attributes, another page: needs a break first
        assertThatThrownBy(() -> f.table.walk(A, K4, (ctx, v) -> {
            ctx.trySet(moved);
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE))
                .isInstanceOf(InvariantViolation.class).hasMessageContaining("break-before-make");
        assertThat(f.table.getLeaf(A).pte()).as("nothing stored").isEqualTo(before);

        // A BBM-exempt CAS (write permission removed) is fine in the same walk.
        long readOnly = before & ~dev.ptlab.core.arch.Stage2Descriptor.S2AP_W;
        f.table.walk(A, K4, (ctx, v) -> {
            assertThat(ctx.trySet(readOnly)).isTrue();
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE);
        assertThat(f.table.getLeaf(A).pte()).isEqualTo(readOnly);
    }

    @Test
    void aRetriedEntryWhoseTableWasFreedIsNotVisitedAgain() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(A, K4, P, Prot.RW);
        List<Long> seen = new ArrayList<>();
        long[] freed = {0};
        assertThatThrownBy(() -> f.table.walk(A, K4, (ctx, v) -> {
            seen.add(ctx.old());
            if (freed[0] == 0) {
                freed[0] = ctx.tablePa();
                f.mem.free(ctx.tablePa()); // the level-3 table goes while the walk is on it
            }
            return Status.RACED;
        }, WalkFlags.LEAF, WalkPolicy.of(WalkPolicy.Action.RETRY, WalkPolicy.Action.RETRY, 3)))
                .isInstanceOf(FrameAccessException.class)
                .hasMessageContaining("0x" + Long.toHexString(freed[0])).hasMessageContaining("freed");
        assertThat(seen).as("the retry read nothing from the freed frame").hasSize(1);
    }
}
