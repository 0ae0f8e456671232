package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import org.junit.jupiter.api.Test;

/**
 * The MMU follows the architecture, not KVM's choice of block sizes: 52-bit formats add a block
 * level (4K L0 and 16K L1 with LPA2, 64K L1 with FEAT_LPA) that KVM never writes but hardware
 * walks; without them a block there is a translation fault.
 */
class HardwareBlockLevelsTest {

    @Test
    void geometryKnowsTheExtraBlockLevels() {
        assertThat(Geometry.stage2(Granule.G4K, 48).hardwareLeafAllowed(0)).isFalse();
        assertThat(Geometry.stage2(Granule.G4K, 52, OutputAddressFormat.LPA2).hardwareLeafAllowed(0)).isTrue();
        assertThat(Geometry.stage2(Granule.G16K, 48).hardwareLeafAllowed(1)).isFalse();
        assertThat(Geometry.stage2(Granule.G16K, 52, OutputAddressFormat.LPA2).hardwareLeafAllowed(1)).isTrue();
        assertThat(Geometry.stage2(Granule.G16K, 52, OutputAddressFormat.LPA2).hardwareLeafAllowed(0)).isFalse();
        assertThat(Geometry.stage2(Granule.G64K, 48).hardwareLeafAllowed(1)).isFalse();
        assertThat(Geometry.stage2(Granule.G64K, 52, OutputAddressFormat.PA52_64K).hardwareLeafAllowed(1)).isTrue();
        for (Granule g : Granule.values()) {
            Geometry geo = Geometry.stage2(g, 40);
            for (int level = Granule.FIRST_LEVEL; level <= Granule.LAST_LEVEL; level++) {
                assertThat(geo.hardwareLeafAllowed(level)).as("%s L%d", g, level).isEqualTo(geo.leafAllowed(level));
            }
        }
    }

    @Test
    void level0BlockTranslatesWithLpa2() {
        Geometry geo = Geometry.stage2(Granule.G4K, 52, OutputAddressFormat.LPA2);
        PhysicalMemory mem = new PhysicalMemory(0x1_0000_0000L, 16L << 20, Granule.G4K, true);
        TlbSystem tlbs = new TlbSystem();
        Stage2PageTable t = new Stage2PageTable(geo, mem, tlbs, 1, 0);
        long span = 1L << 39;
        long block = Stage2Descriptor.leaf(geo, 3 * span, Stage2Descriptor.attributes(Prot.RW, false, geo.oaFormat()), 0);
        MmuTest.setEntry(t, span, 0, block);
        Mmu mmu = new Mmu(geo, mem, new Tlb("cpu0", Granule.G4K), t.rootPa(), 1, false, false);
        assertThat(mmu.translate(span + 0x1234_5678L, Access.WRITE)).isEqualTo(3 * span + 0x1234_5678L);
        assertThat(mmu.lastLevel()).isZero();
        MmuTest.setEntry(t, span, 0, 0);
        t.destroy();
        assertThat(mem.framesInUse()).isZero();
    }
}
