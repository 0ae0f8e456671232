package dev.ptlab.mm.device;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Folio;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.HostPte;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.MmException;
import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntUnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The kernel's hmm-tests device-exclusive cases (tools/testing/selftests/mm/hmm-tests.c:
 * exclusive, exclusive_mprotect, exclusive_cow; reference A.14) at the test's size and with its
 * fork concurrency, with the dmirror-like {@link MirrorDevice}, plus two devices ping-ponging one
 * page and a device descheduled in the middle of a conversion. Every case counts what the kernel
 * (6.15 to 7.1-rc4) would do: notifier events, restores, and the folio reference and map counts.
 */
class HmmExclusiveTest {
    /** hmm-tests.c: {@code HMM_BUFFER_SIZE (1024 << 12)}, 4 MiB whatever the page size. */
    private static final long HMM_BUFFER_SIZE = 1024 << 12;
    private static final long PAGE = Granule.G4K.pageSize();
    /** {@code npages = ALIGN(HMM_BUFFER_SIZE, page_size) >> page_shift}: 1024 with 4K pages. */
    private static final int NPAGES = (int) ((HMM_BUFFER_SIZE + PAGE - 1) / PAGE);
    /** The test's {@code int *ptr} walks {@code size / sizeof(*ptr)} ints: 1 048 576. */
    private static final int INTS = (int) (NPAGES * PAGE / 4);

    private Host host;
    private AddressSpace mm;
    private long buf;
    /** The dmirror device of the kernel test's fixture. */
    private MirrorDevice dev;

    @BeforeEach
    void setUp() {
        host = new Host(Granule.G4K, 64L << 20, 48, true);
        mm = host.newAddressSpace();
        buf = mm.mmap(0, NPAGES * PAGE, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        dev = new MirrorDevice(mm, "dmirror");
    }

    /**
     * The C tests' "Initialize buffer in system memory": {@code ptr[i] = i} over the first
     * {@code pages} pages (all of them for the hmm-tests cases; the other cases need a few).
     */
    private void initialize(int pages) {
        int n = (int) (pages * PAGE / 4);
        for (int i = 0; i < n; i++) mm.writeInt(buf + 4L * i, i);
    }

    @AfterEach
    void tearDown() {
        dev.close();
        for (AddressSpace a : new java.util.ArrayList<>(host.addressSpaces())) if (!a.closed()) a.close();
        assertThat(host.memory().pagesInUse()).as("data pages in use after every address space closed").isZero();
        assertThat(host.tableMemory().framesInUse()).as("table frames in use").isZero();
        assertThat(host.swapSlotsInUse()).isZero();
    }

    private Folio folioAt(AddressSpace as, long addr) {
        long pte = as.pte(addr);
        long pa = HostPte.isDeviceExclusive(pte) ? HostPte.swapOffset(pte) * PAGE : HostPte.pa(as.geometry(), pte);
        return host.memory().folioOf(pa);
    }

    /** Every page of the buffer in {@code as}: one folio, mapped once, referenced only by that mapping, unlocked. */
    private void assertSoleMappings(AddressSpace as) {
        for (int p = 0; p < NPAGES; p++) {
            Folio f = folioAt(as, buf + p * PAGE);
            assertThat(f.refcount()).as("refcount of page %d", p).isEqualTo(1);
            assertThat(f.mapcount()).as("mapcount of page %d", p).isEqualTo(1);
            assertThat(f.isLocked()).as("page %d locked", p).isFalse();
        }
    }

    /**
     * The first {@code i} in [0, INTS) with {@code value(i) != i + delta}, or -1: the C test's
     * per-int ASSERT_EQ, asserted once so a million ints stay cheap.
     */
    private static int firstMismatch(IntUnaryOperator value, int delta) {
        for (int i = 0; i < INTS; i++) if (value.applyAsInt(i) != i + delta) return i;
        return -1;
    }

    /**
     * The C test's CPU loop {@code ASSERT_EQ(ptr[i]++, i)} over every int of the buffer in
     * {@code as}: a read, then a write of the value plus one. Returns the first {@code i} that
     * read something other than {@code i}, or -1.
     */
    private int incrementEveryInt(AddressSpace as) {
        int bad = -1;
        for (int i = 0; i < INTS; i++) {
            long a = buf + 4L * i;
            int v = as.readInt(a);
            if (v != i && bad < 0) bad = i;
            as.writeInt(a, v + 1);
        }
        return bad;
    }

    private void assertDeviceExclusive(AddressSpace as, boolean expected) {
        for (int p = 0; p < NPAGES; p++) {
            assertThat(HostPte.isDeviceExclusive(as.pte(buf + p * PAGE))).as("page %d device-exclusive", p).isEqualTo(expected);
        }
    }

    @Test
    void exclusive() {
        initialize(NPAGES);
        assertThat(NPAGES).as("hmm-tests' npages with 4K pages").isEqualTo(1024);
        assertThat(dev.makeExclusive(buf, NPAGES)).as("cpages").isEqualTo(NPAGES);
        assertDeviceExclusive(mm, true);
        // 6.15: the entry keeps the mapping's reference and map count; the driver dropped its own.
        assertSoleMappings(mm);
        assertThat(mm.rss()).as("device-exclusive entries still count as resident").isEqualTo(NPAGES);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_CONVERSION)).isEqualTo(NPAGES);
        assertThat(mm.notifiers().count(NotifierEvent.EXCLUSIVE)).isEqualTo(NPAGES);
        assertThat(dev.count(MirrorDevice.Counter.OWN_EXCLUSIVE_IGNORED)).isEqualTo(NPAGES);
        assertThat(dev.checkExclusive(buf, NPAGES)).isTrue();
        assertThat(dev.atomicPages()).isEqualTo(NPAGES);
        host.checkInvariants(true);

