package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.table.Fixture;
import org.junit.jupiter.api.Test;

/** The MMU's own accounting: hardware access-flag updates are counted once per leaf they set. */
class MmuCountersTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;

    @Test
    void hardwareAfUpdatesCountEachLeafOnce() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        Mmu ha = new Mmu(f.table.geometry(), f.mem, f.tlb, f.table.rootPa(), Fixture.VMID, false, true);
        assertThat(ha.geometry()).isEqualTo(f.table.geometry());
        f.map(0, K4, 0x8000_0000L, Prot.R);
        f.map(M2, M2, 0x8020_0000L, Prot.RW);
        MmuTest.clearAf(f.table, 0, 2 * M2, Stage2Descriptor.AF);
        assertThat(ha.hardwareAfUpdates()).isZero();
        ha.translate(M2 + 0x10, Access.WRITE); // sets the block's AF: 1
        ha.translate(M2 + 0x20, Access.READ);  // TLB hit: no descriptor write
        ha.translate(0x10, Access.READ);       // sets the page's AF: 2
        ha.translate(0x10, Access.READ);       // hit
        assertThat(ha.hardwareAfUpdates()).isEqualTo(2);
        f.destroyAndCheck();
    }
}
