package dev.ptlab.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import org.junit.jupiter.api.Test;

/**
 * Misuse of the hardware-model and memory API (issue 16): each is refused with an error that names
 * the argument, before it can corrupt a table or make the model answer wrongly.
 */
class HostileArgumentsTest {
    private static final long BASE = 0x10_0000_0000L;

    private static PhysicalMemory mem(Granule g, long size) {
        return new PhysicalMemory(BASE, size, g, true);
    }

    private static PageTableException refusal(Runnable r) {
        PageTableException e = catchThrowableOfType(r::run, PageTableException.class);
        assertThat(e).as("expected a PageTableException").isNotNull();
        return e;
    }

    @Test
    void memCacheGiveBackAcceptsOnlyTheFrameItHandedOutLast() {
        PhysicalMemory m = mem(Granule.G4K, 1L << 20);
        Stage2PageTable s2 = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), m, new TlbSystem(), 1, 0);
        MemCache c = new MemCache(m, 4);
        c.topUp(4);
        long inUse = m.framesInUse();

        // The live root, a never-allocated PA, a PA of another memory: all refused, nothing changes.
        assertThat(refusal(() -> c.giveBack(s2.rootPa())).argument()).isEqualTo("pa");
        assertThat(refusal(() -> c.giveBack(BASE + (200L << 12))).argument()).isEqualTo("pa");
        assertThat(refusal(() -> c.giveBack(0x1000)).argument()).isEqualTo("pa");
        assertThat(c.size()).isEqualTo(4);

        long a = c.allocate();
        long b = c.allocate();
        // Out of order: a is not the last one out.
        assertThat(refusal(() -> c.giveBack(a)).argument()).isEqualTo("pa");
        c.giveBack(b);
        c.giveBack(a);
        assertThat(c.size()).isEqualTo(4);
        // Twice: the second is refused (it would be cached twice and freed twice).
        assertThat(refusal(() -> c.giveBack(a)).argument()).isEqualTo("pa");
        c.release();
        assertThat(m.framesInUse()).isEqualTo(inUse - 4);
        assertThat(m.isLive(s2.rootPa())).isTrue();
        s2.destroy();
        assertThat(m.framesInUse()).isZero();
    }

    @Test
    void hugeTopUpEndsInEnomemNotOutOfMemoryError() {
        PhysicalMemory m = mem(Granule.G4K, 64L << 12);
        MemCache c = new MemCache(m);
        PageTableException e = refusal(() -> c.topUp(Integer.MAX_VALUE));
        assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
        // It kept what memory had, and gives it all back.
        assertThat(c.size()).isEqualTo(64);
        c.release();
        assertThat(m.framesInUse()).isZero();
    }

    @Test
    void memoryPast2To63IsRefused() {
        PageTableException e = refusal(() -> new PhysicalMemory(Long.MAX_VALUE - (1L << 20) + 1 - 4095, 1L << 21,
                Granule.G4K, false));
        assertThat(e.argument()).isIn("size", "base");
        assertThat(refusal(() -> new PhysicalMemory(0x7FFF_FFFF_FFF0_0000L, 1L << 21, Granule.G4K, false)).argument())
                .isEqualTo("size");
    }

    @Test
    void tableMemoryAboveTheOutputAddressSpaceIsRefused() {
        // 48-bit format (4K granule, no LPA2): memory at 2^48 cannot be linked by a descriptor.
        PhysicalMemory high = new PhysicalMemory(1L << 48, 1L << 20, Granule.G4K, true);
        PageTableException e = refusal(() -> new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), high, new TlbSystem(), 1, 0));
        assertThat(e.argument()).isEqualTo("memory");
        assertThat(high.framesInUse()).isZero();
        // Straddling the limit is refused too; just below it is fine.
        PhysicalMemory straddle = new PhysicalMemory((1L << 48) - (1L << 20), 1L << 21, Granule.G4K, true);
        assertThat(refusal(() -> new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), straddle, new TlbSystem(), 1, 0))
                .argument()).isEqualTo("memory");
        PhysicalMemory top = new PhysicalMemory((1L << 48) - (1L << 20), 1L << 20, Granule.G4K, true);
        Stage2PageTable ok = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), top, new TlbSystem(), 1, 0);
        assertThat(Registers.vttbr(ok.geometry(), ok.rootPa(), 1) >>> 48).isEqualTo(1);
        ok.destroy();
    }

    @Test
    void registersRefuseARootOutsideTheFormat() {
        Geometry g = Geometry.stage2(Granule.G4K, 40);
        // Bit 48 would have landed in VTTBR's VMID field (or been masked away).
        assertThat(refusal(() -> Registers.vttbr(g, 1L << 48, 1)).argument()).isEqualTo("root");
        assertThat(refusal(() -> Registers.vttbr(g, -4096, 1)).argument()).isEqualTo("root");
        assertThat(Registers.vttbr(g, (1L << 48) - 4096, 7)).isEqualTo(7L << 48 | ((1L << 48) - 4096));
    }

    @Test
    void mmuRefusesATlbOrMemoryOfAnotherGranuleAndABadVmid() {
        PhysicalMemory m = mem(Granule.G4K, 1L << 20);
        Stage2PageTable s2 = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), m, new TlbSystem(), 1, 0);
        Geometry g = s2.geometry();
        assertThat(refusal(() -> new Mmu(g, m, new Tlb("cpu0", Granule.G64K), s2.rootPa(), 1, false, false)).argument())
                .isEqualTo("tlb");
        PhysicalMemory m16 = new PhysicalMemory(BASE, 1L << 20, Granule.G16K, true);
        assertThat(refusal(() -> new Mmu(g, m16, new Tlb("cpu0", Granule.G4K), s2.rootPa(), 1, false, false)).argument())
                .isEqualTo("memory");
        for (int vmid : new int[] {-1, 65536, 70000, Integer.MIN_VALUE}) {
            assertThat(refusal(() -> new Mmu(g, m, new Tlb("cpu0", Granule.G4K), s2.rootPa(), vmid, false, false)).argument())
                    .isEqualTo("vmid");
        }
        new Mmu(g, m, new Tlb("cpu0", Granule.G4K), s2.rootPa(), 65535, false, false);
        s2.destroy();
    }

    @Test
    void tlbAndTlbSystemRefuseNullsAndBadLevels() {
        assertThat(refusal(() -> new Tlb("cpu0", null)).argument()).isEqualTo("granule");
        TlbSystem tlbs = new TlbSystem();
        assertThat(refusal(() -> tlbs.register(null)).argument()).isEqualTo("tlb");
        tlbs.flushVmid(1); // still usable: nothing half-registered
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        for (int level : new int[] {4, 7, Integer.MAX_VALUE}) {
            assertThat(refusal(() -> tlb.fill(1, 0x4000_0000L, level, 0x4000_0000L | 0x7FF, tlb.generation())).argument())
                    .isEqualTo("level");
        }
        assertThat(tlb.fills()).isZero();
    }

    @Test
    void protParseOfNullNamesTheArgument() {
        assertThatThrownBy(() -> Prot.parse(null)).isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("prot: null");
    }
}