        // The device reads through its atomic mappings: no fault, the CPU's values.
        int[] seen = dev.read(buf, INTS);
        assertThat(firstMismatch(i -> seen[i], 0)).as("first int the device read wrong").isEqualTo(-1);
        assertThat(dev.count(MirrorDevice.Counter.READ_FAULT)).isZero();

        // The CPU reads and increments every int: the first access to each page (a read) restores
        // it, writable because the VMA is, so the write after it does not fault again.
        assertThat(incrementEveryInt(mm)).as("first int the CPU read wrong").isEqualTo(-1);
        assertThat(firstMismatch(i -> mm.readInt(buf + 4L * i), 1)).as("first int not incremented").isEqualTo(-1);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(NPAGES);
        // 6.15+: a restore sends CLEAR with no owner; EXCLUSIVE stays the conversions' alone. No
        // other CLEAR here: no COW, no zap, no THP in a plain mmap'd 4 MiB.
        assertThat(mm.notifiers().count(NotifierEvent.EXCLUSIVE)).as("conversions only").isEqualTo(NPAGES);
        assertThat(mm.notifiers().count(NotifierEvent.CLEAR)).as("one per restore").isEqualTo(NPAGES);
        assertThat(dev.invalidations(NotifierEvent.CLEAR)).as("restores the device acted on").isEqualTo(NPAGES);
        assertThat(dev.invalidations(NotifierEvent.EXCLUSIVE)).isZero();
        assertThat(dev.count(MirrorDevice.Counter.ATOMIC_REVOKED)).isEqualTo(NPAGES);
        assertThat(dev.checkExclusive(buf, NPAGES)).as("CHECK_EXCLUSIVE: revoked everywhere").isFalse();
        assertThat(dev.mirroredPages()).isZero();
        assertThat(dev.atomicPages()).isZero();
        assertDeviceExclusive(mm, false);
        for (int p = 0; p < NPAGES; p++) assertThat(HostPte.isWrite(mm.pte(buf + p * PAGE))).isTrue();
        assertSoleMappings(mm);
        host.checkInvariants(true);
    }

    @Test
    void exclusiveMprotect() {
        initialize(NPAGES);
        assertThat(dev.makeExclusive(buf, NPAGES)).isEqualTo(NPAGES);
        int[] seen = dev.read(buf, INTS);
        assertThat(firstMismatch(i -> seen[i], 0)).as("first int the device read wrong").isEqualTo(-1);

        mm.mprotect(buf, NPAGES * PAGE, Mman.PROT_READ);
        assertThat(dev.invalidations(NotifierEvent.PROTECTION_VMA)).isEqualTo(1);
        assertThat(dev.mirroredPages()).as("the PROTECTION_VMA notifier dropped the mirror").isZero();
        assertThat(dev.checkExclusive(buf, NPAGES)).isFalse();
        // 6.15 leaves the entries alone; writability is decided at restore time.
        assertDeviceExclusive(mm, true);

        assertThatThrownBy(() -> dev.write(buf, new int[INTS]))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EPERM));
        assertThat(dev.mirroredPages()).isZero();
        assertThat(firstMismatch(i -> mm.readInt(buf + 4L * i), 0)).as("first int the CPU read wrong").isEqualTo(-1);
        // The CPU reads restored every entry read-only and clean (restore_exclusive_pte marks it
        // dirty only inside the VM_WRITE branch), though every folio is dirty from the setup writes.
        for (int p = 0; p < NPAGES; p++) {
            long pte = mm.pte(buf + p * PAGE);
            assertThat(HostPte.isPresent(pte) && !HostPte.isWrite(pte)).as("page %d present read-only", p).isTrue();
            assertThat(HostPte.isDirty(pte)).as("page %d restored clean", p).isFalse();
            assertThat(folioAt(mm, buf + p * PAGE).isDirty()).as("page %d's folio keeps its dirty flag", p).isTrue();
        }
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(NPAGES);
        assertSoleMappings(mm);
        host.checkInvariants(true);
    }

    @Test
    void exclusiveCow() throws Exception {
        initialize(NPAGES);
        assertThat(dev.makeExclusive(buf, NPAGES)).isEqualTo(NPAGES);

        AddressSpace child = mm.fork();
        // fork restored every entry before copying it, and told the device first.
        assertThat(mm.stats().count(MmEvent.FORK_RESTORE)).isEqualTo(NPAGES);
        assertThat(dev.invalidations(NotifierEvent.PROTECTION_PAGE)).isGreaterThanOrEqualTo(1);
        assertThat(dev.checkExclusive(buf, NPAGES)).isFalse();
        assertThat(dev.count(MirrorDevice.Counter.ATOMIC_REVOKED)).isEqualTo(NPAGES);
        assertDeviceExclusive(mm, false);
        assertDeviceExclusive(child, false);
        for (int p = 0; p < NPAGES; p++) {
            Folio f = folioAt(mm, buf + p * PAGE);
            assertThat(folioAt(child, buf + p * PAGE)).as("page %d shared after fork", p).isSameAs(f);
            assertThat(f.refcount()).isEqualTo(2);
            assertThat(f.mapcount()).isEqualTo(2);
            assertThat(HostPte.isWrite(mm.pte(buf + p * PAGE))).as("parent page %d write-protected (COW)", p).isFalse();
            assertThat(HostPte.isWrite(child.pte(buf + p * PAGE))).as("child page %d write-protected (COW)", p).isFalse();
        }
        host.checkInvariants(true);

        // fork() with no wait: parent and child run the test's two loops (increment every int,
        // then check every int) at the same time, each on its own thread.
        AddressSpace[] procs = {mm, child};
        int[][] bad = new int[2][2];
        AtomicReference<Throwable> failed = new AtomicReference<>();
        CyclicBarrier go = new CyclicBarrier(2);
        Thread[] threads = new Thread[2];
        for (int t = 0; t < 2; t++) {
            AddressSpace as = procs[t];
            int[] mine = bad[t];
            threads[t] = new Thread(() -> {
                try {
                    go.await(10, TimeUnit.SECONDS);
                    mine[0] = incrementEveryInt(as);
                    mine[1] = firstMismatch(i -> as.readInt(buf + 4L * i), 1);
                } catch (Throwable e) {
                    failed.compareAndSet(null, e);
                }
            }, t == 0 ? "parent" : "child");
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join(TimeUnit.SECONDS.toMillis(60));
            assertThat(t.isAlive()).as("%s finished", t.getName()).isFalse();
        }
        assertThat(failed.get()).isNull();
        for (int t = 0; t < 2; t++) {
            assertThat(bad[t][0]).as("%s: first int read other than i", threads[t].getName()).isEqualTo(-1);
            assertThat(bad[t][1]).as("%s: first int other than i+1", threads[t].getName()).isEqualTo(-1);
        }

        // Each process takes exactly one write fault per page (its entry is read-only; the reads
        // need none), resolved as a copy or a reuse: 2 * NPAGES in all. Only a process that finds
        // itself the page's only user reuses it, so at most one per page: reuses <= NPAGES. Which
        // one, and whether both copied (the second checked while the first still held the page),
        // depends on the interleaving, so the per-process split is not asserted.
        long copies = mm.stats().count(MmEvent.COW_COPY) + child.stats().count(MmEvent.COW_COPY);
        long reuses = mm.stats().count(MmEvent.COW_REUSE) + child.stats().count(MmEvent.COW_REUSE);
        assertThat(copies + reuses).as("one COW fault per page per process").isEqualTo(2L * NPAGES);
        assertThat(reuses).as("at most one reuse per page").isLessThanOrEqualTo(NPAGES);
        assertSoleMappings(mm);
        assertSoleMappings(child);
        for (int p = 0; p < NPAGES; p++) assertThat(folioAt(child, buf + p * PAGE)).isNotSameAs(folioAt(mm, buf + p * PAGE));
        // Two private pages per buffer page, nothing else: an original page was either reused by
        // one process or freed once both had copied it.
        assertThat(host.memory().pagesInUse()).isEqualTo(2L * NPAGES);
        host.checkInvariants(true);
    }

    @Test
    void twoDevicesPingPongOnePage() {
        initialize(4);
        MirrorDevice a = new MirrorDevice(mm, "gpu-a");
        MirrorDevice b = new MirrorDevice(mm, "gpu-b");
        long addr = buf + 3 * PAGE + 40;
        int start = mm.readInt(addr);
        int rounds = 25;
        for (int r = 0; r < rounds; r++) {
            a.atomicAdd(addr, 1);
            assertThat(a.hasAtomicAccess(addr)).as("round %d: a converted", r).isTrue();
            assertThat(b.hasAtomicAccess(addr)).as("round %d: a's steal revoked b", r).isFalse();
            b.atomicAdd(addr, 1);
            assertThat(b.hasAtomicAccess(addr)).as("round %d: b converted", r).isTrue();
            assertThat(a.hasAtomicAccess(addr)).as("round %d: b's steal revoked a", r).isFalse();
        }
        assertThat(b.read(addr, 1)[0]).isEqualTo(start + 2 * rounds);
        assertThat(a.count(MirrorDevice.Counter.CONVERSION)).isEqualTo(rounds);
        assertThat(b.count(MirrorDevice.Counter.CONVERSION)).isEqualTo(rounds);
        assertThat(a.count(MirrorDevice.Counter.ATOMIC_FAULT)).isEqualTo(rounds);
        assertThat(a.count(MirrorDevice.Counter.ATOMIC_REVOKED)).isEqualTo(rounds);
        assertThat(b.count(MirrorDevice.Counter.ATOMIC_REVOKED)).isEqualTo(rounds - 1);
        // Each steal restores the other device's entry inside the stealer's own read section; the
        // stealer recognises that restore as its own and its sequence check still passes.
        assertThat(a.count(MirrorDevice.Counter.CONVERSION_RESTORE)).isEqualTo(rounds - 1);
        assertThat(b.count(MirrorDevice.Counter.CONVERSION_RESTORE)).isEqualTo(rounds);
        assertThat(a.count(MirrorDevice.Counter.CONVERSION_RETRY)).isZero();
        assertThat(b.count(MirrorDevice.Counter.CONVERSION_RETRY)).isZero();
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_CONVERSION)).isEqualTo(2 * rounds);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(2 * rounds - 1);
        Folio f = folioAt(mm, addr);
        assertThat(f.refcount()).isEqualTo(1);
        assertThat(f.mapcount()).isEqualTo(1);
        assertThat(mm.readInt(addr)).isEqualTo(start + 2 * rounds);
        assertThat(b.hasAtomicAccess(addr)).as("the CPU read revoked the last owner").isFalse();
        host.checkInvariants(true);
        a.close();
        b.close();
    }

    @Test
    void aConversionWhoseGupBreaksCowIsNotTakenForItsOwnRestore() {
        // Since 6.15 a restore and a COW break both send a one-page CLEAR with no owner on the
        // converting thread. Only the restore keeps the page (and so may leave the device's
        // sequence alone); the COW break replaces it and must fail the check like any other
        // invalidation. So: attempt 1's GUP copies the page (CLEAR, acted on) and converts the
        // copy, then fails its check; attempt 2's GUP restores attempt 1's entry (this device's
        // own restore: ignored, counted) and converts again, and maps. Were the COW break taken
        // for a restore, attempt 1 would map: no retry, one conversion, no CLEAR acted on.
        initialize(4);
        AddressSpace child = mm.fork();
        assertThat(dev.makeExclusive(buf + PAGE, 1)).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.COW_COPY)).as("GUP for write broke COW").isEqualTo(1);
        assertThat(dev.invalidations(NotifierEvent.CLEAR)).as("the COW break, acted on").isEqualTo(1);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION_RETRY)).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_CONVERSION)).isEqualTo(2);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION_RESTORE)).as("attempt 2 restoring attempt 1's entry").isEqualTo(1);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION)).isEqualTo(1);
        assertThat(dev.hasAtomicAccess(buf + PAGE)).isTrue();
        assertThat(child.readInt(buf + PAGE)).isEqualTo((int) (PAGE / 4));
        child.close();
    }

    // ------------------------------------------------------------------------------------------
    // A device whose thread the scheduler stops in the middle of a conversion (issue 16): being
    // slow is not losing. The pause is a whole-space notifier registered after the device's
    // subscription that holds the converting thread inside its own EXCLUSIVE invalidation, after
    // readBegin and before the sequence check: exactly where a descheduled driver thread would
    // sit. Only lost races, MAX_LOST_RACES of them in a row, may make the device give up.

    /** Runs {@code whileConverting} on the converting thread inside each of the device's own EXCLUSIVE invalidations. */
    private MmuNotifier onOwnConversion(Runnable whileConverting) {
        MmuNotifier n = new MmuNotifier() {
            @Override
            public void invalidateRangeStart(NotifierRange range) {
                if (range.event() == NotifierEvent.EXCLUSIVE && range.owner() == dev) whileConverting.run();
            }
        };
        mm.notifiers().register(n);
        return n;
    }

    /** An invalidation of another page of the buffer, as another thread's munmap or reclaim would send. */
    private void invalidateOtherPage() {
        NotifierRange r = new NotifierRange(buf + 3 * PAGE, buf + 4 * PAGE, NotifierEvent.CLEAR, null);
        mm.notifiers().invalidateRangeStart(r);
        mm.notifiers().invalidateRangeEnd(r);
    }

    @Test
    void aConversionDescheduledPastTheTimeoutThatThenLosesOneRaceTriesAgainAndSucceeds() throws Exception {
        initialize(4);
        AtomicInteger paused = new AtomicInteger();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        long start = System.nanoTime();
        onOwnConversion(() -> {
            if (paused.getAndIncrement() != 0) return;
            // Another thread invalidates while this one is stopped: this attempt is lost.
            Thread other = new Thread(() -> {
                try {
                    invalidateOtherPage();
                } catch (Throwable t) {
                    failed.set(t);
                }
            }, "other-invalidator");
            other.start();
            try {
                other.join(10_000);
                // And the scheduler keeps this thread off the CPU past nouveau's 1 s.
                Thread.sleep(TimeUnit.NANOSECONDS.toMillis(MirrorDevice.TIMEOUT_NANOS) + 200);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        });

        assertThat(dev.makeExclusive(buf, 1)).isEqualTo(1);

        assertThat(failed.get()).isNull();
        assertThat(System.nanoTime() - start).as("the first attempt really took longer than the timeout")
                .isGreaterThan(MirrorDevice.TIMEOUT_NANOS);
        assertThat(paused.get()).as("two attempts").isEqualTo(2);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION_RETRY)).as("one lost race").isEqualTo(1);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION)).isEqualTo(1);
        assertThat(dev.hasAtomicAccess(buf)).isTrue();
    }

    @Test
    void anAtomicWhoseConversionIsDescheduledLosesNothingAndAddsOnce() {
        initialize(4);
        AtomicInteger paused = new AtomicInteger();
        onOwnConversion(() -> {
            if (paused.getAndIncrement() != 0) return;
            try {
                Thread.sleep(TimeUnit.NANOSECONDS.toMillis(MirrorDevice.TIMEOUT_NANOS) + 200);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        });

        assertThat(dev.atomicAdd(buf + 2 * PAGE, 5)).isEqualTo(2 * INTS / NPAGES);

        assertThat(paused.get()).as("one attempt: slow is not lost").isEqualTo(1);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION_RETRY)).isZero();
        assertThat(mm.readInt(buf + 2 * PAGE)).isEqualTo(2 * INTS / NPAGES + 5);
    }

    @Test
    void aConversionThatLosesEveryRaceGivesUpOnlyAfterMaxLostRacesInARowSpanningTheTimeout() {
        initialize(4);
        AtomicInteger attempts = new AtomicInteger();
        // Every attempt loses: an invalidation lands between its readBegin and its check.
        onOwnConversion(() -> {
            attempts.incrementAndGet();
            invalidateOtherPage();
        });
        long start = System.nanoTime();

        assertThatThrownBy(() -> dev.makeExclusive(buf, 1)).isInstanceOfSatisfying(MmException.class, e -> {
            assertThat(e.errno()).isEqualTo(Errno.EBUSY);
            assertThat(e.getMessage()).contains("a conversion lost ").contains(" races in a row to invalidations");
        });

        assertThat(System.nanoTime() - start).isGreaterThanOrEqualTo(MirrorDevice.TIMEOUT_NANOS);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION_RETRY)).isGreaterThanOrEqualTo(MirrorDevice.MAX_LOST_RACES)
                .isEqualTo(attempts.get());
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION)).isZero();
    }
}
