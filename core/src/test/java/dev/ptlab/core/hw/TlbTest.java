package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.table.Fixture;
import dev.ptlab.core.table.Stage2PageTable;
import org.junit.jupiter.api.Test;

/** {@link Tlb} and {@link TlbSystem}: what each invalidation scope removes, counters, and fills racing with invalidation. */
class TlbTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long PTE = 0x8000_0000L | 0x7C3; // any leaf-looking value: the TLB only stores it

    @Test
    void lookupFindsWhatWasFilledForThatVmidOnly() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        assertThat(tlb.lookup(1, 0x5000)).isEqualTo(-2);
        assertThat(tlb.fill(1, 0x5123, 3, PTE, tlb.generation())).isTrue();
        assertThat(tlb.lookup(1, 0x5FFF)).isEqualTo(3);
        assertThat(tlb.cachedPte()).isEqualTo(PTE);
        assertThat(tlb.lookup(1, 0x6000)).isEqualTo(-2);
        assertThat(tlb.lookup(2, 0x5000)).as("other VMID").isEqualTo(-2);
        assertThat(tlb.fill(1, 3 * M2 + 77, 2, PTE | 1L << 20, tlb.generation())).isTrue();
        assertThat(tlb.lookup(1, 3 * M2 + M2 - 1)).isEqualTo(2);
        assertThat(tlb.lookup(1, 4 * M2)).isEqualTo(-2);
        assertThat(tlb.size()).isEqualTo(2);
        assertThat(tlb.fills()).isEqualTo(2);
        assertThat(tlb.hits()).isEqualTo(2);
        assertThat(tlb.misses()).isEqualTo(4);
    }

    @Test
    void fillThatRacedWithAnInvalidationIsDropped() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        long gen = tlb.generation(); // a walk begins
        tlb.invalidateAddress(1, 0x9000_0000L); // an unrelated invalidation completes meanwhile
        assertThat(tlb.generation()).isGreaterThan(gen);
        assertThat(tlb.fill(1, 0x5000, 3, PTE, gen)).isFalse();
        assertThat(tlb.lookup(1, 0x5000)).isEqualTo(-2);
        assertThat(tlb.size()).isZero();
        assertThat(tlb.fills()).isZero();
        // every kind of invalidation bumps the generation
        long g1 = tlb.generation();
        tlb.invalidateRange(1, 0, K4);
        tlb.invalidateVmid(1);
        tlb.invalidateAll();
        assertThat(tlb.generation()).isEqualTo(g1 + 3);
        assertThat(tlb.fill(1, 0x5000, 3, PTE, tlb.generation())).isTrue();
        assertThat(tlb.lookup(1, 0x5000)).isEqualTo(3);
    }

    @Test
    void fillOverlappingAnEntryOfAnotherSizeIsCountedAsAConflict() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        tlb.fill(1, M2, 2, PTE, tlb.generation());
        tlb.fill(2, M2 + K4, 3, PTE, tlb.generation()); // other VMID: no conflict
        assertThat(tlb.conflicts()).isZero();
        tlb.fill(1, M2 + K4, 3, PTE, tlb.generation());
        assertThat(tlb.conflicts()).isEqualTo(1);
    }

    @Test
    void invalidationsRemoveExactlyTheirScope() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K);
        long gen = tlb.generation();
        long v2 = 32 * K4; // VMID 2's pages sit in other slots (the TLB is direct-mapped by address)
        for (long a = 0; a < 16 * K4; a += K4) {
            tlb.fill(1, a, 3, PTE, gen);
            tlb.fill(2, v2 + a, 3, PTE, gen);
        }
        tlb.fill(1, 4 * M2, 2, PTE, gen);
        tlb.fill(1, 6 * M2, 2, PTE, gen);
        tlb.fill(0, 9 * M2, 2, PTE, gen);
        assertThat(tlb.size()).isEqualTo(35);

        tlb.invalidateAddress(1, 3 * K4 + 5);
        tlb.invalidateAddress(1, v2 + 3 * K4); // VMID 1 has nothing there
        assertThat(tlb.lookup(1, 3 * K4)).isEqualTo(-2);
        assertThat(tlb.lookup(2, v2 + 3 * K4)).isEqualTo(3);
        assertThat(tlb.lookup(1, 2 * K4)).isEqualTo(3);
        // by address: also the block translating it
        tlb.invalidateAddress(1, 4 * M2 + 123 * K4);
        assertThat(tlb.lookup(1, 4 * M2)).isEqualTo(-2);
        assertThat(tlb.size()).isEqualTo(33);

        // a range removes entries overlapping it, including a block it only partly covers
        tlb.invalidateRange(1, 8 * K4, 4 * K4);
        for (long a = 8 * K4; a < 12 * K4; a += K4) assertThat(tlb.lookup(1, a)).isEqualTo(-2);
        assertThat(tlb.lookup(1, 7 * K4)).isEqualTo(3);
        assertThat(tlb.lookup(1, 12 * K4)).isEqualTo(3);
        tlb.invalidateRange(1, v2, 16 * K4);
        assertThat(tlb.lookup(2, v2 + 9 * K4)).as("other VMID in the range").isEqualTo(3);
        tlb.invalidateRange(1, 7 * M2 - K4, 2 * K4);
        assertThat(tlb.lookup(1, 6 * M2)).isEqualTo(-2);
        assertThat(tlb.size()).isEqualTo(28);

        tlb.invalidateVmid(2);
        assertThat(tlb.lookup(2, v2)).isEqualTo(-2);
        assertThat(tlb.lookup(1, 0)).isEqualTo(3);
        assertThat(tlb.lookup(0, 9 * M2)).isEqualTo(2);
        assertThat(tlb.size()).isEqualTo(12);
        tlb.invalidateAll();
        assertThat(tlb.size()).isZero();
    }

    @Test
    void aFillMayEvictAnotherEntryOfTheSameSlotButNeverAliasesIt() {
        Tlb tlb = new Tlb("cpu0", Granule.G4K, 512, 64);
        tlb.fill(1, 0x5000, 3, PTE, tlb.generation());
        tlb.fill(2, 0x5000, 3, PTE + 0x1000, tlb.generation());
        assertThat(tlb.lookup(2, 0x5000)).isEqualTo(3);
        assertThat(tlb.cachedPte()).isEqualTo(PTE + 0x1000);
        assertThat(tlb.lookup(1, 0x5000)).isEqualTo(-2);
        tlb.fill(1, 0x5000 + 512 * K4, 3, PTE, tlb.generation()); // same slot, other address
        assertThat(tlb.lookup(1, 0x5000)).isEqualTo(-2);
        assertThat(tlb.lookup(2, 0x5000)).isEqualTo(-2);
        assertThat(tlb.lookup(1, 0x5000 + 512 * K4)).isEqualTo(3);
    }

    @Test
    void tlbSystemBroadcastsAndCountsByScope() {
        TlbSystem sys = new TlbSystem();
        Tlb a = new Tlb("cpu0", Granule.G4K), b = new Tlb("cpu1", Granule.G4K), gone = new Tlb("cpu2", Granule.G4K);
        sys.register(a);
        sys.register(b);
        sys.register(gone);
        sys.unregister(gone);
        Tlb[] all = {a, b, gone};
        Runnable fill = () -> {
            for (Tlb t : all) {
                for (long x = 0; x < 4 * K4; x += K4) t.fill(1, x, 3, PTE, t.generation());
                t.fill(0, 0x7000, 3, PTE, t.generation());
            }
        };
        fill.run();
        sys.flushVmidIpa(1, K4, 3);
        assertThat(a.lookup(1, K4)).isEqualTo(-2);
        assertThat(b.lookup(1, K4)).isEqualTo(-2);
        assertThat(gone.lookup(1, K4)).as("unregistered TLB untouched").isEqualTo(3);
        sys.flushVmidIpaLocal(a, 1, 2 * K4, TlbMaintenance.LEVEL_UNKNOWN);
        assertThat(a.lookup(1, 2 * K4)).isEqualTo(-2);
        assertThat(b.lookup(1, 2 * K4)).as("local: other CPUs keep theirs").isEqualTo(3);
        sys.flushVmidRange(1, 0, 2 * K4);
        assertThat(a.lookup(1, 0)).isEqualTo(-2);
        assertThat(b.lookup(1, 0)).isEqualTo(-2);
        assertThat(b.lookup(1, 3 * K4)).isEqualTo(3);
        sys.flushHypVa(0x7000, 3);
        assertThat(a.lookup(0, 0x7000)).isEqualTo(-2);
        assertThat(b.lookup(0, 0x7000)).isEqualTo(-2);
        sys.flushVmid(1);
        assertThat(b.lookup(1, 3 * K4)).isEqualTo(-2);
        assertThat(b.lookup(1, 2 * K4)).isEqualTo(-2);
        assertThat(sys.ipaFlushes()).isEqualTo(1);
        assertThat(sys.localIpaFlushes()).isEqualTo(1);
        assertThat(sys.rangeFlushes()).isEqualTo(1);
        assertThat(sys.hypVaFlushes()).isEqualTo(1);
        assertThat(sys.vmidFlushes()).isEqualTo(1);
        assertThat(sys.totalFlushes()).isEqualTo(5);
        sys.resetCounters();
        assertThat(sys.totalFlushes()).isZero();
    }

    @Test
    void vmidTaggedEntriesOfTwoTablesOnOneCpu() {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        Stage2PageTable other = new Stage2PageTable(f.table.geometry(), f.mem, f.tlbs, 8, 0);
        MemCache mc = new MemCache(f.mem);
        mc.topUp(4);
        f.map(0, K4, 0x8000_0000L, Prot.RW);
        other.map(0, K4, 0x9000_0000L, Prot.RW, mc);
        Mmu mmu = f.mmu;
        assertThat(mmu.translate(0x10, Access.READ)).isEqualTo(0x8000_0010L);
        mmu.load(other.rootPa(), 8);
        assertThat(mmu.translate(0x10, Access.READ)).isEqualTo(0x9000_0010L);
        assertThat(mmu.lastTlbHit()).as("VMID 7's entry is not used for VMID 8").isFalse();
        assertThat(mmu.translate(0x10, Access.READ)).isEqualTo(0x9000_0010L);
        assertThat(mmu.lastTlbHit()).isTrue();
        // unmapping in VMID 7 does not touch VMID 8's entry
        f.table.unmap(0, K4);
        assertThat(mmu.translate(0x10, Access.READ)).isEqualTo(0x9000_0010L);
        assertThat(mmu.lastTlbHit()).isTrue();
        mmu.load(f.table.rootPa(), Fixture.VMID);
        assertThat(Translation.isFault(mmu.translate(0x10, Access.READ))).isTrue();
        other.unmap(0, K4);
        other.destroy();
        mc.release();
        f.destroyAndCheck();
    }

    @Test
    void argumentsAreChecked() {
        assertThatThrownBy(() -> new Tlb("x", Granule.G4K, 3, 64)).hasMessageContaining("pageEntries: 3");
        assertThatThrownBy(() -> new Tlb("x", Granule.G4K, 512, 0)).hasMessageContaining("blockEntries: 0");
        assertThat(new Tlb("x", Granule.G16K, 1, 1).fill(1, 0, -1, PTE, 0)).isFalse();
        for (FaultType t : FaultType.values()) {
            for (int level = -1; level <= 3; level++) {
                long r = Translation.encodeFault(t, level);
                assertThat(Translation.isFault(r)).isTrue();
                assertThat(Translation.faultType(r)).isEqualTo(t);
                assertThat(Translation.faultLevel(r)).isEqualTo(level);
            }
        }
    }

    /**
     * One thread replaces a page's mapping again and again (BBM with TLBI each time) and publishes
     * how many replacements completed; another translates the page in a loop. A translation that
     * starts after replacement v completed must never return a PA older than v: that would be a
     * TLB entry filled from a descriptor read before the invalidation (the fill must be dropped).
     */
    @Test
    void concurrentReplacementsNeverLeaveAStaleTlbEntryBehind() throws Exception {
        Fixture f = new Fixture(Granule.G4K, 40, 0);
        long ipa = 0x4000_0000L, base = 0x8000_0000L;
        int rounds = 200_000;
        f.map(ipa, K4, base, Prot.RW); // version 0
        java.util.concurrent.atomic.AtomicInteger done = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicReference<String> problem = new java.util.concurrent.atomic.AtomicReference<>();
        Thread cpu = new Thread(() -> {
            Mmu mmu = f.mmu; // owned by this thread from now on
            while (done.get() < rounds && problem.get() == null) {
                int before = done.get();
                long r = mmu.translate(ipa, Access.READ);
                if (Translation.isFault(r)) continue; // transient: the entry is LOCKED during BBM
                long version = (r - base) / K4;
                if (version < before) {
                    problem.set("translation gave version " + version + " after version " + before + " completed (TLB hit "
                            + mmu.lastTlbHit() + ")");
                }
            }
        });
        cpu.start();
        for (int v = 1; v <= rounds && problem.get() == null; v++) {
            f.cache.topUp(4);
            f.table.map(ipa, K4, base + v * K4, Prot.RW, f.cache, 0);
            done.set(v);
        }
        cpu.join(30_000);
        assertThat(cpu.isAlive()).isFalse();
        assertThat(problem.get()).isNull();
        assertThat(f.tlbs.ipaFlushes()).isEqualTo(rounds);
        f.destroyAndCheck();
    }
}
