package dev.ptlab.core.mem;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** {@link CacheMaintenance} counts calls and bytes per {@link CacheCounter}, one by one or a walk's totals at once. */
class CacheCounterTest {
    @Test
    void operationsAndWalkTotalsLandInTheirCounters() {
        CacheMaintenance c = new CacheMaintenance();
        c.dcacheCleanInvalPoc(0x1000, 4096);
        c.icacheInvalPou(0x2000, 2 << 20);
        c.record(3, 3 * 4096, 0, 0);
        assertThat(c.get(CacheCounter.DCACHE_OPS)).isEqualTo(4).isEqualTo(c.dcacheOps());
        assertThat(c.get(CacheCounter.DCACHE_BYTES)).isEqualTo(4 * 4096).isEqualTo(c.dcacheBytes());
        assertThat(c.get(CacheCounter.ICACHE_OPS)).isEqualTo(1).isEqualTo(c.icacheOps());
        assertThat(c.get(CacheCounter.ICACHE_BYTES)).isEqualTo(2 << 20).isEqualTo(c.icacheBytes());
        c.reset();
        for (CacheCounter k : CacheCounter.values()) assertThat(c.get(k)).as(k.key()).isZero();
    }
}
