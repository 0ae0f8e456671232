package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.MemAttr;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.Frames;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Fixture;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import org.junit.jupiter.api.Test;

/**
 * The software MMU against the architecture's rules (VMSAv8-64 stage-2 and EL2 stage-1): fault
 * type and level, access flag with and without hardware update, permissions from S2AP/XN and
 * AP/XN, and the TLB in front of it.
 */
class MmuTest {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;

    static String t(Mmu mmu, long addr, Access a) {
        return Fixture.describe(mmu.translate(addr, a));
    }

    static String fault(FaultType type, int level) {
        return Fixture.describe(Translation.encodeFault(type, level));
    }

    static String pa(long pa) {
        return Fixture.describe(pa);
    }

    @Test
    void translationFaultIsReportedAtTheLevelOfTheInvalidEntry() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        assertThat(t(f.mmu, 0x1234, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 1));
        f.map(G1 + 3 * M2 + 5 * K4, K4, 0x8000_0000L, Prot.RW);
        assertThat(t(f.mmu, 2 * G1, Access.READ)).as("other 1G entry: invalid at L1").isEqualTo(fault(FaultType.TRANSLATION, 1));
        assertThat(t(f.mmu, G1 + 7 * M2, Access.READ)).as("other 2M entry: invalid at L2").isEqualTo(fault(FaultType.TRANSLATION, 2));
        assertThat(t(f.mmu, G1 + 3 * M2 + 6 * K4, Access.WRITE)).as("other page: invalid at L3").isEqualTo(fault(FaultType.TRANSLATION, 3));
        assertThat(t(f.mmu, G1 + 3 * M2 + 5 * K4 + 9, Access.READ)).isEqualTo(pa(0x8000_0009L));
        assertThat(f.mmu.faults(FaultType.TRANSLATION)).isEqualTo(4);
        // the second concatenated root
        assertThat(t(f.mmu, (1L << 39) + 5, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 1));
        f.destroyAndCheck();

