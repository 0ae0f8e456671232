package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import org.junit.jupiter.api.Test;

/** What a VM refuses, told apart without reading messages. */
class VmErrorsTest {
    private static final long K4 = 4096;
    private static final long M2 = 2L << 20;
    private static final long G1 = 1L << 30;

    @Test
    void eagerSplitChunkValidIsWhatTheVmAccepts() {
        VmConfig c = VmConfig.defaults().withGranule(Granule.G4K).withIpaBits(40);
        for (long chunk : new long[] {0, M2, G1}) {
            assertThat(c.withEagerSplitChunk(chunk).eagerSplitChunkValid()).as("chunk %x", chunk).isTrue();
            new Vm(c.withEagerSplitChunk(chunk)).destroy();
        }
        for (long chunk : new long[] {K4, 3 * M2, 512 * G1}) {
            VmConfig bad = c.withEagerSplitChunk(chunk);
            assertThat(bad.eagerSplitChunkValid()).as("chunk %x", chunk).isFalse();
            assertThatThrownBy(() -> new Vm(bad)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageStartingWith("eager split chunk: ");
        }
        // 64K granule: 512M blocks at level 2, no 2M block.
        VmConfig g64 = VmConfig.defaults().withGranule(Granule.G64K).withIpaBits(42);
        assertThat(g64.withEagerSplitChunk(512L << 20).eagerSplitChunkValid()).isTrue();
        assertThat(g64.withEagerSplitChunk(M2).eagerSplitChunkValid()).isFalse();
    }
}
