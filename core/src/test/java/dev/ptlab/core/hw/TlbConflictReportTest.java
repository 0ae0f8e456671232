package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What a TLB conflict reports: the cached entry's level, first address and descriptor, for a
 * page under a cached block and a block over a cached page; and refilling the entry already
 * cached for an address is no conflict.
 */
class TlbConflictReportTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long PAGE = 0x4000_0000_0743L, BLOCK = 0x4000_0000_0741L;

    private static List<String> listen(Tlb tlb) {
        List<String> seen = new ArrayList<>();
        tlb.setConflictListener((t, vmid, addr, level, pte, otherLevel, otherBase, otherPte) ->
                seen.add("L" + level + " vs L" + otherLevel + "@" + Long.toHexString(otherBase) + " 0x" + Long.toHexString(otherPte)));
        return seen;
    }

    @Test
    void aBlockFilledOverACachedPageReportsThePage() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        List<String> seen = listen(tlb);
        long addr = 3 * M2 + 7 * K4 + 0x123;
        tlb.fill(1, addr, 3, PAGE, tlb.generation());
        tlb.fill(1, addr, 2, BLOCK, tlb.generation());
        assertThat(seen).containsExactly("L2 vs L3@607000 0x" + Long.toHexString(PAGE));
    }

    @Test
    void aPageFilledUnderACachedBlockReportsTheBlock() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        List<String> seen = listen(tlb);
        long addr = 3 * M2 + 7 * K4 + 0x123;
        tlb.fill(1, addr, 2, BLOCK, tlb.generation());
        tlb.fill(1, addr, 3, PAGE, tlb.generation());
        assertThat(seen).containsExactly("L3 vs L2@600000 0x" + Long.toHexString(BLOCK));
    }

    @Test
    void refillingTheCachedEntryOfAnAddressIsNoConflict() {
        for (boolean scan : new boolean[] {false, true}) {
            Tlb tlb = new Tlb("cpu0", Granule.G4K);
            tlb.setScanConflicts(scan);
            List<String> seen = listen(tlb);
            tlb.fill(1, 3 * M2, 2, BLOCK, tlb.generation());
            tlb.fill(1, 3 * M2 + K4, 2, BLOCK, tlb.generation()); // the same block, through another address
            tlb.fill(1, 5 * K4, 3, PAGE, tlb.generation());
            tlb.fill(1, 5 * K4, 3, PAGE, tlb.generation());
            assertThat(seen).as("scan %s", scan).isEmpty();
            assertThat(tlb.conflicts()).isZero();
        }
    }
}
