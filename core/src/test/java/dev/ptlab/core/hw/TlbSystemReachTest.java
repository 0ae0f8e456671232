package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import org.junit.jupiter.api.Test;

/**
 * {@link TlbSystem}'s sequences and explicit TLBIs: which entries they remove and keep, the
 * instructions they count, the TTL bounds, the range rounding and the LPA2 fallback of
 * {@code flushVmidRange} (tlb-and-two-stage.md §B, §C, §D), and the system-wide totals.
 */
class TlbSystemReachTest {
    static final int V = 3;
    static final long K4 = 0x1000;
    static final long PTE = 0x8000_0000L | 0x7C3;
    static final int UNKNOWN = TlbMaintenance.LEVEL_UNKNOWN;

    static Tlb tlb(TlbSystem s, String name) {
        Tlb t = new Tlb(name, Granule.G4K);
        s.register(t);
        return t;
    }

    static void pages(Tlb t, long from, int n) {
        for (int i = 0; i < n; i++) assertThat(t.fill(V, from + i * K4, 3, PTE, t.generation())).isTrue();
    }

    static boolean cached(Tlb t, long addr) {
        return t.lookup(V, addr) == 3;
    }

    @Test
    void rangeFlushRoundsOutToWholePages() {
        TlbSystem s = new TlbSystem();
        Tlb t = tlb(s, "cpu0");
        pages(t, 0x4000_0000L - K4, 4); // 0x3FFF_F000 .. 0x4000_2000
        // [0x4000_0800, 0x4000_1800) touches the pages at 0x4000_0000 and 0x4000_1000: two pages,
        // one RIPAS2E1IS of SCALE 0, NUM 0 (2 pages), no single-page TLBI.
        s.flushVmidRange(V, 0x4000_0800L, K4);
        assertThat(cached(t, 0x3FFF_F000L)).isTrue();
        assertThat(cached(t, 0x4000_0000L)).isFalse();
        assertThat(cached(t, 0x4000_1000L)).isFalse();
        assertThat(cached(t, 0x4000_2000L)).isTrue();
        assertThat(s.instructions(TlbiOp.RIPAS2E1IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.IPAS2E1IS)).isZero();
        assertThat(s.rangeFlushes()).isEqualTo(1);
    }

    @Test
    void rangeFlushEndingAtTheBaseAddrLimitStillUsesOperands() {
        // BaseADDR[36:0] counts 4K granules: IPAs below 2^49 encode. Three pages ending exactly at
        // 2^49 split as Linux does: one RIPAS2E1IS of 2 pages, then a lone IPAS2E1IS.
        TlbSystem s = new TlbSystem();
        Tlb t = tlb(s, "cpu0");
        long top = 1L << 49;
        pages(t, top - 4 * K4, 4);
        s.flushVmidRange(V, top - 3 * K4, 3 * K4);
        assertThat(s.instructions(TlbiOp.RIPAS2E1IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.IPAS2E1IS)).isEqualTo(1);
        assertThat(cached(t, top - 4 * K4)).isTrue();
        assertThat(cached(t, top - 3 * K4)).isFalse();
        assertThat(cached(t, top - K4)).isFalse();
    }

    @Test
    void rangeFlushBeyondTheBaseAddrLimitIsOneRangeOfTheSameReach() {
        TlbSystem s = new TlbSystem();
        Tlb t = tlb(s, "cpu0");
        long lpa2 = 1L << 49; // first IPA whose BaseADDR would need bit 37
        pages(t, lpa2 - K4, 4);
        s.flushVmidRange(V, lpa2, 2 * K4);
        assertThat(s.instructions(TlbiOp.RIPAS2E1IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.IPAS2E1IS)).isZero();
        assertThat(cached(t, lpa2 - K4)).isTrue();
        assertThat(cached(t, lpa2)).isFalse();
        assertThat(cached(t, lpa2 + K4)).isFalse();
        assertThat(cached(t, lpa2 + 2 * K4)).isTrue();
    }

