package dev.ptlab.core;

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
import dev.ptlab.core.table.Stage2PageTable;
import org.junit.jupiter.api.Test;

/** The README's "Library quick start", line for line (DocsSnippetsTest compares the two), with its comments turned into assertions. */
class ReadmeExampleTest {
    @Test
    void quickStart() {
        PhysicalMemory mem = new PhysicalMemory(0x10_0000_0000L, 64L << 20, Granule.G4K, true);
        TlbSystem tlbs = new TlbSystem();
        Stage2PageTable s2 = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 1, 0);
        MemCache cache = new MemCache(mem);
        cache.topUp(8);
        s2.map(0x4000_0000L, 1L << 30, 0x8000_0000L, Prot.RW, cache);
        s2.map(0x8000_0000L, 0x4000, 0xC000_1000L, Prot.parse("rx"), cache);

        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        tlbs.register(tlb);
        Mmu mmu = new Mmu(s2.geometry(), mem, tlb, s2.rootPa(), 1, false, false);
        Translation ok = mmu.translateDetailed(0x4000_1234L, Access.WRITE);
        assertThat(ok.toString()).isEqualTo("0x40001234 write -> 0x80001234 (L1 NORMAL_WB rw-)");
        Translation denied = mmu.translateDetailed(0x8000_2000L, Access.WRITE);
        assertThat(denied.fault()).isEqualTo(FaultType.PERMISSION);
        assertThat(denied.level()).isEqualTo(3);

        s2.wrprotect(0x4000_0000L, 1L << 30);
        tlbs.flushVmidRange(1, 0x4000_0000L, 1L << 30);
        assertThat(mmu.translateDetailed(0x4000_1234L, Access.WRITE).fault()).isEqualTo(FaultType.PERMISSION);
        s2.checkRefcounts();
        s2.destroy();
        cache.release();
        assertThat(mem.framesInUse()).isZero();
    }
}
