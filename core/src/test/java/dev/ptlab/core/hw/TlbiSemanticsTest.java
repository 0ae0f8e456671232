package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import org.junit.jupiter.api.Test;

/**
 * Each TLBI instruction's reach over leaf and walk-cache entries (tlb-and-two-stage.md §B.1, §C,
 * §D), completion at DSB, local vs broadcast, the operand encodings against the reference's worked
 * examples, and the instructions each {@link TlbMaintenance} sequence stands for.
 */
class TlbiSemanticsTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;
    static final long PTE = 0x8000_0000L | 0x7C3;
    static final long TABLE = 0x10_0000_3003L;
    static final int V = 4;
    static final int UNKNOWN = TlbMaintenance.LEVEL_UNKNOWN;

    /** A TLB holding, for IPA G1 + 0x5000: walk entries at levels 1 and 2, and the level-3 page. */
    static Tlb filled(TlbSystem s, String name) {
        Tlb t = new Tlb(name, Granule.G4K);
        s.register(t);
        long gen = t.generation();
        assertThat(t.fillWalk(V, G1 + 0x5000, 1, TABLE, 0, gen)).isTrue();
        assertThat(t.fillWalk(V, G1 + 0x5000, 2, TABLE + K4, 0, gen)).isTrue();
        assertThat(t.fill(V, G1 + 0x5000, 3, PTE, gen)).isTrue();
        return t;
    }

    /** "L1 L2 | L3": which walk levels and whether the page is still cached for G1 + 0x5000. */
    static String held(Tlb t) {
        StringBuilder sb = new StringBuilder();
        t.forEachWalkEntry((vmid, level, base, pte, gen) -> sb.append("W").append(level).append(' '));
        return sb.append(t.lookup(V, G1 + 0x5000) == 3 ? "page" : "-").toString();
    }

    @Test
    void walkLookupReturnsTheDeepestCachedTableAtOrBelowTheStartLevel() {
        TlbSystem s = new TlbSystem();
        Tlb t = filled(s, "cpu0");
        assertThat(t.walkLookup(V, G1 + 0x1F_FFFF, 1)).isEqualTo(2); // same 2M span
        assertThat(t.cachedWalkPte()).isEqualTo(TABLE + K4);
        assertThat(t.walkLookup(V, G1 + M2, 1)).as("next 2M: only the level-1 entry covers it").isEqualTo(1);
        assertThat(t.cachedWalkPte()).isEqualTo(TABLE);
        assertThat(t.walkLookup(V, 2 * G1, 1)).isEqualTo(-2);
        assertThat(t.walkLookup(V + 1, G1, 1)).as("other VMID").isEqualTo(-2);
        assertThat(t.walkLookup(V, G1, 2)).as("start level 2: never the level-1 entry").isEqualTo(2);
        assertThat(t.walkSize()).isEqualTo(2);
        assertThat(t.size()).as("leaves only").isEqualTo(1);
    }

    @Test
    void anyLevelFormsReachTheWalkCacheLastLevelFormsDoNot() {
        TlbSystem s = new TlbSystem();
        Tlb a = filled(s, "cpu0");
        s.ipas2le1is(V, G1 + 0x5000, UNKNOWN);
        s.dsb();
        assertThat(held(a)).isEqualTo("W1 W2 -");

        Tlb b = filled(new TlbSystem(), "cpu1");
        TlbSystem sb = new TlbSystem();
        sb.register(b);
        sb.ipas2e1is(V, G1 + 0x5000, UNKNOWN);
        sb.dsb();
        assertThat(held(b)).isEqualTo("-");
    }

    @Test
    void aTtlHintReachesItsLevelsLeafAndTheWalkAboveItOnly() {
        // Hint 3 (the page's level): the page and the level-1/2 table descriptors of its walk.
        TlbSystem s3 = new TlbSystem();
        Tlb t3 = filled(s3, "cpu0");
        s3.ipas2e1is(V, G1 + 0x5000, 3);
        s3.dsb();
        assertThat(held(t3)).isEqualTo("-");
        // Hint 2 (wrong for the page): the level-1 descriptor goes; the level-2 one and the page stay.
        TlbSystem s2 = new TlbSystem();
        Tlb t2 = filled(s2, "cpu0");
        s2.ipas2e1is(V, G1 + 0x5000, 2);
        s2.dsb();
        assertThat(held(t2)).isEqualTo("W2 page");
        // Last level with the right hint: the page only.
        TlbSystem sl = new TlbSystem();
        Tlb tl = filled(sl, "cpu0");
        sl.ipas2le1is(V, G1 + 0x5000, 3);
        sl.dsb();
        assertThat(held(tl)).isEqualTo("W1 W2 -");
        assertThatThrownBy(() -> sl.ipas2e1is(V, 0, 4)).isInstanceOf(PageTableException.class).hasMessageStartingWith("ttl: 4 ");
    }

    @Test
    void entriesStayUntilTheDsbCompletesTheTlbi() {
        TlbSystem s = new TlbSystem();
        Tlb t = filled(s, "cpu0");
        s.ipas2e1is(V, G1 + 0x5000, UNKNOWN);
        s.vmalls12e1is(V);
        assertThat(s.pendingTlbis()).isEqualTo(2);
        assertThat(held(t)).as("issued, not complete").isEqualTo("W1 W2 page");
        s.dsb();
        assertThat(s.pendingTlbis()).isZero();
        assertThat(held(t)).isEqualTo("-");
        assertThat(s.instructions(TlbiOp.IPAS2E1IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.VMALLS12E1IS)).isEqualTo(1);
    }

    @Test
    void localFormsReachTheIssuersTlbOnlyBroadcastFormsEveryTlb() {
        TlbSystem s = new TlbSystem();
        Tlb me = filled(s, "cpu0");
        Tlb other = filled(s, "cpu1");
        s.ipas2e1(me, V, G1 + 0x5000, UNKNOWN);
        s.dsb();
        assertThat(held(me)).isEqualTo("-");
        assertThat(held(other)).isEqualTo("W1 W2 page");
        s.ipas2e1is(V, G1 + 0x5000, UNKNOWN);
        s.dsb();
        assertThat(held(other)).isEqualTo("-");
        assertThatThrownBy(() -> s.ipas2le1(null, V, 0, UNKNOWN)).isInstanceOf(PageTableException.class)
                .hasMessageStartingWith("local: null is null");
    }

    @Test
    void vmalle1isReachesNoStageTwoEntryVmalls12e1isReachesAllOfTheVmidOnly() {
        TlbSystem s = new TlbSystem();
        Tlb t = filled(s, "cpu0");
        t.fill(V + 1, 0x7000, 3, PTE, t.generation());
        s.vmalle1is(V);
        s.dsb();
        assertThat(held(t)).isEqualTo("W1 W2 page");
        s.vmalls12e1is(V);
        s.dsb();
        assertThat(held(t)).isEqualTo("-");
        assertThat(t.lookup(V + 1, 0x7000)).as("other VMID").isEqualTo(3);
    }

    @Test
    void operandsEncodeAsTheReferenceWorkedExamples() {
        // §C: IPA 0x8000_1000, 4K page at level 3: TTL 0b0111 in [47:44], IPA[47:12] = 0x80001.
        assertThat(TlbiOperand.ipa(Granule.G4K, 0x8000_1000L, 3)).isEqualTo(0x0000_7000_0008_0001L);
        assertThat(TlbiOperand.ipaOf(0x0000_7000_0008_0001L)).isEqualTo(0x8000_1000L);
        assertThat(TlbiOperand.ttlOf(0x0000_7000_0008_0001L, Granule.G4K)).isEqualTo(3);
        assertThat(TlbiOperand.ttlOf(0x0000_7000_0008_0001L, Granule.G64K)).as("a 4K hint is wrong for 64K").isEqualTo(-1);
        assertThat(TlbiOperand.ttlOf(0x8_0001L, Granule.G4K)).isEqualTo(UNKNOWN);
        // §D: 4K, 512 pages at 0x4000_0000: one RIPAS2E1IS, SCALE 1, NUM 7.
        assertThat(TlbiOperand.split(Granule.G4K, G1, 512)).containsExactly(0x0000_5380_0004_0000L);
        assertThat(TlbiOperand.rangePages(0x0000_5380_0004_0000L)).isEqualTo(512);
        assertThat(TlbiOperand.rangeBase(0x0000_5380_0004_0000L)).isEqualTo(G1);
        // 3 pages: SCALE 0 NUM 0 covers 2, the lone third page is a non-range IPAS2E1IS.
        assertThat(TlbiOperand.split(Granule.G4K, G1, 3)).containsExactly(
                TlbiOperand.range(Granule.G4K, G1, 0, 0, UNKNOWN), TlbiOperand.ipa(Granule.G4K, G1 + 2 * K4, UNKNOWN) | TlbiOperand.SINGLE);
        // 2^21 + 1 pages: one full SCALE-3 chunk (NUM 31), then the lone page.
        assertThat(TlbiOperand.split(Granule.G4K, 0, (1L << 21) + 1)).containsExactly(
                TlbiOperand.range(Granule.G4K, 0, 3, 31, UNKNOWN), TlbiOperand.ipa(Granule.G4K, 8L << 30, UNKNOWN) | TlbiOperand.SINGLE);
    }

    @Test
    void aRangeTlbiReachesItsRangeAtItsTtlAndOnlyTlbsOfItsGranule() {
        TlbSystem s = new TlbSystem();
        Tlb t = filled(s, "cpu0");
        long after = G1 + M2; // the first page past a 2M range
        t.fill(V, after, 3, PTE, t.generation());
        // Range TTL 2 (level-2 leaves): neither the page nor the level-2 table descriptor is a level-2 leaf.
        s.ripas2e1is(V, TlbiOperand.range(Granule.G4K, G1, 1, 7, 2));
        s.dsb();
        assertThat(held(t)).isEqualTo("W2 page"); // the level-1 walk entry is above the hinted level
        s.ripas2le1is(V, TlbiOperand.range(Granule.G4K, G1, 1, 7, UNKNOWN));
        s.dsb();
        assertThat(held(t)).isEqualTo("W2 -");
        // TG 16K: a 4K TLB need not be reached (RXKMMX), and is not.
        s.ripas2e1is(V, TlbiOperand.range(Granule.G16K, G1, 1, 7, UNKNOWN));
        s.dsb();
        assertThat(held(t)).isEqualTo("W2 -");
        s.ripas2e1is(V, TlbiOperand.range(Granule.G4K, G1, 1, 7, UNKNOWN));
        s.dsb();
        assertThat(held(t)).isEqualTo("-");
        assertThat(t.lookup(V, after)).as("just past the range").isEqualTo(3);
    }

    @Test
    void eachSequenceIssuesTheInstructionsKvmIssues() {
        TlbSystem s = new TlbSystem();
        Tlb t = filled(s, "cpu0");
        s.flushVmidIpa(V, G1, 3); // __kvm_tlb_flush_vmid_ipa
        assertThat(s.instructions(TlbiOp.IPAS2E1IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.VMALLE1IS)).isEqualTo(1);
        s.flushVmidIpaLocal(t, V, G1, 3);
        assertThat(s.instructions(TlbiOp.IPAS2E1)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.VMALLE1)).isEqualTo(1);
        s.flushVmidRange(V, G1, 3 * K4); // SCALE 0 NUM 0 + a lone page, then VMALLE1IS
        assertThat(s.instructions(TlbiOp.RIPAS2E1IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.IPAS2E1IS)).isEqualTo(2);
        assertThat(s.instructions(TlbiOp.VMALLE1IS)).isEqualTo(2);
        s.flushVmid(V);
        assertThat(s.instructions(TlbiOp.VMALLS12E1IS)).isEqualTo(1);
        s.flushHypVa(0x1000, 3);
        s.flushHypVa(0x1000, UNKNOWN);
        assertThat(s.instructions(TlbiOp.VALE2IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.VAE2IS)).isEqualTo(1);
        assertThat(s.ipaFlushes()).as("sequence counts unchanged").isEqualTo(1);
        assertThat(s.rangeFlushes()).isEqualTo(1);
    }

    @Test
    void strictReplacementNeverEvicts() {
        Tlb t = new Tlb("cpu0", Granule.G4K, 1, 1, 1); // one slot per level
        t.setStrict(true);
        assertThat(t.fill(V, 0x1000, 3, PTE, t.generation())).isTrue();
        assertThat(t.fill(V, 0x2000, 3, PTE, t.generation())).as("slot taken: not cached").isFalse();
        assertThat(t.lookup(V, 0x1000)).isEqualTo(3);
        assertThat(t.fillWalk(V, 0, 2, TABLE, 0, t.generation())).isTrue();
        assertThat(t.fillWalk(V, M2, 2, TABLE, 0, t.generation())).isFalse();
        Tlb evicting = new Tlb("cpu1", Granule.G4K, 1, 1, 1);
        evicting.fill(V, 0x1000, 3, PTE, evicting.generation());
        assertThat(evicting.fill(V, 0x2000, 3, PTE, evicting.generation())).isTrue();
        assertThat(evicting.lookup(V, 0x1000)).as("evicted").isEqualTo(-2);
        Tlb none = new Tlb("cpu2", Granule.G4K, 1, 1, 0);
        assertThat(none.fillWalk(V, 0, 2, TABLE, 0, none.generation())).as("no walk cache").isFalse();
        assertThatThrownBy(() -> new Tlb("x", Granule.G4K, 1, 1, 3)).isInstanceOf(PageTableException.class)
                .hasMessageStartingWith("walkEntries: 3 is neither 0 nor a power of two");
    }
}
