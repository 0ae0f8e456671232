package dev.ptlab.core.mem;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The pre-filled frame cache walkers allocate tables from (the kernel's kvm_mmu_memory_cache). */
class MemCacheTest {

    private static PhysicalMemory mem(int frames) {
        return new PhysicalMemory(0x8000_0000L, frames * 4096L, Granule.G4K, true);
    }

    @Test
    void topUpBelowTheMinimumFillsToCapacityAsTheKernel() {
        // kvm_mmu_topup_memory_cache: below min, fill to KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE (40 on
        // arm64), so the next faults need none. (Before: filled to min only, 2 frames here.)
        PhysicalMemory m = mem(128);
        MemCache c = new MemCache(m);
        assertThat(c.capacity()).isEqualTo(40);
        assertThat(c.size()).isZero();
        c.topUp(2);
        assertThat(c.size()).isEqualTo(40);
        assertThat(m.framesInUse()).isEqualTo(40);
        assertThat(c.refills()).isEqualTo(1);
        // At or above min: nothing allocated, not a refill, even though below capacity.
        for (int i = 0; i < 38; i++) c.allocate();
        c.topUp(2);
        assertThat(c.size()).isEqualTo(2);
        assertThat(c.refills()).isEqualTo(1);
        // One below min: back to capacity, one more refill.
        c.allocate();
        c.topUp(2);
        assertThat(c.size()).isEqualTo(40);
        assertThat(c.refills()).isEqualTo(2);
        // A min above the capacity (the kernel WARNs) fills to min.
        c.topUp(45);
        assertThat(c.size()).isEqualTo(45);
        assertThat(c.refills()).isEqualTo(3);
        assertThat(c.memory()).isSameAs(m);
    }

    @Test
    void capacityIsSettable() {
        // The eager-split cache: capacity = min = the frames of one split chunk.
        PhysicalMemory m = mem(64);
        MemCache c = new MemCache(m, 5);
        c.topUp(5);
        assertThat(c.size()).isEqualTo(5);
        c.allocate();
        c.topUp(1); // 4 >= 1: nothing
        assertThat(c.size()).isEqualTo(4);
        assertThat(m.framesInUse()).isEqualTo(5);
        assertThat(catchThrowableOfType(PageTableException.class, () -> new MemCache(m, 0)).argument())
                .isEqualTo("capacity");
    }

    @Test
    void runningOutAfterTheMinimumIsNotAnError() {
        // __kvm_mmu_topup_memory_cache: an allocation failure returns 0 when nobjs >= min.
        PhysicalMemory m = mem(5);
        MemCache c = new MemCache(m);
        c.topUp(3);
        assertThat(c.size()).isEqualTo(5);
        assertThat(c.refills()).isEqualTo(1);
        c.release();
        assertThat(m.framesInUse()).isZero();
    }

    @Test
    void allocateHandsOutDistinctZeroedLiveFrames() {
        PhysicalMemory m = mem(16);
        MemCache c = new MemCache(m, 8);
        c.topUp(8);
        Set<Long> seen = new HashSet<>();
        for (int i = 8; i > 0; i--) {
            long pa = c.allocate();
            assertThat(c.size()).isEqualTo(i - 1);
            assertThat(seen.add(pa)).isTrue();
            assertThat(m.isLive(pa)).isTrue();
            assertThat(m.count(pa)).isEqualTo(1);
            assertThat(m.table(pa)).containsOnly(0L);
        }
        // allocating from the cache does not allocate from memory again
        assertThat(m.framesInUse()).isEqualTo(8);
    }

    @Test
    void emptyCacheIsEnomemWithAMessage() {
        MemCache c = new MemCache(mem(4), 1);
        PageTableException e = catchThrowableOfType(PageTableException.class, c::allocate);
        assertThat(e).isNotNull();
        assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
        assertThat(e.kernelReturn()).isEqualTo(-12);
        assertThat(e.getMessage()).contains("memory cache is empty").endsWith("(ENOMEM)");
        c.topUp(1);
        c.allocate();
        assertThatThrownBy(c::allocate).isInstanceOf(PageTableException.class).hasMessageContaining("empty");
    }

    @Test
    void releaseReturnsEveryCachedFrame() {
        PhysicalMemory m = mem(16);
        MemCache c = new MemCache(m, 10);
        c.topUp(10);
        long kept = c.allocate();
        c.release();
        assertThat(c.size()).isZero();
        // only the frame taken out of the cache is still allocated
        assertThat(m.framesInUse()).isEqualTo(1);
        assertThat(m.isLive(kept)).isTrue();
        assertThat(m.frees()).isEqualTo(9);
    }

    @Test
    void giveBackMakesAFrameAvailableAgain() {
        PhysicalMemory m = mem(4);
        MemCache c = new MemCache(m, 1);
        c.topUp(1);
        long pa = c.allocate();
        c.giveBack(pa);
        assertThat(c.size()).isEqualTo(1);
        assertThat(c.allocate()).isEqualTo(pa);
        assertThat(m.framesInUse()).isEqualTo(1);
    }

    @Test
    void topUpBeyondPhysicalMemoryIsEnomemAndKeepsWhatItGot() {
        PhysicalMemory m = mem(3);
        MemCache c = new MemCache(m);
        PageTableException e = catchThrowableOfType(PageTableException.class, () -> c.topUp(5));
        assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
        assertThat(c.size()).isEqualTo(3);
        c.release();
        assertThat(m.framesInUse()).isZero();
    }

    @Test
    void badArguments() {
        PageTableException e = catchThrowableOfType(PageTableException.class, () -> new MemCache(mem(1)).topUp(-1));
        assertThat(e.errno()).isEqualTo(Errno.EINVAL);
        assertThat(e).hasMessage("min: -1 is negative (EINVAL)");
        assertThatThrownBy(() -> new MemCache(null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("memory: null");
    }
}
