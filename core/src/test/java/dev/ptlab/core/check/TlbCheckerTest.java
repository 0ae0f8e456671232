package dev.ptlab.core.check;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Fixture;
import dev.ptlab.core.table.Stage2PageTable;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Stale grants: TLB entries that give more than the table now does. */
class TlbCheckerTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long A = 0x4000_0000L, P = 0x8000_0000L;

    private static List<TlbChecker.StaleGrant> stale(Fixture f) {
        return TlbChecker.staleGrants(f.table, f.tlb, Fixture.VMID);
    }

    private static void touch(Fixture f, long ipa, Access a) {
        assertThat(Translation.isFault(f.mmu.translate(ipa, a))).as("translate 0x%x", ipa).isFalse();
    }

    @Test
    void writeProtectWithoutItsTlbiLeavesAStaleWriteGrantUntilTheRangeTlbi() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.cache.topUp(8);
        f.table.map(A, 4 * K4, P, Prot.RW, f.cache);
        touch(f, A + K4, Access.WRITE);
        assertThat(stale(f)).isEmpty();

        f.table.wrprotect(A, 4 * K4); // KVM's caller invalidates afterwards
        List<TlbChecker.StaleGrant> found = stale(f);
        assertThat(found).hasSize(1);
        assertThat(found.get(0).address).isEqualTo(A + K4);
        assertThat(found.get(0).reason).contains("write");

        f.tlbs.flushVmidRange(Fixture.VMID, A, 4 * K4);
        assertThat(stale(f)).isEmpty();
    }

    @Test
    void aMoreRestrictiveCachedEntryOrAClearedAccessFlagIsNotStale() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        f.cache.topUp(8);
        f.table.map(A, K4, P, Prot.R, f.cache);
        touch(f, A, Access.READ);
        f.table.relaxPerms(A, Prot.RW); // no TLBI for the other CPUs: they fault and fix themselves
        f.table.testClearYoung(A, K4, true); // AF cleared, no TLBI
        assertThat(stale(f)).isEmpty();
    }

    @Test
    void aBlockShrunkWithoutItsTlbiIsStaleOnEveryPageTheTableNoLongerGivesIt() {
        PhysicalMemory mem = new PhysicalMemory(Fixture.MEM_BASE, 64L << 20, Granule.G4K, true);
        TlbSystem tlbs = new TlbSystem();
        TlbMaintenance none = new TlbMaintenance() { // a broken hypervisor: TLBIs go nowhere
            @Override public void flushVmidIpa(int vmid, long ipa, int levelHint) {}
            @Override public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {}
            @Override public void flushVmidRange(int vmid, long ipa, long size) {}
            @Override public void flushVmid(int vmid) {}
            @Override public void flushHypVa(long va, int levelHint) {}
        };
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, none, 3, 0);
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        tlbs.register(tlb);
        Mmu mmu = new Mmu(t.geometry(), mem, tlb, t.rootPa(), 3, false, false);
        MemCache cache = new MemCache(mem);
        cache.topUp(8);
        t.map(A, M2, P, Prot.RW, cache);
        assertThat(mmu.translate(A + 5 * K4, Access.READ)).isEqualTo(P + 5 * K4); // caches the 2M block
        t.map(A + 3 * K4, K4, P + 0x40_0000, Prot.RW, cache); // block -> table (rest unmapped), one page elsewhere

        List<TlbChecker.StaleGrant> found = TlbChecker.staleGrants(t, tlb, 3);
        assertThat(found).hasSize(512);
        assertThat(found).filteredOn(g -> g.address == A + 3 * K4).singleElement()
                .satisfies(g -> assertThat(g.reason).contains("output address"));
        assertThat(found).filteredOn(g -> g.reason.contains("no valid leaf")).hasSize(511);
        assertThat(TlbChecker.staleGrants(t, tlb, 4)).as("other VMIDs' entries are not this table's").isEmpty();

        tlbs.flushVmid(3);
        assertThat(TlbChecker.staleGrants(t, tlb, 3)).isEmpty();
    }
}
