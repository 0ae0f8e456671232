package dev.ptlab.core.hw;

import static dev.ptlab.core.hw.TwoStageRig.ASID;
import static dev.ptlab.core.hw.TwoStageRig.TABLES;
import static dev.ptlab.core.hw.TwoStageRig.VMID;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.MemAttr;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage1Descriptor;
import dev.ptlab.core.check.TlbChecker;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class TwoStageTranslationTest {
    /** 64K-aligned, so one VA serves every granule. */
    static final long VA = 0x1234_5678_0000L;
    /**
     * Chosen so its TLB slots differ from the table window's (strict mode never evicts): stage-2
     * leaf slot (IPA >> 12) & 511 = 0x40 (the window takes 0..15), level-2 walk slot
     * (IPA >> 21) & 63 = 1 (the window's is 0); its level-0 entry is the window's.
     */
    static final long IPA = 0x8024_0000L;
    static final long PA = 0x2_0000_0000L;

    static long read(NestedMmu m, long va) {
        return m.translate(va, Access.READ);
    }

    /**
     * VA → IPA → PA for each granule, one page at each stage: the PA is the stage-2 page's PA plus
     * the offset in the page. Cold, without a walk cache, the descriptor reads are n·(m+1) + m for
     * n stage-1 and m stage-2 levels (§F.3): 48-bit stage 1 has 4 levels with 4K (48-4)/9 and 16K
     * (48-4)/11, 3 with 64K (48-4)/13; 48-bit stage 2 has 4 levels with 4K ((44-4)/9), 3 with 16K
     * ((44-4)/11, two concatenated roots) and 64K ((44-4)/13). So 4·5+4 = 24, 4·4+3 = 19, 3·4+3 = 15.
     */
    @ParameterizedTest
    @EnumSource(Granule.class)
    void translatesThroughBothStagesWithTheArchitecturalReadCount(Granule g) {
        TwoStageRig r = new TwoStageRig(g, 0);
        r.s1.map(VA, g.pageSize(), IPA, Prot.RW, false, true);
        r.mapS2(IPA, g.pageSize(), PA, Prot.RW);
        long pa = read(r.mmu, VA + 0xabc);
        assertThat(pa).isEqualTo(PA + 0xabc);
        assertThat(r.mmu.lastIpa()).isEqualTo(IPA + 0xabc);
        int expected = g == Granule.G4K ? 24 : g == Granule.G16K ? 19 : 15;
        assertThat(r.mmu.walkReads()).isEqualTo(expected);
        assertThat(r.mmu.stage1Reads()).isEqualTo(g == Granule.G64K ? 3 : 4);
        // The second access hits the combined entry: no read at all.
        assertThat(read(r.mmu, VA + 8)).isEqualTo(PA + 8);
        assertThat(r.mmu.lastTlbHit()).isTrue();
        assertThat(r.mmu.walkReads()).isEqualTo(expected);
        assertThat(r.tlb.combinedSize()).isEqualTo(1);
        assertThat(r.tlb.stage1Size()).isEqualTo(1);
        NestedMmu.NestedTranslation t = r.mmu.translateDetailed(VA, Access.WRITE);
        assertThat(t.pa()).isEqualTo(PA);
        assertThat(t.memAttr()).isEqualTo(MemAttr.NORMAL_WB);
    }

    /**
     * With the stage-2 walk cache: the first table IPA walks all 4 stage-2 levels (4 + 1 reads);
     * the next three table frames share its level-3 stage-2 table (walk-cache hit at level 2:
     * 1 + 1 each); the output IPA 0x8024_0000 shares only the level-0 entry with 0x4000_0000
     * (level-1 index 2 vs 1), so 3 reads. 5 + 6 + 3 = 14.
     */
    @Test
    void warmStageTwoWalkCacheShortensTheNestedWalk() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 2 * Granule.G4K.pageSize(), IPA, Prot.RW, false, true);
        r.mapS2(IPA, 2 * Granule.G4K.pageSize(), PA, Prot.RW);
        assertThat(read(r.mmu, VA)).isEqualTo(PA);
        assertThat(r.mmu.walkReads()).isEqualTo(14);
        assertThat(r.tlb.stage1WalkSize()).isEqualTo(3); // the level-0, 1 and 2 guest table descriptors
        // Next page: the stage-1 walk cache gives the level-2 descriptor, so only the level-3
        // table is read (its frame's stage-2 leaf is cached: 0 stage-2 reads, 1 stage-1 read), and
        // IPA 0x8024_1000 walks from the cached stage-2 level-2 descriptor: 1. 14 + 2 = 16.
        assertThat(read(r.mmu, VA + 0x1000)).isEqualTo(PA + 0x1000);
        assertThat(r.mmu.walkReads()).isEqualTo(14 + 2);
        assertThat(r.tlb.stage1WalkHits()).isEqualTo(1);
    }

    /**
     * Stage-1 walk entries hold next-table IPAs: IPAS2E1IS of a table frame's IPA leaves them
     * (the IPA is translated again through stage 2 on use); VMALLE1IS and the guest's VAE1IS
     * remove them.
     */
    @Test
    void stageOneWalkEntriesGoWithVmalle1isAndVae1isNotWithIpas2e1is() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x2000, IPA, Prot.RW, false, true);
        r.mapS2(IPA, 0x2000, PA, Prot.RW);
        read(r.mmu, VA);
        assertThat(r.tlb.stage1WalkSize()).isEqualTo(3);
        r.tlbs.ipas2e1is(VMID, TABLES + 0x3000, TlbMaintenance.LEVEL_UNKNOWN);
        r.tlbs.dsb();
        assertThat(r.tlb.stage1WalkSize()).isEqualTo(3);
        r.tlbs.vmalle1is(VMID);
        r.tlbs.dsb();
        assertThat(r.tlb.stage1WalkSize()).isZero();
        read(r.mmu, VA);
        assertThat(r.tlb.stage1WalkSize()).isEqualTo(3);
        // The guest unmaps the page: VAE1IS with TTL 3 reaches the walk entries above level 3.
        r.s1.unmap(VA, 0x1000);
        assertThat(r.tlb.stage1WalkSize()).isZero();
        assertThat(read(r.mmu, VA + 0x1000)).isEqualTo(PA + 0x1000);
    }

    /** A stage-1 2M block over stage-2 4K pages: the combined entry is a page; another page of the block uses the stage-1 entry. */
    @Test
    void combinedEntrySpansTheSmallerLeafAndStageOneEntryServesTheRestOfTheBlock() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 0);
        long m2 = 2L << 20;
        long ipa = 0x8040_0000L; // 2M-aligned for the block
        r.s1.map(0, m2, ipa, Prot.RW, false, true); // VA [0, 2M) → one stage-1 block
        r.mapS2(ipa, 0x2000, PA, Prot.RW);
        assertThat(read(r.mmu, 0x10)).isEqualTo(PA + 0x10);
        assertThat(r.mmu.lastLevel()).isEqualTo(3); // max(stage-1 level 2, stage-2 level 3)
        long s1reads = r.mmu.stage1Reads();
        assertThat(read(r.mmu, 0x1010)).isEqualTo(PA + 0x1010);
        assertThat(r.mmu.stage1Reads()).isEqualTo(s1reads); // stage-1 entry hit: no stage-1 read
        assertThat(r.mmu.walks()).isEqualTo(1);
    }

    /** Stage 1 read-only, stage 2 read/write: a write faults at stage 1 (it has priority, D8.4.3). */
    @Test
    void stageOneReadOnlyWinsOverStageTwoReadWrite() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x1000, IPA, Prot.R, false, true);
        r.mapS2(IPA, 0x1000, PA, Prot.RW);
        assertThat(read(r.mmu, VA)).isEqualTo(PA);
        for (int i = 0; i < 2; i++) { // walk, then the combined entry
            long w = r.mmu.translate(VA, Access.WRITE);
            assertThat(Translation.isFault(w)).isTrue();
            assertThat(Translation.isStage2Fault(w)).isFalse();
            assertThat(Translation.faultType(w)).isEqualTo(FaultType.PERMISSION);
            assertThat(Translation.faultLevel(w)).isEqualTo(3);
        }
        assertThat(r.mmu.stage1Faults(FaultType.PERMISSION)).isEqualTo(2);
    }

    /** Stage 1 read/write, stage 2 read-only: a stage-2 permission fault on the output IPA, S1PTW clear. */
    @Test
    void stageTwoReadOnlyGivesAStageTwoPermissionFaultWithTheIpa() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x1000, IPA, Prot.RW, false, true);
        r.mapS2(IPA, 0x1000, PA, Prot.R);
        assertThat(read(r.mmu, VA + 0x40)).isEqualTo(PA + 0x40);
        for (int i = 0; i < 2; i++) { // from the combined entry both times (the read filled it)
            long w = r.mmu.translate(VA + 0x40, Access.WRITE);
            assertThat(Translation.isStage2Fault(w)).isTrue();
            assertThat(Translation.isS1ptw(w)).isFalse();
            assertThat(Translation.faultType(w)).isEqualTo(FaultType.PERMISSION);
            assertThat(Translation.faultLevel(w)).isEqualTo(3);
            assertThat(r.mmu.lastFaultIpa()).isEqualTo(IPA + 0x40);
        }
        // Uncached: the same answer from the walk.
        r.tlbs.vmalls12e1is(VMID);
        r.tlbs.dsb();
        NestedMmu.NestedTranslation t = r.mmu.translateDetailed(VA + 0x40, Access.WRITE);
        assertThat(t.stage()).isEqualTo(2);
        assertThat(t.ipa()).isEqualTo(IPA + 0x40);
        assertThat(t.tlbHit()).isFalse();
    }

    /**
     * The level-2 stage-1 table is the third frame the table took from the guest window (root,
     * level 1, level 2 in map order): IPA 0x4000_2000. Its entry for VA is index VA[29:21] =
     * 0xb3, so the walk reads IPA 0x4000_2000 + 0xb3·8 = 0x4000_2598. Unmapped at stage 2 (its
     * stage-2 level-3 table stays: the other window pages), that is a stage-2 translation fault
     * at level 3 with S1PTW and that IPA.
     */
    @Test
    void stageOneTableUnmappedAtStageTwoIsAnS1ptwFault() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x1000, IPA, Prot.RW, false, true);
        r.mapS2(IPA, 0x1000, PA, Prot.RW);
        r.s2.unmap(TABLES + 0x2000, 0x1000);
        long f = read(r.mmu, VA);
        assertThat(Translation.isStage2Fault(f)).isTrue();
        assertThat(Translation.isS1ptw(f)).isTrue();
        assertThat(Translation.faultType(f)).isEqualTo(FaultType.TRANSLATION);
        assertThat(Translation.faultLevel(f)).isEqualTo(3);
        assertThat(r.mmu.lastFaultIpa()).isEqualTo(0x4000_2598L);
        assertThat(r.mmu.s1ptwFaults()).isEqualTo(1);
        assertThat(r.mmu.translateDetailed(VA, Access.READ).toString()).contains("stage-2 fault translation level 3 ipa 0x40002598 s1ptw");
    }

    @Test
    void stageOneFaultsCarryTheirLevel() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        // Nothing mapped: the root's entry is invalid, a stage-1 translation fault at level 0.
        long f = read(r.mmu, VA);
        assertThat(Translation.isStage2Fault(f)).isFalse();
        assertThat(Translation.faultLevel(f)).isEqualTo(0);
        // A VA with bits above 2^48 set in the TTBR0 half: level 0, without a walk.
        long walks = r.mmu.walks();
        assertThat(Translation.faultType(read(r.mmu, 1L << 50))).isEqualTo(FaultType.TRANSLATION);
        assertThat(r.mmu.walks()).isEqualTo(walks);
        // A mapped neighbour makes the walk reach level 3 for VA + 4K.
        r.s1.map(VA, 0x1000, IPA, Prot.RW, false, true);
        f = read(r.mmu, VA + 0x1000);
        assertThat(Translation.faultType(f)).isEqualTo(FaultType.TRANSLATION);
        assertThat(Translation.faultLevel(f)).isEqualTo(3);
        assertThat(Translation.isStage2Fault(f)).isFalse();
        // The TTBR1 half is disabled (EPD1): level 0.
        assertThat(Translation.faultLevel(read(r.mmu, -0x1000L))).isEqualTo(0);
    }

    /**
     * nG entries are tagged with the ASID: after a switch to ASID 2 the non-global page misses
     * (a new walk), the global one hits.
     */
    @Test
    void nonGlobalEntriesAreTaggedWithTheAsidGlobalOnesAreNot() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x1000, IPA, Prot.RW, false, false); // nG
        r.s1.map(VA + 0x1000, 0x1000, IPA + 0x1000, Prot.RW, false, true); // global
        r.mapS2(IPA, 0x2000, PA, Prot.RW);
        read(r.mmu, VA);
        read(r.mmu, VA + 0x1000);
        assertThat(r.mmu.walks()).isEqualTo(2);
        r.load(2);
        assertThat(read(r.mmu, VA + 0x1000)).isEqualTo(PA + 0x1000);
        assertThat(r.mmu.walks()).isEqualTo(2);
        assertThat(read(r.mmu, VA)).isEqualTo(PA);
        assertThat(r.mmu.walks()).isEqualTo(3);
        // ASID 2's entry for VA wanted the slot ASID 1's holds: strict mode kept ASID 1's.
        r.load(ASID);
        assertThat(read(r.mmu, VA)).isEqualTo(PA);
        assertThat(r.mmu.lastTlbHit()).isTrue();
    }

    @Test
    void vae1isRemovesTheAsidsAndGlobalEntriesOfTheVaOnly() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x2000, IPA, Prot.RW, false, false);
        r.mapS2(IPA, 0x2000, PA, Prot.RW);
        read(r.mmu, VA);
        read(r.mmu, VA + 0x1000);
        assertThat(r.tlb.combinedSize()).isEqualTo(2);
        r.tlbs.vae1is(VMID, 9, VA, TlbMaintenance.LEVEL_UNKNOWN); // another ASID: nothing
        r.tlbs.dsb();
        assertThat(r.tlb.combinedSize()).isEqualTo(2);
        r.tlbs.vae1is(VMID, ASID, VA, TlbMaintenance.LEVEL_UNKNOWN);
        r.tlbs.dsb();
        assertThat(r.tlb.combinedSize()).isEqualTo(1);
        assertThat(r.tlb.stage1Size()).isEqualTo(1);
        // The guest's own unmap issues VAE1IS with the leaf's level: the last entries go.
        assertThat(r.s1.unmap(VA + 0x1000, 0x1000)).isEqualTo(0x1000);
        assertThat(r.tlb.combinedSize()).isZero();
        assertThat(r.tlbs.instructions(TlbiOp.VAE1IS)).isEqualTo(3);
        assertThat(Translation.faultLevel(read(r.mmu, VA + 0x1000))).isEqualTo(3);
    }

    /**
     * IPAS2E1IS removes the stage-2 entries of the IPA but not the combined entry (not required
     * to, D8.17.6.1); VMALLE1IS removes stage-1 and combined entries but not stage-2 ones.
     */
    @Test
    void ipas2e1isLeavesCombinedEntriesVmalle1isRemovesThem() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x1000, IPA, Prot.RW, false, true);
        r.mapS2(IPA, 0x1000, PA, Prot.RW);
        read(r.mmu, VA);
        int s2leaves = r.tlb.size();
        r.tlbs.ipas2e1is(VMID, IPA, TlbMaintenance.LEVEL_UNKNOWN);
        r.tlbs.dsb();
        assertThat(r.tlb.size()).isEqualTo(s2leaves - 1);
        assertThat(r.tlb.combinedSize()).isEqualTo(1);
        r.tlbs.vmalle1is(VMID);
        r.tlbs.dsb();
        assertThat(r.tlb.combinedSize()).isZero();
        assertThat(r.tlb.stage1Size()).isZero();
        assertThat(r.tlb.size()).isEqualTo(s2leaves - 1); // the table frames' stage-2 leaves stay
    }

    @Test
    void stageOneOffTranslatesTheVaAsAnIpa() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.mapS2(IPA, 0x1000, PA, Prot.RW);
        r.mmu.loadEl1(0, 5L << NestedMmu.IPS_SHIFT | 1L << NestedMmu.EPD0_SHIFT | 1L << NestedMmu.EPD1_SHIFT, 0, 0, 0);
        assertThat(read(r.mmu, IPA + 4)).isEqualTo(PA + 4);
        long f = read(r.mmu, IPA + 0x1000);
        assertThat(Translation.isStage2Fault(f)).isTrue();
        assertThat(r.mmu.lastFaultIpa()).isEqualTo(IPA + 0x1000);
    }

    @Test
    void tableAndExecuteControlsRestrictTheLeaf() {
        // APTable[1] forbids writes below a table; EL0-writable is never EL1-executable.
        long leaf = Stage1Descriptor.attributes(Prot.RW, true, false, dev.ptlab.core.arch.OutputAddressFormat.PA48);
        assertThat(Stage1Descriptor.writable(leaf, true)).isTrue();
        assertThat(Stage1Descriptor.writable(Stage1Descriptor.effective(leaf, Stage1Descriptor.AP_TABLE_RDONLY), false)).isFalse();
        assertThat(Stage1Descriptor.readable(Stage1Descriptor.effective(leaf, Stage1Descriptor.AP_TABLE_NO_EL0), true)).isFalse();
        assertThat(Stage1Descriptor.executable(leaf & ~Stage1Descriptor.PXN, false)).isFalse();
        assertThatThrownBy(() -> Stage1Descriptor.attributes(Prot.RWX, true, true, dev.ptlab.core.arch.OutputAddressFormat.PA48))
                .isInstanceOf(PageTableException.class).hasMessageContaining("prot");
    }

    @Test
    void aTcrWithAnotherGranuleIsRefusedNamingTcr() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        long tcr = 16L | 1L << NestedMmu.TG0_SHIFT | 1L << NestedMmu.EPD1_SHIFT | 5L << NestedMmu.IPS_SHIFT; // TG0 01 = 64K
        assertThatThrownBy(() -> r.mmu.loadEl1(1, tcr, r.s1.rootPa(), 0, 0))
                .isInstanceOf(PageTableException.class).hasMessageContaining("tcr").hasMessageContaining("TG0");
    }

    @Test
    void noStaleCombinedEntryAfterTheRealStageTwoUnmap() {
        TwoStageRig r = new TwoStageRig(Granule.G4K, 64);
        r.s1.map(VA, 0x1000, IPA, Prot.RW, false, true);
        r.mapS2(IPA, 0x1000, PA, Prot.RW);
        read(r.mmu, VA);
        assertThat(TlbChecker.staleCombinedEntries(r.mmu)).isEmpty();
        r.s2.unmap(IPA, 0x1000); // IPAS2E1IS; DSB ISH; VMALLE1IS; DSB ISH
        assertThat(TlbChecker.staleCombinedEntries(r.mmu)).isEmpty();
        long f = read(r.mmu, VA);
        assertThat(Translation.isStage2Fault(f)).isTrue();
        assertThat(r.mmu.lastFaultIpa()).isEqualTo(IPA);
    }
}
