package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import org.junit.jupiter.api.Test;

class Stage2SmokeTest {
    @Test
    void mapTranslateUnmapDestroy() {
        PhysicalMemory mem = new PhysicalMemory(0x1_0000_0000L, 64L << 20, Granule.G4K, true);
        TlbSystem tlbs = new TlbSystem();
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 1, 0);
        MemCache mc = new MemCache(mem);
        mc.topUp(16);
        t.map(0x4000_0000L, 1L << 30, 0x8000_0000L, Prot.RW, mc);
        assertThat(t.getLeaf(0x4000_0000L).level()).isEqualTo(1);
        mc.topUp(16);
        t.map(0x8000_1000L, 0x3000, 0x9000_0000L, Prot.R, mc);
        t.checkRefcounts();
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        tlbs.register(tlb);
        Mmu mmu = new Mmu(t.geometry(), mem, tlb, t.rootPa(), 1, false, false);
        assertThat(mmu.translate(0x4000_1234L, Access.WRITE)).isEqualTo(0x8000_1234L);
        assertThat(mmu.translate(0x8000_2010L, Access.READ)).isEqualTo(0x9000_1010L);
        long f = mmu.translate(0x8000_2010L, Access.WRITE);
        assertThat(Translation.faultType(f)).isEqualTo(FaultType.PERMISSION);
        assertThat(Translation.faultLevel(f)).isEqualTo(3);
        f = mmu.translate(0x8000_4000L, Access.READ);
        assertThat(Translation.faultType(f)).isEqualTo(FaultType.TRANSLATION);
        assertThat(Translation.faultLevel(f)).isEqualTo(3);
        t.unmap(0x4020_0000L, 0x20_0000L);
        t.checkRefcounts();
        f = mmu.translate(0x4000_1234L, Access.READ);
        assertThat(Translation.isFault(f)).isTrue();
        t.unmap(0, 1L << 40);
        t.checkRefcounts();
        t.destroy();
        mc.release();
        assertThat(mem.framesInUse()).isZero();
    }
}
