package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The conflict scan of a block fill covers exactly the block's span: a cached page at its first
 * or last address conflicts, the pages just outside it do not.
 */
class TlbConflictScanBoundaryTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long PAGE = 0x4000_0000_0743L, BLOCK = 0x4000_0000_0741L;

    @Test
    void theScanCoversTheBlockSpanAndNothingAroundIt() {
        // 1024 page slots: the pages on either side of each edge of the 2M span sit in slots of their own.
        Tlb tlb = new Tlb("cpu0", Granule.G4K, 1024, 64);
        tlb.setScanConflicts(true);
        List<String> seen = new ArrayList<>();
        tlb.setConflictListener((t, vmid, addr, level, pte, otherLevel, otherBase, otherPte) ->
                seen.add("L" + otherLevel + "@" + Long.toHexString(otherBase)));
        long base = 4 * M2;
        tlb.fill(1, base - K4, 3, PAGE, tlb.generation());       // just below the block
        tlb.fill(1, base, 3, PAGE, tlb.generation());            // its first page
        tlb.fill(1, base + M2 - K4, 3, PAGE, tlb.generation());  // its last page
        tlb.fill(1, base + M2, 3, PAGE, tlb.generation());       // just above
        tlb.fill(1, base + 7 * K4 + 0x10, 2, BLOCK, tlb.generation()); // filled through another address
        assertThat(seen).containsExactlyInAnyOrder("L3@800000", "L3@9ff000");
        assertThat(tlb.conflicts()).isEqualTo(2);
    }
}
