package dev.ptlab.core.conc;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.check.TlbChecker;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.hw.TwoStageRig;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Stage-2 unmap without the VMALLE1IS that KVM's {@code __kvm_tlb_flush_vmid_ipa} issues after
 * IPAS2E1IS (Linux 7.1-rc4 hyp/nvhe/tlb.c): while the guest holds a combined VA→PA entry for the
 * IPA, the TLBI by IPA does not reach it (D8.17.6.1), so the guest keeps reaching the freed PA.
 * The mutant is {@link TlbiScopeMutationTest.Mutant} with {@code IPA_WITHOUT_VMALLE1}.
 */
class CombinedEntryMutationTest {
    static final long VA = 0x1234_5678_0000L;
    static final long IPA = 0x8024_0000L;
    static final long PA = 0x2_0000_0000L;

    static TwoStageRig guestUsing(TwoStageRig r) {
        r.s1.map(VA, 0x1000, IPA, Prot.RW, false, true);
        r.mapS2(IPA, 0x1000, PA, Prot.RW);
        assertThat(r.mmu.translate(VA, Access.WRITE)).isEqualTo(PA); // combined entry cached
        r.s2.unmap(IPA, 0x1000);
        return r;
    }

    @Test
    void stageTwoUnmapWithoutVmalle1isLeavesAStaleCombinedEntry() {
        TwoStageRig bad = guestUsing(new TwoStageRig(Granule.G4K, 64,
                t -> new TlbiScopeMutationTest.Mutant(t, TlbiScopeMutationTest.Mutation.IPA_WITHOUT_VMALLE1)));
        List<TlbChecker.StaleCombined> stale = TlbChecker.staleCombinedEntries(bad.mmu);
        assertThat(stale).hasSize(1);
        assertThat(stale.get(0).toString()).contains("cpu0", "VA 0x123456780000", "cached PA 0x200000000",
                "stage-2 translation fault", "IPA 0x80240000", "VMALLE1IS", "IPAS2E1IS is not required");
        // And the guest still writes the unmapped PA through its cached entry.
        assertThat(bad.mmu.translate(VA, Access.WRITE)).isEqualTo(PA);
        assertThat(bad.mmu.lastTlbHit()).isTrue();

        TwoStageRig ok = guestUsing(new TwoStageRig(Granule.G4K, 64));
        assertThat(TlbChecker.staleCombinedEntries(ok.mmu)).isEmpty();
        assertThat(Translation.isStage2Fault(ok.mmu.translate(VA, Access.WRITE))).isTrue();
    }
}
