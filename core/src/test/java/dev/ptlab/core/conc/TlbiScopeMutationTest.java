package dev.ptlab.core.conc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.check.TlbChecker;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.TlbiOp;
import dev.ptlab.core.hw.TlbiOperand;
import dev.ptlab.core.mem.FrameAccessException;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.table.Stage2PageTable;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The walk cache and the per-instruction TLBI scopes have teeth: each test drives the real table
 * library through a {@link TlbMaintenance} that issues a too-narrow instruction in one path (a
 * last-level form where a table went, a wrong TTL hint, VMALLE1IS instead of VMALLS12E1IS) and
 * shows the strict TLB catching it — a walk through a freed table, or a stale entry at the
 * quiescent check with a message naming the CPU, address, level, both values and the TLBI that
 * would have removed it — while the unmodified sequence leaves nothing behind.
 */
class TlbiScopeMutationTest {
    static final long A = 0x4000_0000L;
    static final long P = 0x8000_0000L;
    static final long K4 = 0x1000;
    static final long M2 = 2L << 20;
    static final int VMID = 5;

    /** Which path gets the narrow instruction. */
    enum Mutation { NONE, RANGE_LAST_LEVEL, VMID_AS_VMALLE1, TABLE_UNMAP_TTL_OF_TABLE, LEAF_TTL_WRONG, IPA_WITHOUT_VMALLE1 }

    /**
     * The real sequences of {@link TlbSystem}, except in the mutated path, where the explicit
     * instructions replace it (each followed by its DSB, so only the scope is wrong).
     */
    static final class Mutant implements TlbMaintenance {
        final TlbSystem real;
        final Mutation m;
        /** Run after each leaf TLBI: another vCPU's access in the window before the next entry changes. */
        Runnable afterLeafTlbi = () -> { };

        Mutant(TlbSystem real, Mutation m) {
            this.real = real;
            this.m = m;
        }

        @Override
        public void flushVmidIpa(int vmid, long ipa, int levelHint) {
            if (m == Mutation.TABLE_UNMAP_TTL_OF_TABLE && levelHint == LEVEL_UNKNOWN) {
                // An unlinked table's entry sat at level 2 (or 1): hinting that level, as if it held a
                // leaf, is wrong; KVM passes TLBI_TTL_UNKNOWN here.
                real.ipas2e1is(vmid, ipa, 2);
                real.dsb();
            } else if (m == Mutation.IPA_WITHOUT_VMALLE1) {
                real.ipas2e1is(vmid, ipa, levelHint); // without the DSB; VMALLE1IS that reaches combined entries
                real.dsb();
            } else if (m == Mutation.LEAF_TTL_WRONG && levelHint == 3) {
                real.ipas2e1is(vmid, ipa, 2); // the page's leaf is at level 3, not 2
                real.dsb();
            } else {
                real.flushVmidIpa(vmid, ipa, levelHint);
            }
            if (levelHint == 3) afterLeafTlbi.run();
        }

        @Override
        public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
            real.flushVmidIpaLocal(local, vmid, ipa, levelHint);
        }

        @Override
        public void flushVmidRange(int vmid, long ipa, long size) {
            if (m != Mutation.RANGE_LAST_LEVEL) {
                real.flushVmidRange(vmid, ipa, size);
                return;
            }
            // The same operands as the real split, but RIPAS2LE1IS: leaves only.
            for (long op : TlbiOperand.split(Granule.G4K, ipa, size / K4)) {
                if ((op & TlbiOperand.SINGLE) != 0) {
                    real.ipas2le1is(vmid, TlbiOperand.ipaOf(op), LEVEL_UNKNOWN);
                } else {
                    real.ripas2le1is(vmid, op);
                }
            }
            real.dsb();
        }

        @Override
        public void flushVmid(int vmid) {
            if (m == Mutation.VMID_AS_VMALLE1) {
                real.vmalle1is(vmid); // stage-1 and combined entries only
                real.dsb();
            } else {
                real.flushVmid(vmid);
            }
        }

