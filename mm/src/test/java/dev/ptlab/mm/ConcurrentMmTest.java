package dev.ptlab.mm;

import static dev.ptlab.mm.MmFixture.M2;
import static dev.ptlab.mm.MmFixture.PAGE;
import static dev.ptlab.mm.MmFixture.PRIVATE;
import static dev.ptlab.mm.MmFixture.RW;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * CPU threads, a device and a host thread on one address space at once: CPU atomics on their own
 * word of each page, a device that makes pages exclusive and adds to its own word through the
 * locked folio, and reclaim, aging, page-out, fork (with the child writing and exiting) and THP
 * splits on the side. No increment may be lost, nothing may deadlock, and at the end the
 * cross-space invariants hold with no extra references and every frame comes back.
 */
class ConcurrentMmTest {
    private static final int CPUS = 2;
    private static final int ITERATIONS = 3000;

    @Test
    void cpusDeviceAndHostThreadKeepEveryIncrement() throws Exception {
        Host host = MmFixture.host(1);
        AddressSpace mm = host.newAddressSpace();
        long len = 2 * M2;
        long a = mm.mmap(0, len, RW, PRIVATE);
        mm.madvise(a, M2, Mman.MADV_HUGEPAGE); // the first 2M as a THP, the rest pages
        int pages = (int) (len / PAGE);
        int[][] expected = new int[CPUS + 1][pages];
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CyclicBarrier go = new CyclicBarrier(CPUS + 2);
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < CPUS; c++) {
            int cpu = c;
            threads.add(new Thread(() -> run(failure, go, () -> {
                SplittableRandom rnd = new SplittableRandom(cpu);
                for (int i = 0; i < ITERATIONS; i++) {
                    int p = rnd.nextInt(pages);
                    mm.getAndAddInt(a + p * PAGE + 4L * cpu, 1);
                    expected[cpu][p]++;
                }
            }), "cpu-" + c));
        }
        threads.add(new Thread(() -> run(failure, go, () -> {
            SplittableRandom rnd = new SplittableRandom(99);
            for (int i = 0; i < ITERATIONS / 3; i++) {
                int p = rnd.nextInt(pages);
                Folio f = mm.makeDeviceExclusive(a + p * PAGE, "device");
                try {
                    f.getAndAddInt(4L * CPUS, 1); // the device's atomic, under its exclusive access
                    expected[CPUS][p]++;
                } finally {
                    f.unlock();
                    f.put();
                }
            }
        }), "device"));
        threads.add(new Thread(() -> run(failure, go, () -> {
            SplittableRandom rnd = new SplittableRandom(7);
            for (int i = 0; i < ITERATIONS / 3; i++) {
                int p = rnd.nextInt(pages);
                switch (rnd.nextInt(5)) {
                    case 0: mm.reclaimPage(a + p * PAGE); break;
                    case 1: mm.age(a, len); break;
                    case 2: mm.madvise(a + p * PAGE, 4 * PAGE, Mman.MADV_PAGEOUT); break;
                    case 3: {
                        AddressSpace child;
                        try {
                            child = mm.fork();
                        } catch (MmException e) {
                            break; // ENOMEM: the device held a folio lock; nothing changed
                        }
                        child.writeInt(a + p * PAGE + 4L * (CPUS + 1), 5);
                        child.close();
                        break;
                    }
                    default: {
                        GupResult r = new GupResult();
                        mm.getUserPage(a + p * PAGE, rnd.nextBoolean() ? Mman.FOLL_SPLIT_PMD : 0, r);
                        r.folio.put();
                    }
                }
            }
        }), "host"));
        for (Thread t : threads) t.start();
        for (Thread t : threads) {
            t.join(120_000);
            if (t.isAlive()) {
                StringBuilder dump = new StringBuilder();
                for (Thread x : threads) {
                    dump.append(x.getName()).append(' ').append(x.getState()).append('\n');
                    for (StackTraceElement e : x.getStackTrace()) dump.append("    ").append(e).append('\n');
                }
                throw new AssertionError("deadlock or livelock:\n" + dump);
            }
        }
        if (failure.get() != null) throw new AssertionError("a thread failed", failure.get());
        host.checkInvariants(true);
        for (int p = 0; p < pages; p++) {
            for (int who = 0; who <= CPUS; who++) {
                assertThat(mm.readInt(a + p * PAGE + 4L * who)).as("page %d word %d", p, who).isEqualTo(expected[who][p]);
            }
            assertThat(mm.readInt(a + p * PAGE + 4L * (CPUS + 1))).as("the children's writes stayed theirs").isZero();
        }
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_CONVERSION)).isEqualTo(ITERATIONS / 3);
        mm.close();
        MmFixture.assertAllReturned(host);
    }

    private static void run(AtomicReference<Throwable> failure, CyclicBarrier go, Runnable body) {
        try {
            go.await();
            body.run();
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        }
    }
}
