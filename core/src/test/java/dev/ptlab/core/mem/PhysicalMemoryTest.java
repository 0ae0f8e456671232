package dev.ptlab.core.mem;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Simulated physical memory: frames, zeroing, refcounts, contiguous allocation, checking mode. */
class PhysicalMemoryTest {

    private static final long BASE = 0x1_0000_0000L;
    private static final long PAGE = 4096;

    private static PhysicalMemory mem(int frames, boolean checking) {
        return new PhysicalMemory(BASE, frames * PAGE, Granule.G4K, checking);
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    @ParameterizedTest
    @EnumSource(Granule.class)
    void allocationReturnsZeroedGranuleFramesWithRefcountOne(Granule g) {
        PhysicalMemory m = new PhysicalMemory(BASE, 8 * g.pageSize(), g, false);
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < 8; i++) {
            long pa = m.allocate();
            assertThat(seen.add(pa)).as("distinct frames").isTrue();
            assertThat(pa & g.pageMask()).as("granule aligned").isZero();
            assertThat(m.contains(pa)).isTrue();
            assertThat(m.count(pa)).isEqualTo(1);
            assertThat(m.isLive(pa)).isTrue();
            long[] t = m.table(pa);
            assertThat(t).hasSize(g.entriesPerTable()).containsOnly(0L);
        }
    }

    @Test
    void reusedFramesAreZeroedAgain() {
        for (boolean checking : new boolean[] {false, true}) {
            PhysicalMemory m = mem(1, checking);
            long pa = m.allocate();
            long[] t = m.table(pa);
            for (int i = 0; i < t.length; i++) t[i] = 0x1234_0000L + i;
            m.free(pa);
            // one frame only: the next allocation must reuse it, and it must be zero again
            long again = m.allocate();
            assertThat(again).isEqualTo(pa);
            assertThat(m.table(again)).containsOnly(0L);
            assertThat(m.count(again)).isEqualTo(1);
        }
    }

    @Test
    void getPutCountAndFreeOnZero() {
        PhysicalMemory m = mem(4, true);
        long pa = m.allocate();
        m.get(pa);
        m.get(pa + 8); // any address inside the frame names the frame
        assertThat(m.count(pa)).isEqualTo(3);
        assertThat(m.count(pa + PAGE - 8)).isEqualTo(3);
        m.put(pa);
        m.put(pa);
        assertThat(m.count(pa)).isEqualTo(1);
        assertThat(m.isLive(pa)).isTrue();
        assertThat(m.framesInUse()).isEqualTo(1);
        m.put(pa);
        assertThat(m.count(pa)).isZero();
        assertThat(m.isLive(pa)).isFalse();
        assertThat(m.framesInUse()).isZero();
        assertThat(m.frees()).isEqualTo(1);
    }

    @Test
    void exclusiveGetPutBehaveTheSame() {
        PhysicalMemory m = mem(2, true);
        long pa = m.allocate();
        m.getExclusive(pa);
        assertThat(m.count(pa)).isEqualTo(2);
        m.putExclusive(pa);
        assertThat(m.count(pa)).isEqualTo(1);
        m.putExclusive(pa);
        assertThat(m.isLive(pa)).isFalse();
        assertThatThrownBy(() -> m.putExclusive(pa)).isInstanceOf(FrameAccessException.class).hasMessageContaining(hex(pa));
        assertThatThrownBy(() -> m.getExclusive(pa)).isInstanceOf(FrameAccessException.class).hasMessageContaining(hex(pa));
    }