    @Test
    void localLastLevelTlbiReachesOnlyTheIssuersLeaf() {
        TlbSystem s = new TlbSystem();
        Tlb a = tlb(s, "cpu0"), b = tlb(s, "cpu1");
        long ipa = 0x4000_5000L;
        for (Tlb t : new Tlb[] {a, b}) {
            t.fillWalk(V, ipa, 2, 0x10_0000_3003L, 0, t.generation());
            pages(t, ipa, 1);
        }
        s.ipas2le1(a, V, ipa, UNKNOWN);
        assertThat(s.pendingTlbis()).isEqualTo(1);
        assertThat(cached(a, ipa)).as("not complete before the DSB").isTrue();
        s.dsb();
        assertThat(cached(a, ipa)).isFalse();
        assertThat(a.walkEntryStillHeld(V, ipa, 2)).as("last-level form keeps the walk cache").isTrue();
        assertThat(cached(b, ipa)).as("non-shareable: the other CPU keeps it").isTrue();
        assertThat(s.instructions(TlbiOp.IPAS2LE1)).isEqualTo(1);
    }

    @Test
    void ttlHintsZeroToThreeAreAcceptedAndNarrowTheReach() {
        TlbSystem s = new TlbSystem();
        Tlb t = tlb(s, "cpu0");
        long ipa = 0x4000_5000L;
        pages(t, ipa, 1);
        s.ipas2e1is(V, ipa, 0); // a hint of level 0: the level-3 page is not required to go
        s.ipas2e1is(V, ipa, 2);
        s.dsb();
        assertThat(cached(t, ipa)).isTrue();
        s.ipas2e1is(V, ipa, 3);
        s.dsb();
        assertThat(cached(t, ipa)).isFalse();
        assertThatThrownBy(() -> s.ipas2e1is(V, ipa, 4)).isInstanceOf(PageTableException.class).hasMessageContaining("ttl");
        assertThatThrownBy(() -> s.ipas2e1is(V, ipa, -1)).isInstanceOf(PageTableException.class).hasMessageContaining("ttl");
        assertThat(s.instructions(TlbiOp.IPAS2E1IS)).isEqualTo(3);
    }

    @Test
    void hypVaFlushPicksTheLastLevelFormOnlyWithAHint() {
        TlbSystem s = new TlbSystem();
        tlb(s, "cpu0");
        s.flushHypVa(0xFFFF_8000_0000_0000L, UNKNOWN);
        assertThat(s.instructions(TlbiOp.VAE2IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.VALE2IS)).isZero();
        s.flushHypVa(0xFFFF_8000_0000_1000L, 3);
        assertThat(s.instructions(TlbiOp.VAE2IS)).isEqualTo(1);
        assertThat(s.instructions(TlbiOp.VALE2IS)).isEqualTo(1);
        assertThat(s.hypVaFlushes()).isEqualTo(2);
    }

    @Test
    void systemTotalsSumEveryRegisteredTlb() {
        TlbSystem s = new TlbSystem();
        Tlb a = tlb(s, "cpu0"), b = tlb(s, "cpu1");
        assertThat(s.tlbs()).containsExactly(a, b);
        // A page filled under a cached 2M block of the same VMID is one conflict per fill.
        long ipa = 0x4000_0000L;
        assertThat(a.fill(V, ipa, 2, PTE, a.generation())).isTrue();
        a.fill(V, ipa, 3, PTE, a.generation());
        assertThat(b.fill(V, ipa, 2, PTE, b.generation())).isTrue();
        b.fill(V, ipa, 3, PTE, b.generation());
        b.fill(V, ipa + K4, 3, PTE, b.generation());
        assertThat(a.conflicts()).isEqualTo(1);
        assertThat(b.conflicts()).isEqualTo(2);
        assertThat(s.conflicts()).isEqualTo(3);
        assertThat(TlbSystem.walkInvalidations(ipa, 2)).contains("level 2").contains("IPAS2E1IS").contains("VMALLS12E1IS");
    }
}
