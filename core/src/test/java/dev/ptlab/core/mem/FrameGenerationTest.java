package dev.ptlab.core.mem;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import org.junit.jupiter.api.Test;

/** A frame counts its frees, so a stale reference to a reused frame can be told from a live one. */
class FrameGenerationTest {
    private static final FrameAccess FRAMES = FrameAccess.grant();

    @Test
    void aFreedAndReusedFrameHasANewGenerationAndAFreedOneCannotBeRead() {
        PhysicalMemory m = new PhysicalMemory(0x1000_0000L, 1 << 20, Granule.G4K, true);
        long pa = m.allocate();
        int g0 = FRAMES.generation(m, pa);
        long[] live = FRAMES.frame(m, pa);
        m.put(pa);
        assertThat(FRAMES.generation(m, pa)).isEqualTo(g0 + 1);
        assertThatThrownBy(() -> FRAMES.frame(m, pa)).isInstanceOf(FrameAccessException.class).hasMessageContaining("freed");
        assertThat(live).as("poisoned while free").containsOnly(PhysicalMemory.POISON);

        long again = m.allocate();
        assertThat(again).as("the free stack hands the same frame out again").isEqualTo(pa);
        assertThat(FRAMES.frame(m, again)).isSameAs(live).containsOnly(0L);
        assertThat(FRAMES.generation(m, again)).as("live again, but not the frame a stale reader entered").isNotEqualTo(g0);
    }
}