    @Test
    void concurrentGetPutPairsLeaveTheCountUnchanged() throws Exception {
        PhysicalMemory m = mem(1, true);
        long pa = m.allocate();
        int threads = 4, rounds = 20_000;
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread th = new Thread(() -> {
                try {
                    go.await();
                } catch (InterruptedException e) {
                    return;
                }
                for (int i = 0; i < rounds; i++) {
                    m.get(pa);
                    m.put(pa);
                }
            });
            ts.add(th);
            th.start();
        }
        go.countDown();
        for (Thread th : ts) th.join();
        assertThat(m.count(pa)).isEqualTo(1);
        assertThat(m.isLive(pa)).isTrue();
    }

    @Test
    void freedFramesAreReusedWhenMemoryIsFull() {
        PhysicalMemory m = mem(4, false);
        long[] pas = new long[4];
        for (int i = 0; i < 4; i++) pas[i] = m.allocate();
        m.put(pas[2]);
        assertThat(m.allocate()).isEqualTo(pas[2]);
        m.free(pas[0]);
        m.free(pas[3]);
        Set<Long> again = Set.of(m.allocate(), m.allocate());
        assertThat(again).containsExactlyInAnyOrder(pas[0], pas[3]);
    }

    @Test
    void outOfMemoryIsEnomemWithAClearMessage() {
        PhysicalMemory m = mem(2, false);
        m.allocate();
        m.allocate();
        PageTableException e = catchThrowableOfType(PageTableException.class, m::allocate);
        assertThat(e).isNotNull();
        assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
        assertThat(e.kernelReturn()).isEqualTo(-12);
        assertThat(e.getMessage())
                .contains("[" + hex(BASE) + ", " + hex(BASE + 2 * PAGE) + ")")
                .contains("no free frame")
                .contains("2 of 2 in use")
                .endsWith("(ENOMEM)");
        assertThat(m.framesInUse()).isEqualTo(2);

        PhysicalMemory small = mem(3, false);
        PageTableException c = catchThrowableOfType(PageTableException.class, () -> small.allocateContiguous(4));
        assertThat(c.errno()).isEqualTo(Errno.ENOMEM);
        assertThat(c.getMessage()).contains("4 contiguous free frames");
        assertThat(small.framesInUse()).isZero();
    }

    // ---- contiguous allocation --------------------------------------------------------------

    private static void assertContiguousAligned(PhysicalMemory m, long pa, int n, Set<Long> live) {
        long page = m.granule().pageSize();
        assertThat(pa % (n * page)).as("PA %s aligned to %d frames", hex(pa), n).isZero();
        for (int i = 0; i < n; i++) {
            long f = pa + i * page;
            assertThat(m.contains(f)).isTrue();
            assertThat(m.isLive(f)).isTrue();
            assertThat(m.count(f)).isEqualTo(1);
            assertThat(m.table(f)).containsOnly(0L);
            assertThat(live.add(f)).as("frame %s handed out twice", hex(f)).isTrue();
        }
    }

    @Test
    void contiguousFramesAreAlignedToTheirCount() {
        PhysicalMemory m = mem(256, true);
        Set<Long> live = new HashSet<>();
        live.add(m.allocate()); // disturb the alignment of the next free frame
        for (int n : new int[] {2, 16, 4, 8, 3, 16, 1, 2}) {
            long pa = m.allocateContiguous(n);
            assertContiguousAligned(m, pa, n, live);
        }
        // frames skipped for alignment are not lost: every frame can still be allocated
        while (m.framesInUse() < m.frameCount()) assertThat(live.add(m.allocate())).isTrue();
        assertThat(live).hasSize(256);
    }

    /** The alignment hardware needs is of the physical address, whatever the memory's base. */
    @Test
    void contiguousAlignmentIsOfThePhysicalAddressNotTheFrameIndex() {
        for (long base : new long[] {0x1000L, 0x4000_3000L, 0x8000_5000L}) {
            PhysicalMemory m = new PhysicalMemory(base, 128 * PAGE, Granule.G4K, true);
            Set<Long> live = new HashSet<>();
            for (int n : new int[] {2, 4, 8, 16}) {
                assertContiguousAligned(m, m.allocateContiguous(n), n, live);
            }
        }
        PhysicalMemory m64 = new PhysicalMemory(0x3_0000L, 64 * 65536L, Granule.G64K, true);
        assertContiguousAligned(m64, m64.allocateContiguous(4), 4, new HashSet<>());
    }

    @Test
    void contiguousAllocationReusesFreedRunsWhenTheTopIsExhausted() {
        PhysicalMemory m = mem(32, true);
        long a = m.allocateContiguous(16);
        long b = m.allocateContiguous(16);
        assertThat(m.framesInUse()).isEqualTo(32);
        m.freeContiguous(a, 16);
        assertThat(m.framesInUse()).isEqualTo(16);
        long c = m.allocateContiguous(16);
        assertThat(c).isEqualTo(a); // the only 16 free frames
        Set<Long> live = new HashSet<>();
        for (int i = 0; i < 16; i++) live.add(b + i * PAGE);
        // c's frames are live, zero, count 1 and distinct from b's
        for (int i = 0; i < 16; i++) {
            assertThat(live.add(c + i * PAGE)).isTrue();
            assertThat(m.count(c + i * PAGE)).isEqualTo(1);
        }
        // a fragmented hole is not a contiguous run
        m.free(c + 3 * PAGE);
        m.free(c + 9 * PAGE);
        assertThatThrownBy(() -> m.allocateContiguous(2)).isInstanceOf(PageTableException.class);
    }

    /** A free run may consist of freed frames followed by never-used ones at the top of memory. */
    @Test
    void contiguousRunMayStraddleFreedAndNeverUsedFrames() {
        PhysicalMemory m = mem(4, true);
        long f0 = m.allocate(), f1 = m.allocate(), f2 = m.allocate();
        m.put(f2);
        // frames 2 (freed) and 3 (never used) are the one aligned free pair
        long pa = m.allocateContiguous(2);
        assertThat(pa).isEqualTo(BASE + 2 * PAGE);
        assertContiguousAligned(m, pa, 2, new HashSet<>(Set.of(f0, f1)));
        assertThat(m.framesInUse()).isEqualTo(4);
        assertThatThrownBy(m::allocate).isInstanceOf(PageTableException.class);
    }

    @Test
    void contiguousCountIsChecked() {
        PhysicalMemory m = mem(4, false);
        for (int n : new int[] {0, -1, 65}) {
            PageTableException e = catchThrowableOfType(PageTableException.class, () -> m.allocateContiguous(n));
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e).hasMessage("n: " + n + " is outside 1..64 (EINVAL)");
        }
    }

    // ---- checking mode ----------------------------------------------------------------------

    @Test
    void checkingModePoisonsFreedFramesAndRejectsReads() {
        PhysicalMemory m = mem(4, true);
        long pa = m.allocate();
        long[] stale = m.table(pa);
        m.put(pa);
        // a stale array reference sees the poison, which is never a valid descriptor
        assertThat(stale).containsOnly(PhysicalMemory.POISON);
        assertThat(PhysicalMemory.POISON & 1).isZero();
        FrameAccessException e = catchThrowableOfType(FrameAccessException.class, () -> m.table(pa));
        assertThat(e).isNotNull();
        assertThat(e.getMessage()).contains("freed").contains(hex(pa));
        // a frame never handed out is not readable either
        long never = BASE + 3 * PAGE;
        assertThatThrownBy(() -> m.table(never)).isInstanceOf(FrameAccessException.class).hasMessageContaining(hex(never));
    }

    @Test
    void withoutCheckingFreedFramesAreNotPoisoned() {
        PhysicalMemory m = mem(2, false);
        long pa = m.allocate();
        long[] t = m.table(pa);
        t[5] = 42;
        m.free(pa);
        assertThat(t[5]).isEqualTo(42);
    }

    @Test
    void doubleFreeAndUseAfterFreeAreDetected() {
        for (boolean checking : new boolean[] {false, true}) {
            PhysicalMemory m = mem(4, checking);
            long pa = m.allocate();
            m.free(pa);
            assertThatThrownBy(() -> m.free(pa)).isInstanceOf(FrameAccessException.class)
                    .hasMessage("double free of frame " + hex(pa));
            assertThatThrownBy(() -> m.put(pa)).isInstanceOf(FrameAccessException.class).hasMessageContaining(hex(pa));
            assertThatThrownBy(() -> m.get(pa)).isInstanceOf(FrameAccessException.class).hasMessageContaining(hex(pa));
            // the failed get did not resurrect the frame
            assertThat(m.isLive(pa)).isFalse();
            assertThat(m.framesInUse()).isZero();
        }
    }

    @Test
    void addressesOutsideTheMemoryAreRejected() {
        PhysicalMemory m = mem(4, true);
        long outside = BASE + 4 * PAGE;
        assertThat(m.contains(outside)).isFalse();
        assertThat(m.contains(BASE - 1)).isFalse();
        assertThatThrownBy(() -> m.count(outside)).isInstanceOf(FrameAccessException.class)
                .hasMessage("PA " + hex(outside) + " is not a frame of [" + hex(BASE) + ", " + hex(outside) + ")");
        assertThatThrownBy(() -> m.free(BASE + 8)).isInstanceOf(FrameAccessException.class).hasMessageContaining(hex(BASE + 8));
        assertThatThrownBy(() -> m.table(BASE - PAGE)).isInstanceOf(FrameAccessException.class);
    }

    @Test
    void accounting() {
        PhysicalMemory m = mem(16, true);
        SplittableRandom rnd = new SplittableRandom(99);
        List<Long> live = new ArrayList<>();
        long allocs = 0, frees = 0, peak = 0;
        for (int i = 0; i < 2000; i++) {
            if (live.size() < 16 && (live.isEmpty() || rnd.nextBoolean())) {
                live.add(m.allocate());
                allocs++;
                peak = Math.max(peak, live.size());
            } else {
                long pa = live.remove(rnd.nextInt(live.size()));
                if (rnd.nextBoolean()) m.free(pa); else m.put(pa);
                frees++;
            }
            assertThat(m.framesInUse()).isEqualTo(live.size());
        }
        assertThat(m.allocations()).isEqualTo(allocs);
        assertThat(m.frees()).isEqualTo(frees);
        assertThat(m.peakFramesInUse()).isEqualTo(peak);
    }

    @Test
    void constructorArgumentsAreChecked() {
        PageTableException e = catchThrowableOfType(PageTableException.class,
                () -> new PhysicalMemory(0x1800, 0x10000, Granule.G4K, false));
        assertThat(e.errno()).isEqualTo(Errno.EINVAL);
        assertThat(e.getMessage()).startsWith("base: 0x1800 ").contains("4k");
        e = catchThrowableOfType(PageTableException.class, () -> new PhysicalMemory(0, 0, Granule.G4K, false));
        assertThat(e.getMessage()).startsWith("size: 0x0 ");
        e = catchThrowableOfType(PageTableException.class, () -> new PhysicalMemory(0, 0x1000, Granule.G16K, false));
        assertThat(e.getMessage()).startsWith("size: 0x1000 ").contains("16k");
        assertThatThrownBy(() -> new PhysicalMemory(0, 0x1000, null, false)).isInstanceOf(IllegalArgumentException.class);
    }
}