        Fixture g16 = new Fixture(Granule.G16K, 40, 0);
        assertThat(t(g16.mmu, 0x4000, Access.READ)).as("16K/40: start level 2").isEqualTo(fault(FaultType.TRANSLATION, 2));
        g16.destroyAndCheck();
    }

    @Test
    void addressBeyondTheInputSizeIsALevel0TranslationFault() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(0, M2, 0, Prot.RW);
        assertThat(t(f.mmu, 1L << 40, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 0));
        assertThat(t(f.mmu, (1L << 40) + 0x10, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 0));
        assertThat(t(f.mmu, -1L, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 0));
        // not aliased onto the low mapping through the root index
        assertThat(t(f.mmu, (1L << 41) + 0x10, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 0));
        assertThat(f.mmu.walks()).as("no table walk for out-of-range input").isZero();
        assertThat(t(f.mmu, 0x10, Access.READ)).isEqualTo(pa(0x10));
        f.destroyAndCheck();
    }

    /** Clears AF of every valid leaf in a range (a software "mkold"), without TLB maintenance. */
    static void clearAf(PageTable t, long addr, long size, long af) {
        t.walk(addr, size, (ctx, v) -> {
            if ((ctx.old() & 1) != 0) ctx.trySet(ctx.old() & ~af);
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
    }

    @Test
    void accessFlagFaultWithoutHardwareUpdate() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(0, K4, 0x8000_0000L, Prot.R);
        f.map(M2, M2, 0x8020_0000L, Prot.RW);
        clearAf(f.table, 0, 2 * M2, Stage2Descriptor.AF);
        assertThat(t(f.mmu, 0x10, Access.READ)).isEqualTo(fault(FaultType.ACCESS_FLAG, 3));
        // the access-flag fault comes before the permission check
        assertThat(t(f.mmu, 0x10, Access.WRITE)).isEqualTo(fault(FaultType.ACCESS_FLAG, 3));
        assertThat(t(f.mmu, M2 + 0x10, Access.WRITE)).isEqualTo(fault(FaultType.ACCESS_FLAG, 2));
        assertThat(f.tlb.size()).as("an AF=0 entry is never cached").isZero();
        assertThat(f.table.getLeaf(0).pte() & Stage2Descriptor.AF).isZero();
        assertThat(f.mmu.faults(FaultType.ACCESS_FLAG)).isEqualTo(3);
        f.destroyAndCheck();
    }

    @Test
    void hardwareAccessFlagUpdateSetsAfByCompareAndSwap() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        Mmu ha = new Mmu(f.table.geometry(), f.mem, f.tlb, f.table.rootPa(), Fixture.VMID, false, true);
        f.map(0, K4, 0x8000_0000L, Prot.R);
        f.map(M2, M2, 0x8020_0000L, Prot.RW);
        clearAf(f.table, 0, 2 * M2, Stage2Descriptor.AF);
        long old = f.table.getLeaf(M2).pte();
        assertThat(t(ha, M2 + 0x10, Access.WRITE)).isEqualTo(pa(0x8020_0010L));
        assertThat(f.table.getLeaf(M2).pte()).isEqualTo(old | Stage2Descriptor.AF);
        assertThat(ha.lastPte()).isEqualTo(old | Stage2Descriptor.AF);
        assertThat(t(ha, M2 + 0x20, Access.READ)).isEqualTo(pa(0x8020_0020L));
        assertThat(ha.lastTlbHit()).isTrue();
        // a read of the read-only page sets AF; the later write is then a permission fault
        assertThat(t(ha, 0x10, Access.READ)).isEqualTo(pa(0x8000_0010L));
        assertThat(f.table.getLeaf(0).pte() & Stage2Descriptor.AF).isNotZero();
        assertThat(t(ha, 0x10, Access.WRITE)).isEqualTo(fault(FaultType.PERMISSION, 3));
        assertThat(ha.faults(FaultType.ACCESS_FLAG)).isZero();
        f.destroyAndCheck();
    }

    @Test
    void stage2PermissionsFollowS2apAndXn() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        Prot[] prots = {Prot.NONE, Prot.R, Prot.RW, Prot.RX, Prot.RWX, Prot.of(Prot.R_BIT | Prot.PX_BIT), Prot.of(Prot.R_BIT | Prot.UX_BIT),
                Prot.of(Prot.W_BIT)};
        // expected read / write / privileged-exec permission for each
        boolean[][] allowed = {
                {false, false, false}, {true, false, false}, {true, true, false}, {true, false, true}, {true, true, true},
                {true, false, true}, {true, false, false}, {false, true, false}};
        for (int i = 0; i < prots.length; i++) {
            long ipa = i * M2 + K4, target = 0x8000_0000L + i * K4;
            f.map(ipa, K4, target, prots[i]);
            f.map((i + 16) * M2, M2, 0x8000_0000L + i * M2, prots[i]);
            Access[] acc = {Access.READ, Access.WRITE, Access.EXEC};
            for (int a = 0; a < 3; a++) {
                assertThat(t(f.mmu, ipa + 8, acc[a])).as("%s %s page", prots[i], acc[a])
                        .isEqualTo(allowed[i][a] ? pa(target + 8) : fault(FaultType.PERMISSION, 3));
                assertThat(t(f.mmu, (i + 16) * M2 + 8, acc[a])).as("%s %s block", prots[i], acc[a])
                        .isEqualTo(allowed[i][a] ? pa(0x8000_0000L + i * M2 + 8) : fault(FaultType.PERMISSION, 2));
            }
        }
        // 1G block: the fault names level 1
        f.map(8 * G1, G1, 3 * G1, Prot.R);
        assertThat(t(f.mmu, 8 * G1 + 5, Access.WRITE)).isEqualTo(fault(FaultType.PERMISSION, 1));
        f.destroyAndCheck();
    }

    @Test
    void hypPermissionsFollowApAndXn() {
        PhysicalMemory mem = new PhysicalMemory(Fixture.MEM_BASE, 16L << 20, Granule.G4K, true);
        TlbSystem tlbs = new TlbSystem();
        HypPageTable h = new HypPageTable(Geometry.hyp(Granule.G4K, 48), mem, tlbs);
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        tlbs.register(tlb);
        Mmu mmu = new Mmu(h.geometry(), mem, tlb, h.rootPa(), 0, false, false);
        h.map(0, K4, 0x8000_0000L, Prot.R);
        h.map(K4, K4, 0x8000_1000L, Prot.RW);
        h.map(2 * K4, K4, 0x8000_2000L, Prot.RX);
        h.map(M2, M2, 0x8020_0000L, Prot.DEVICE_RW);
        assertThat(t(mmu, 5, Access.READ)).isEqualTo(pa(0x8000_0005L));
        assertThat(t(mmu, 5, Access.WRITE)).isEqualTo(fault(FaultType.PERMISSION, 3));
        assertThat(t(mmu, 5, Access.EXEC)).isEqualTo(fault(FaultType.PERMISSION, 3));
        assertThat(t(mmu, K4 + 5, Access.WRITE)).isEqualTo(pa(0x8000_1005L));
        assertThat(t(mmu, K4 + 5, Access.EXEC)).isEqualTo(fault(FaultType.PERMISSION, 3));
        assertThat(t(mmu, 2 * K4 + 5, Access.EXEC)).isEqualTo(pa(0x8000_2005L));
        assertThat(t(mmu, 2 * K4 + 5, Access.WRITE)).isEqualTo(fault(FaultType.PERMISSION, 3));
        assertThat(t(mmu, M2 + 5, Access.WRITE)).isEqualTo(pa(0x8020_0005L));
        assertThat(t(mmu, M2 + 5, Access.EXEC)).isEqualTo(fault(FaultType.PERMISSION, 2));
        Translation d = mmu.translateDetailed(M2 + 5, Access.READ);
        assertThat(d.memAttr()).isEqualTo(MemAttr.DEVICE_nGnRE);
        assertThat(d.writable()).isTrue();
        assertThat(d.executable()).isFalse();
        // hyp start level 0: an empty region faults at level 0; beyond 48 bits too
        assertThat(t(mmu, 1L << 40, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 0));
        assertThat(t(mmu, 1L << 48, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 0));
        // AF=0 in a hyp entry
        clearAf(h, 0, K4, HypDescriptor.AF);
        tlbs.flushHypVa(0, 3);
        assertThat(t(mmu, 5, Access.READ)).isEqualTo(fault(FaultType.ACCESS_FLAG, 3));
        assertThat(tlbs.hypVaFlushes()).isEqualTo(1);
        h.checkRefcounts();
        h.destroy();
        assertThat(mem.framesInUse()).isZero();
    }

    @Test
    void tlbServesRepeatTranslationsUntilInvalidated() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.map(0, K4, 0x8000_0000L, Prot.RW);
        f.map(M2, M2, 0x8020_0000L, Prot.RW);
        assertThat(t(f.mmu, 0x10, Access.READ)).isEqualTo(pa(0x8000_0010L));
        assertThat(f.mmu.lastTlbHit()).isFalse();
        assertThat(f.mmu.walks()).isEqualTo(1);
        assertThat(t(f.mmu, 0x20, Access.WRITE)).isEqualTo(pa(0x8000_0020L));
        assertThat(f.mmu.lastTlbHit()).isTrue();
        assertThat(f.mmu.walks()).isEqualTo(1);
        assertThat(t(f.mmu, M2 + K4 * 100, Access.READ)).isEqualTo(pa(0x8020_0000L + K4 * 100));
        assertThat(t(f.mmu, M2 + K4 * 300, Access.READ)).isEqualTo(pa(0x8020_0000L + K4 * 300));
        assertThat(f.mmu.lastTlbHit()).as("one block entry serves the whole block").isTrue();
        assertThat(f.mmu.lastLevel()).isEqualTo(2);
        assertThat(f.mmu.walks()).isEqualTo(2);

        // Change the table behind the TLB's back: the stale entry is still used, as on hardware...
        long[] l3 = FRAMES.frame(f.mem, f.table.geometry().outputAddress(FRAMES.frame(f.mem, 
                f.table.geometry().outputAddress(FRAMES.frame(f.mem, f.table.rootPa())[0]))[0]));
        long saved = l3[0];
        Frames.setRelease(l3, 0, 0L);
        assertThat(t(f.mmu, 0x10, Access.READ)).isEqualTo(pa(0x8000_0010L));
        assertThat(f.mmu.lastTlbHit()).isTrue();
        // ...until the TLBI
        f.tlbs.flushVmidIpa(Fixture.VMID, 0, 3);
        assertThat(t(f.mmu, 0x10, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 3));
        assertThat(f.mmu.lastTlbHit()).isFalse();
        Frames.setRelease(l3, 0, saved); // restore the counted entry so teardown is exact
        f.destroyAndCheck();
    }

    @Test
    void fiftyTwoBitOutputFormatsWithTablesAndTargetsAbove2To50() {
        Object[][] cases = {
                {Granule.G4K, OutputAddressFormat.LPA2, 0, 16},
                {Granule.G16K, OutputAddressFormat.LPA2, 0, 1},
                {Granule.G64K, OutputAddressFormat.PA52_64K, 1, 1},
        };
        for (Object[] c : cases) {
            Granule g = (Granule) c[0];
            OutputAddressFormat fmt = (OutputAddressFormat) c[1];
            Geometry geo = Geometry.stage2(g, 52, fmt);
            assertThat(geo.startLevel()).as("%s %s start level", g, fmt).isEqualTo(c[2]);
            assertThat(geo.rootPages()).as("%s %s roots", g, fmt).isEqualTo(c[3]);
            // table frames themselves above 2^51: the walk must decode table addresses in this format
            PhysicalMemory mem = new PhysicalMemory(0xF_0000_0000_0000L, 64L << 20, g, true);
            TlbSystem tlbs = new TlbSystem();
            Stage2PageTable t = new Stage2PageTable(geo, mem, tlbs, 3, 0);
            MemCache mc = new MemCache(mem);
            mc.topUp(8);
            long page = g.pageSize(), block = g.levelSize(2);
            long ipaTop = (1L << 52) - 2 * block;
            long pa = 0xE_1234_0000_0000L & -block; // bits 51:48 set: in [15:12] (PA52_64K) or [9:8] (LPA2) of the descriptor
            t.map(ipaTop, block, pa, Prot.RW, mc);
            t.map(ipaTop + block + 3 * page, page, pa + 5 * page, Prot.R, mc);
            Tlb tlb = new Tlb("cpu0", g);
            tlbs.register(tlb);
            Mmu mmu = new Mmu(geo, mem, tlb, t.rootPa(), 3, false, false);
            String what = g + " " + fmt;
            assertThat(t(mmu, ipaTop + 0x123, Access.WRITE)).as(what).isEqualTo(pa(pa + 0x123));
            assertThat(mmu.lastLevel()).isEqualTo(2);
            assertThat(t(mmu, ipaTop + block + 3 * page + 7, Access.READ)).as(what).isEqualTo(pa(pa + 5 * page + 7));
            assertThat(t(mmu, ipaTop + block + 3 * page + 7, Access.WRITE)).isEqualTo(fault(FaultType.PERMISSION, 3));
            assertThat(t(mmu, ipaTop + block, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 3));
            assertThat(t(mmu, 0, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, geo.startLevel()));
            t.checkRefcounts();
            t.unmap(ipaTop, 2 * block);
            assertThat(t(mmu, ipaTop + 0x123, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, geo.startLevel()));
            t.destroy();
            mc.release();
            assertThat(mem.framesInUse()).isZero();
        }

        // hyp, 4K with LPA2 and 52-bit VAs: five levels, starting at -1
        Geometry hg = Geometry.hyp(Granule.G4K, 52, OutputAddressFormat.LPA2);
        assertThat(hg.startLevel()).isEqualTo(-1);
        PhysicalMemory mem = new PhysicalMemory(0xF_0000_0000_0000L, 16L << 20, Granule.G4K, true);
        HypPageTable h = new HypPageTable(hg, mem, new TlbSystem());
        h.map((1L << 52) - K4, K4, 0xC_0000_0000_0000L, Prot.RX);
        Mmu mmu = new Mmu(hg, mem, new Tlb("cpu0", Granule.G4K), h.rootPa(), 0, false, false);
        assertThat(t(mmu, (1L << 52) - K4 + 9, Access.EXEC)).isEqualTo(pa(0xC_0000_0000_0009L));
        assertThat(t(mmu, 0, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, -1));
        assertThat(t(mmu, (1L << 52) - 2 * K4, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 3));
        h.destroy();
        assertThat(mem.framesInUse()).isZero();
    }

    @Test
    void reservedLevel3EncodingAndBlocksWhereTheLevelHasNoneAreTranslationFaults() {
        // 4K/48: start level 0, where a block descriptor is not allowed (no LPA2)
        Fixture f = new Fixture(Granule.G4K, 48, 0);
        assertThat(f.table.geometry().startLevel()).isZero();
        f.map(0, K4, 0x8000_0000L, Prot.RW);
        long l3page = f.table.getLeaf(0).pte();
        // rewrite the page as 0b01 (valid, TYPE=0): reserved at level 3
        setEntry(f.table, 0, 3, l3page & ~2L);
        assertThat(t(f.mmu, 0x10, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 3));
        setEntry(f.table, 0, 3, l3page);
        assertThat(t(f.mmu, 0x10, Access.READ)).isEqualTo(pa(0x8000_0010L));
        // a block descriptor at level 0 (512G): translation fault at level 0
        long block = Stage2Descriptor.leaf(f.table.geometry(), 0, Stage2Descriptor.attributes(Prot.RW, false,
                f.table.geometry().oaFormat()), 0);
        setEntry(f.table, 1L << 39, 0, block);
        assertThat(t(f.mmu, (1L << 39) + 0x10, Access.READ)).isEqualTo(fault(FaultType.TRANSLATION, 0));
        setEntry(f.table, 1L << 39, 0, 0);
        f.destroyAndCheck();
    }

    /** Sets the entry at {@code level} translating {@code addr}, keeping the containing frame's refcount exact. */
    static void setEntry(PageTable t, long addr, int level, long value) {
        t.walk(addr, 1, (ctx, v) -> {
            if (ctx.level() == level) {
                boolean was = ctx.isCounted(ctx.old()), will = ctx.isCounted(value);
                if (will && !was) ctx.getRef();
                if (was && !will) ctx.putRef();
                // Break before make: the checking mode rejects a direct valid -> valid rewrite.
                if (Pte.isValid(ctx.old()) && Pte.isValid(value)) ctx.trySet(0);
                ctx.trySet(value);
            }
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
    }
}
