package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import org.junit.jupiter.api.Test;

/** First evidence for the operations of the "every table operation" issue. */
class Stage2OpsSmokeTest {
    final PhysicalMemory mem = new PhysicalMemory(0x1_0000_0000L, 64L << 20, Granule.G4K, true);
    final TlbSystem tlbs = new TlbSystem();
    final Stage2PageTable t = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 1, 0);
    final MemCache mc = new MemCache(mem);
    final Tlb tlb = new Tlb("cpu0", Granule.G4K);
    final Mmu mmu;

    Stage2OpsSmokeTest() {
        tlbs.register(tlb);
        mmu = new Mmu(t.geometry(), mem, tlb, t.rootPa(), 1, false, false);
    }

    @Test
    void wrprotectNeedsCallerTlbiAndRelaxUsesLocalTlbi() {
        mc.topUp(8);
        t.map(0x4000_0000L, 0x10_000, 0x8000_0000L, Prot.RW, mc);
        assertThat(mmu.translate(0x4000_1000L, Access.WRITE)).isEqualTo(0x8000_1000L);
        t.wrprotect(0x4000_0000L, 0x10_000);
        // the TLB still grants the write until the caller invalidates
        assertThat(mmu.translate(0x4000_1000L, Access.WRITE)).isEqualTo(0x8000_1000L);
        tlbs.flushVmidRange(1, 0x4000_0000L, 0x10_000);
        long f = mmu.translate(0x4000_1000L, Access.WRITE);
        assertThat(Translation.faultType(f)).isEqualTo(FaultType.PERMISSION);
        long local = tlbs.localIpaFlushes();
        assertThat(t.relaxPerms(0x4000_1000L, Prot.RW, 0, tlb)).isEqualTo(Status.OK);
        assertThat(tlbs.localIpaFlushes()).isEqualTo(local + 1);
        assertThat(mmu.translate(0x4000_1000L, Access.WRITE)).isEqualTo(0x8000_1000L);
        assertThat(t.relaxPerms(0x5000_0000L, Prot.RW)).isEqualTo(Status.NOT_MAPPED);
        t.checkRefcounts();
    }

    @Test
    void youngness() {
        mc.topUp(8);
        t.map(0x4000_0000L, 0x2000, 0x8000_0000L, Prot.RW, mc);
        assertThat(t.testClearYoung(0x4000_0000L, 0x2000, true)).isTrue();
        assertThat(t.testClearYoung(0x4000_0000L, 0x2000, false)).isFalse();
        assertThat(Translation.faultType(mmu.translate(0x4000_0000L, Access.READ))).isEqualTo(FaultType.ACCESS_FLAG);
        assertThat(t.mkyoung(0x4000_0000L)).isEqualTo(Status.OK);
        assertThat(mmu.translate(0x4000_0000L, Access.READ)).isEqualTo(0x8000_0000L);
    }

    @Test
    void fullAndPartialSplitKeepEveryTranslation() {
        mc.topUp(4);
        t.map(0x4000_0000L, 1L << 30, 0x8000_0000L, Prot.RWX, mc);
        assertThat(t.framesForFullSplit(1)).isEqualTo(513);
        mc.topUp(513);
        t.split(0x4000_0000L, 1L << 30, mc);
        assertThat(t.getLeaf(0x4012_3000L).level()).isEqualTo(3);
        for (long a = 0x4000_0000L; a < 0x8000_0000L; a += 0x3_1000) {
            assertThat(mmu.translate(a, Access.EXEC)).isEqualTo(a + 0x4000_0000L);
        }
        t.checkRefcounts();
        t.unmap(0x4000_0000L, 1L << 30);
        mc.topUp(4);
        t.map(0x4000_0000L, 1L << 30, 0x8000_0000L, Prot.RW, mc);
        MemCache small = new MemCache(mem, 3);
        small.topUp(3);
        assertThatThrownBy(() -> t.split(0x4000_0000L, 1L << 30, small))
                .isInstanceOf(PageTableException.class).extracting(e -> ((PageTableException) e).errno()).isEqualTo(Errno.ENOMEM);
        t.checkRefcounts();
        assertThat(t.getLeaf(0x4000_0000L).level()).isEqualTo(3);
        assertThat(t.getLeaf(0x4060_0000L).level()).isEqualTo(2);
        for (long a = 0x4000_0000L; a < 0x8000_0000L; a += 0x3_1000) {
            assertThat(mmu.translate(a, Access.READ)).isEqualTo(a + 0x4000_0000L);
        }
    }

    @Test
    void coalescingPoliciesLeaveIdenticalTables() {
        long[] steps = new long[2];
        String[] dumps = new String[2];
        for (CoalescePolicy p : CoalescePolicy.values()) {
            PhysicalMemory m = new PhysicalMemory(0x1_0000_0000L, 64L << 20, Granule.G4K, true);
            Stage2PageTable s = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), m, new TlbSystem(), 1, 0);
            s.setCoalescePolicy(p);
            MemCache c = new MemCache(m);
            c.topUp(600);
            s.map(0x4000_0000L, 1L << 30, 0x8000_1000L, Prot.RW, c);
            s.map(0x4000_0000L, 1L << 30, 0x8000_0000L, Prot.RW, c);
            s.checkRefcounts();
            assertThat(s.getLeaf(0x4000_0000L).level()).isEqualTo(1);
            assertThat(s.counters().coalesced()).isEqualTo(1);
            steps[p.ordinal()] = s.counters().invalidWindowSteps();
            dumps[p.ordinal()] = Long.toHexString(s.getLeaf(0x4000_0000L).pte()) + " frames " + m.framesInUse();
        }
        assertThat(dumps[0]).isEqualTo(dumps[1]);
        assertThat(steps[CoalescePolicy.INSTALL_FIRST.ordinal()]).isZero();
        assertThat(steps[CoalescePolicy.UNMAP_FIRST.ordinal()]).isGreaterThan(512 * 512);
    }

    @Test
    void ownerAnnotationsReplaceBlocksAndUnmapClearsThem() {
        mc.topUp(8);
        t.map(0x4000_0000L, 1L << 21, 0x8000_0000L, Prot.RW, mc);
        t.setOwner(0x4000_0000L, 0x2000, mc, 3);
        assertThat(t.getLeaf(0x4000_0000L)).isEqualTo(new Leaf(Pte.ownerAnnotation(3), 3));
        assertThat(Translation.faultType(mmu.translate(0x4000_1000L, Access.READ))).isEqualTo(FaultType.TRANSLATION);
        t.checkRefcounts();
        t.map(0x4000_0000L, 0x1000, 0x9000_0000L, Prot.R, mc);
        assertThat(mmu.translate(0x4000_0000L, Access.READ)).isEqualTo(0x9000_0000L);
        t.unmap(0x4000_0000L, 1L << 21);
        t.checkRefcounts();
        assertThat(t.getLeaf(0x4000_1000L).pte()).isZero();
    }

    @Test
    void coalescedSubtreeWaitsForReadersWhenDeferredThroughTheReclaimer() {
        dev.ptlab.core.mem.Reclaimer rec = new dev.ptlab.core.mem.Reclaimer();
        t.setFreeUnlinkedHook(FreeUnlinkedHook.deferredVia(rec));
        mc.topUp(8);
        t.map(0x4000_0000L, 1L << 21, 0x8000_1000L, Prot.RW, mc);
        long before = mem.framesInUse();
        try (dev.ptlab.core.mem.Reclaimer.ReadSection s = rec.enter()) {
            t.map(0x4000_0000L, 1L << 21, 0x8000_0000L, Prot.RW, mc);
            assertThat(t.getLeaf(0x4000_0000L).level()).isEqualTo(2);
            assertThat(mem.framesInUse()).as("the old L3 table survives while a reader is inside").isEqualTo(before);
        }
        rec.barrier();
        assertThat(mem.framesInUse()).isEqualTo(before - 1);
        t.checkRefcounts();
    }

    @Test
    void relaxPermsAddsReadWriteAndSetsExecuteToExactlyWhatIsAsked() {
        // Linux 7.1-rc4 relax_perms rewrites XN from the prot: rw on an rx leaf is rw (ptlab
        // broadcasts that TLBI). Before: execute was kept.
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.cache.topUp(4);
        long a = 0x4000_0000L;
        f.table.map(a, 0x1000, 0x8000_0000L, Prot.RX, f.cache);
        assertThat(f.table.relaxPerms(a, Prot.RW)).isEqualTo(Status.OK);
        long pte = f.table.getLeaf(a).pte();
        assertThat(dev.ptlab.core.arch.Stage2Descriptor.writable(pte)).isTrue();
        assertThat(dev.ptlab.core.arch.Stage2Descriptor.isExecutable(pte)).as("exec removed as asked").isFalse();
        assertThat(f.tlbs.ipaFlushes()).as("a right went away: broadcast").isEqualTo(1);
        f.table.map(a + 0x1000, 0x1000, 0x8000_1000L, Prot.R, f.cache);
        assertThat(f.table.relaxPerms(a + 0x1000, Prot.RX)).isEqualTo(Status.OK);
        assertThat(dev.ptlab.core.arch.Stage2Descriptor.isExecutable(f.table.getLeaf(a + 0x1000).pte())).isTrue();
        assertThat(dev.ptlab.core.arch.Stage2Descriptor.writable(f.table.getLeaf(a + 0x1000).pte())).isFalse();
    }
}
