package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Fixture;
import dev.ptlab.core.table.Stage2PageTable;
import org.junit.jupiter.api.Test;

/**
 * The address-size fault at its boundary: with PS selecting {@code paBits}, an output address of
 * exactly {@code 2^paBits} is already out of range (the last valid byte is {@code 2^paBits - 1}),
 * for a leaf and for a next-level table alike.
 */
class MmuAddressSizeTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long G4 = 1L << 32;

    static String t(Mmu mmu, long addr) {
        return Fixture.describe(mmu.translate(addr, Access.READ));
    }

    static String fault(FaultType type, int level) {
        return Fixture.describe(Translation.encodeFault(type, level));
    }

    @Test
    void aLeafOutputAddressOfExactlyTwoToThePaBitsIsAnAddressSizeFault() {
        PhysicalMemory mem = new PhysicalMemory(G1, 16L << 20, Granule.G4K, true); // tables below 4G
        TlbSystem tlbs = new TlbSystem();
        Stage2PageTable table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 1, 0);
        MemCache cache = new MemCache(mem);
        cache.topUp(8);
        table.map(0, K4, G4 - K4, Prot.R, cache);   // the last page below 2^32
        table.map(K4, K4, G4, Prot.R, cache);       // the first page at 2^32
        table.map(M2, M2, G4 - M2, Prot.R, cache);  // the last 2M block below 2^32
        table.map(2 * M2, M2, G4, Prot.R, cache);   // the 2M block at 2^32
        Mmu mmu = new Mmu(table.geometry(), mem, new Tlb("cpu0", Granule.G4K), table.rootPa(), 1, false, false, 32);

        assertThat(t(mmu, 0xFFF)).isEqualTo(Fixture.describe(G4 - 1));
        assertThat(t(mmu, K4)).isEqualTo(fault(FaultType.ADDRESS_SIZE, 3));
        assertThat(t(mmu, M2 + M2 - 1)).isEqualTo(Fixture.describe(G4 - 1));
        assertThat(t(mmu, 2 * M2)).isEqualTo(fault(FaultType.ADDRESS_SIZE, 2));
        assertThat(mmu.faults(FaultType.ADDRESS_SIZE)).isEqualTo(2);

        // With 36 bits the same descriptors translate.
        Mmu wide = new Mmu(table.geometry(), mem, new Tlb("cpu1", Granule.G4K), table.rootPa(), 1, false, false, 36);
        assertThat(t(wide, K4)).isEqualTo(Fixture.describe(G4));
        assertThat(t(wide, 2 * M2 + 5)).isEqualTo(Fixture.describe(G4 + 5));
    }

    @Test
    void aNextLevelTableAtExactlyTwoToThePaBitsIsAnAddressSizeFault() {
        // Table memory ending its first two frames at 2^32: the concatenated root (2 frames, 8K
        // aligned) fills [2^32 - 8K, 2^32), so the next frame handed out, the level-2 table, is
        // exactly at 2^32.
        PhysicalMemory mem = new PhysicalMemory(G4 - 2 * K4, 16L << 20, Granule.G4K, true);
        TlbSystem tlbs = new TlbSystem();
        Stage2PageTable table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 1, 0);
        assertThat(table.rootPa()).isEqualTo(G4 - 2 * K4);
        MemCache cache = new MemCache(mem, 1); // exactly one frame: the boundary frame
        cache.topUp(1);
        table.map(0, M2, 0x8000_0000L, Prot.R, cache); // a block: only the level-2 table is needed
        assertThat(cache.size()).isZero();
        Mmu mmu = new Mmu(table.geometry(), mem, new Tlb("cpu0", Granule.G4K), table.rootPa(), 1, false, false, 32);
        assertThat(t(mmu, 0x10)).as("the level-1 entry points at 2^32").isEqualTo(fault(FaultType.ADDRESS_SIZE, 1));
        Mmu wide = new Mmu(table.geometry(), mem, new Tlb("cpu1", Granule.G4K), table.rootPa(), 1, false, false, 36);
        assertThat(t(wide, 0x10)).isEqualTo(Fixture.describe(0x8000_0010L));
    }

    @Test
    void aRootAtOrAboveTwoToThePaBitsIsAnAddressSizeFaultAtLevelZero() {
        // The root at exactly 2^32; the block it maps would translate with a wider PS. The base
        // register is checked before any descriptor is read (QEMU get_phys_addr_lpae: level 0),
        // whatever the start level: here 1, and a block at the root level faults all the same.
        PhysicalMemory mem = new PhysicalMemory(G4, 16L << 20, Granule.G4K, true);
        TlbSystem tlbs = new TlbSystem();
        Stage2PageTable table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 1, 0);
        assertThat(table.rootPa()).isEqualTo(G4);
        MemCache cache = new MemCache(mem);
        cache.topUp(4);
        table.map(G1, G1, 0x8000_0000L, Prot.R, cache); // a level-1 block in the root itself
        Mmu mmu = new Mmu(table.geometry(), mem, new Tlb("cpu0", Granule.G4K), table.rootPa(), 1, false, false, 32);
        assertThat(t(mmu, G1 + 0x10)).isEqualTo(fault(FaultType.ADDRESS_SIZE, 0));
        assertThat(t(mmu, 0x10)).as("even where the root entry is invalid").isEqualTo(fault(FaultType.ADDRESS_SIZE, 0));
        Mmu wide = new Mmu(table.geometry(), mem, new Tlb("cpu1", Granule.G4K), table.rootPa(), 1, false, false, 36);
        assertThat(t(wide, G1 + 0x10)).isEqualTo(Fixture.describe(0x8000_0010L));
        assertThat(t(wide, 0x10)).isEqualTo(fault(FaultType.TRANSLATION, 1));
    }
}
