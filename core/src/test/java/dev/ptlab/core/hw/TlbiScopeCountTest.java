package dev.ptlab.core.hw;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** {@link TlbSystem} counts each invalidation under its own {@link TlbiScope}, and resets them all. */
class TlbiScopeCountTest {
    @Test
    void eachOperationCountsUnderItsScope() {
        TlbSystem s = new TlbSystem();
        s.flushVmidIpa(1, 0x1000, 3);
        s.flushVmidIpaLocal(null, 1, 0x1000, 3);
        s.flushVmidIpaLocal(null, 1, 0x2000, 3);
        s.flushVmidRange(1, 0, 1 << 21);
        s.flushVmid(1);
        s.flushHypVa(0x4000, 3);
        s.flushHypVa(0x5000, 3);
        assertThat(s.flushes(TlbiScope.IPA)).isEqualTo(1).isEqualTo(s.ipaFlushes());
        assertThat(s.flushes(TlbiScope.IPA_LOCAL)).isEqualTo(2).isEqualTo(s.localIpaFlushes());
        assertThat(s.flushes(TlbiScope.RANGE)).isEqualTo(1).isEqualTo(s.rangeFlushes());
        assertThat(s.flushes(TlbiScope.VMID)).isEqualTo(1).isEqualTo(s.vmidFlushes());
        assertThat(s.flushes(TlbiScope.HYP_VA)).isEqualTo(2).isEqualTo(s.hypVaFlushes());
        assertThat(s.totalFlushes()).isEqualTo(7);
        assertThat(TlbiScope.HYP_VA.stage2()).isFalse();
        assertThat(TlbiScope.IPA_LOCAL.key()).isEqualTo("tlbi-local");
        s.resetCounters();
        for (TlbiScope scope : TlbiScope.values()) assertThat(s.flushes(scope)).as(scope.name()).isZero();
    }
}
