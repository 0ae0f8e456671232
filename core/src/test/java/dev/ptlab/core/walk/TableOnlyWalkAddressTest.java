package dev.ptlab.core.walk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.table.Fixture;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A walk that visits tables only steps over leaves and holes without visiting them; each table
 * it then reaches is still reported at its own address, however unaligned the walk's start.
 */
class TableOnlyWalkAddressTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;

    @Test
    void tablesAfterSkippedLeavesAndHolesAreVisitedAtTheirOwnAddresses() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        long base = G1;
        f.map(base, M2, 0x8000_0000L, Prot.R);                    // L2 entry 0: a block (skipped)
        // L2 entry 1: a hole (skipped); entry 2: a table with pages 3 and 9
        f.map(base + 2 * M2 + 3 * K4, K4, 0x9000_0000L, Prot.R);
        f.map(base + 2 * M2 + 9 * K4, K4, 0x9100_0000L, Prot.R);
        f.map(base + 5 * M2, K4, 0x9200_0000L, Prot.R);           // entry 5: another table

        List<String> seen = new ArrayList<>();
        Status s = f.table.walk(base + 5 * K4 + 0x10, 6 * M2, (ctx, v) -> {
            seen.add(v + " L" + ctx.level() + " @0x" + Long.toHexString(ctx.addr()) + " base 0x" + Long.toHexString(ctx.entryBase()));
            return Status.OK;
        }, WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        assertThat(s).isEqualTo(Status.OK);
        String l1 = "0x" + Long.toHexString(base);
        assertThat(seen).containsExactly(
                "TABLE_PRE L1 @0x40005000 base " + l1,
                "TABLE_PRE L2 @0x40400000 base 0x40400000",
                "TABLE_POST L2 @0x40400000 base 0x40400000",
                "TABLE_PRE L2 @0x40a00000 base 0x40a00000",
                "TABLE_POST L2 @0x40a00000 base 0x40a00000",
                "TABLE_POST L1 @0x40005000 base " + l1);
        f.table.checkRefcounts();
    }
}