        @Override
        public void flushHypVa(long va, int levelHint) {
            real.flushHypVa(va, levelHint);
        }
    }

    static final class Rig {
        final PhysicalMemory mem = new PhysicalMemory(0x10_0000_0000L, 64L << 20, Granule.G4K, true);
        final TlbSystem tlbs = new TlbSystem();
        final Stage2PageTable table;
        final MemCache cache = new MemCache(mem);
        final Tlb tlb = new Tlb("cpu1", Granule.G4K);
        final Mmu mmu;
        final Mutant mutant;

        Rig(Mutation m, int tableFlags) {
            tlb.setStrict(true);
            tlbs.register(tlb);
            mutant = new Mutant(tlbs, m);
            table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, mutant, VMID, tableFlags);
            mmu = new Mmu(table.geometry(), mem, tlb, table.rootPa(), VMID, false, false);
        }

        void map(long ipa, long size, long pa) {
            cache.topUp(8);
            table.map(ipa, size, pa, Prot.RW, cache);
        }

        List<TlbChecker.StaleWalk> staleWalks() {
            return TlbChecker.staleWalkEntries(table, tlb, VMID);
        }

        List<TlbChecker.StaleGrant> staleGrants() {
            return TlbChecker.staleGrants(table, tlb, VMID);
        }
    }

    /** Pages under a level-3 table, translated (caching the level-1 and level-2 table descriptors), then coalesced. */
    static Rig coalesce(Mutation m, int tableFlags, CoalescePolicy policy) {
        Rig r = new Rig(m, tableFlags);
        r.table.setCoalescePolicy(policy);
        r.map(A, M2 - K4, P);
        assertThat(r.mmu.translate(A + 7 * K4, Access.READ)).isEqualTo(P + 7 * K4);
        assertThat(r.tlb.walkSize()).isEqualTo(2);
        r.map(A, M2, P); // table -> block: the level-3 table is freed
        assertThat(r.table.counters().coalesced()).isEqualTo(1);
        return r;
    }

    @Test
    void coalescingWithALastLevelRangeTlbiLeavesTheTableInTheWalkCache() {
        // Install-first order with FEAT_TLBIRANGE: KVM invalidates the table's span with RIPAS2E1IS.
        Rig ok = coalesce(Mutation.NONE, Stage2PageTable.RANGE_TLBI, CoalescePolicy.INSTALL_FIRST);
        assertThat(ok.staleWalks()).isEmpty();
        assertThat(ok.mmu.translate(A + 9 * K4, Access.READ)).isEqualTo(P + 9 * K4);
        assertThat(ok.tlbs.instructions(TlbiOp.RIPAS2E1IS)).as("512 pages: one range op, SCALE 1 NUM 7").isEqualTo(1);

        Rig bad = coalesce(Mutation.RANGE_LAST_LEVEL, Stage2PageTable.RANGE_TLBI, CoalescePolicy.INSTALL_FIRST);
        assertThat(bad.tlbs.instructions(TlbiOp.RIPAS2LE1IS)).isEqualTo(1);
        assertThat(bad.tlb.lookup(VMID, A + 7 * K4)).as("the leaf did go").isEqualTo(-2);
        assertThat(bad.staleWalks()).singleElement().asString()
                .startsWith("stale walk-cache entry in cpu1 (vmid 5) at 0x40000000 level 2: cached table descriptor 0x")
                // The new 2M block: XN (bit 54) | OA 0x80000000 | AF, SH inner, S2AP rw, MemAttr WB (0x7fc) | valid.
                .contains("the table now has a level-2 entry 0x400000800007fd")
                .contains("not by IPAS2LE1IS/RIPAS2LE1IS");
        assertThatThrownBy(() -> bad.mmu.translate(A + 9 * K4, Access.READ)).isInstanceOf(FrameAccessException.class)
                .hasMessageStartingWith("cpu1: MMU walk for 0x40009000 (vmid 5) used its walk-cache entry for the level-2 table descriptor")
                .hasMessageContaining("was freed after it was cached");
    }

    @Test
    void aWalkThroughACachedTableWhoseFrameWasFreedAndReusedIsCaughtByItsGeneration() {
        Rig bad = coalesce(Mutation.RANGE_LAST_LEVEL, Stage2PageTable.RANGE_TLBI, CoalescePolicy.INSTALL_FIRST);
        long stale = bad.staleWalks().get(0).cachedPte & 0x0000_FFFF_FFFF_F000L; // the freed level-3 table's PA
        // The last frame freed is the first handed out again: the old table's frame is live once more,
        // as some other table, so only its generation tells the walk it is not the frame it cached.
        long reused = bad.mem.allocate();
        assertThat(reused).isEqualTo(stale);
        assertThat(bad.mem.isLive(stale)).isTrue();
        assertThatThrownBy(() -> bad.mmu.translate(A + 9 * K4, Access.READ)).isInstanceOf(FrameAccessException.class)
                .hasMessageContaining("level-3 table frame 0x" + Long.toHexString(stale) + " was freed and reused after it was cached");
    }

    @Test
    void coalescingInEitherOrderWithVmalle1InsteadOfVmalls12e1LeavesTheWalkCacheEntry() {
        // Without range TLBIs the install-first order breaks the table with VMALLS12E1IS; the
        // unmap-first order always does. VMALLE1IS reaches no stage-2 entry.
        for (CoalescePolicy policy : CoalescePolicy.values()) {
            Rig ok = coalesce(Mutation.NONE, 0, policy);
            assertThat(ok.staleWalks()).as(policy.toString()).isEmpty();
            assertThat(ok.tlbs.instructions(TlbiOp.VMALLS12E1IS)).isEqualTo(1);
            Rig bad = coalesce(Mutation.VMID_AS_VMALLE1, 0, policy);
            assertThat(bad.tlbs.instructions(TlbiOp.VMALLE1IS)).isEqualTo(1);
            assertThat(bad.tlb.lookup(VMID, A + 7 * K4)).as("the page entry survives").isEqualTo(3);
            assertThat(bad.staleWalks()).as(policy.toString()).singleElement().asString()
                    .startsWith("stale walk-cache entry in cpu1 (vmid 5) at 0x40000000 level 2");
            // The page is still RW at the same PA inside the new block: no grant is stale, the walk cache is.
            assertThat(bad.staleGrants()).isEmpty();
            assertThatThrownBy(() -> bad.mmu.translate(A + 9 * K4, Access.READ)).isInstanceOf(FrameAccessException.class);
        }
    }

    @Test
    void unmappingAWholeTableWithItsOwnLevelAsTtlHintLeavesItsDescriptorCached() {
        for (Mutation m : new Mutation[] {Mutation.NONE, Mutation.TABLE_UNMAP_TTL_OF_TABLE}) {
            Rig r = new Rig(m, 0);
            r.map(A, 4 * K4, P);
            assertThat(r.mmu.translate(A, Access.READ)).isEqualTo(P);
            // Another vCPU touches an unmapped page of the same 2M after each leaf's TLBI, before the
            // level-3 table goes: its walk caches the level-2 table descriptor again (and faults at level 3).
            r.mutant.afterLeafTlbi = () -> assertThat(r.mmu.translate(A + 5 * K4, Access.READ)).isNegative();
            r.table.unmap(A, 4 * K4);
            // 4 leaf TLBIs (TTL 3), then the emptied level-3 table's and the emptied level-2 table's (TTL unknown).
            assertThat(r.tlbs.instructions(TlbiOp.IPAS2E1IS)).isEqualTo(6);
            assertThat(r.staleGrants()).isEmpty();
            if (m == Mutation.NONE) {
                assertThat(r.staleWalks()).isEmpty();
                assertThat(r.mmu.translate(A, Access.READ)).isNegative(); // a translation fault, nothing stale
            } else {
                // Hint 2 removes walk entries above level 2 only: the level-2 one stays, naming the freed level-3 table.
                assertThat(r.staleWalks()).singleElement().asString()
                        .startsWith("stale walk-cache entry in cpu1 (vmid 5) at 0x40000000 level 2: cached table descriptor 0x")
                        .contains("the table now has a level-1 entry 0x0 above it (no level-2 table)")
                        .contains("a TTL hint of level 2 or deeper");
                assertThatThrownBy(() -> r.mmu.translate(A + K4, Access.READ)).isInstanceOf(FrameAccessException.class)
                        .hasMessageContaining("level-3 table frame");
            }
        }
    }

    @Test
    void unmappingAPageWithAWrongTtlHintLeavesAStaleGrant() {
        for (Mutation m : new Mutation[] {Mutation.NONE, Mutation.LEAF_TTL_WRONG}) {
            Rig r = new Rig(m, 0);
            r.map(A, 2 * K4, P);
            assertThat(r.mmu.translate(A + K4, Access.WRITE)).isEqualTo(P + K4);
            r.table.unmap(A + K4, K4); // the level-3 table keeps its other page
            if (m == Mutation.NONE) {
                assertThat(r.staleGrants()).isEmpty();
            } else {
                assertThat(r.staleGrants()).singleElement().asString()
                        .isEqualTo("stale grant in cpu1 at 0x40001000: TLB has level-3 0x400000800017ff, table has level-3 0x0"
                                + " (the table has no valid leaf here); removed by TLBI IPAS2E1IS or IPAS2LE1IS of 0x40001000 with"
                                + " no TTL hint or TTL level 3, a range TLBI over it with TTL 0 or 3, or VMALLS12E1IS");
                assertThat(r.mmu.translate(A + K4, Access.WRITE)).as("the guest still writes the page").isEqualTo(P + K4);
            }
            assertThat(r.staleWalks()).isEmpty();
        }
    }
}
