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
import dev.ptlab.mm.notify.NotifierEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The mm's device-exclusive corner cases (zap, reclaim, fork and a CPU fault while the driver
 * holds the folio lock; reference A.5-A.12), with the mirror device as the driver: what the
 * device sees of each (which invalidation, whether it keeps atomic access) and that the memory
 * it and the CPU share stays coherent. The mm-level counts of the same paths are checked by
 * dev.ptlab.mm.DeviceExclusiveTest.
 */
class DeviceInTheLoopTest {
    private static final long PAGE = Granule.G4K.pageSize();

    private final Host host = new Host(Granule.G4K, 64L << 20, 48, true);
    private final AddressSpace mm = host.newAddressSpace();
    private final MirrorDevice dev = new MirrorDevice(mm, "dmirror");

    private long buffer(int pages) {
        long a = mm.mmap(0, pages * PAGE, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        for (int i = 0; i < pages; i++) mm.writeInt(a + i * PAGE, 100 + i);
        return a;
    }

    private Folio folioAt(long addr) {
        long pte = mm.pte(addr);
        long pa = HostPte.isDeviceExclusive(pte) ? HostPte.swapOffset(pte) * PAGE : HostPte.pa(mm.geometry(), pte);
        return host.memory().folioOf(pa);
    }

    @AfterEach
    void tearDown() {
        dev.close();
        assertThat(dev.mirroredPages()).isZero();
        for (AddressSpace a : new ArrayList<>(host.addressSpaces())) if (!a.closed()) a.close();
        assertThat(host.memory().pagesInUse()).isZero();
        assertThat(host.swapSlotsInUse()).isZero();
        assertThat(host.tableMemory().framesInUse()).isZero();
    }

    @Test
    void cpuFaultWaitsWhileTheDeviceHoldsTheFolioLockThenRevokesIt() throws Exception {
        long a = buffer(2);
        AtomicReference<Thread> cpu = new AtomicReference<>();
        AtomicReference<Throwable> cpuError = new AtomicReference<>();
        int[] cpuSaw = {-1};
        dev.whileLocked = page -> {
            // The device has just added under its atomic mapping and still holds the lock: a CPU
            // increment must wait for it, and must not take the device's access away yet.
            Thread t = new Thread(() -> {
                try {
                    cpuSaw[0] = mm.getAndAddInt(a + 8, 1000);
                } catch (Throwable e) {
                    cpuError.set(e);
                }
            }, "cpu");
            cpu.set(t);
            t.start();
            awaitWaiting(t);
            assertThat(HostPte.isDeviceExclusive(mm.pte(a))).isTrue();
            assertThat(dev.hasAtomicAccess(a)).as("exclusive while the driver holds the lock").isTrue();
            assertThat(dev.invalidations(NotifierEvent.CLEAR)).isZero();
        };
        assertThat(dev.atomicAdd(a + 8, 5)).isZero();
        dev.whileLocked = null;
        cpu.get().join(TimeUnit.SECONDS.toMillis(10));
        assertThat(cpu.get().isAlive()).isFalse();
        assertThat(cpuError.get()).isNull();
        assertThat(cpuSaw[0]).as("the CPU saw the device's add").isEqualTo(5);
        assertThat(dev.hasAtomicAccess(a)).as("the CPU fault revoked the device").isFalse();
        // The restore's CLEAR (6.15+; EXCLUSIVE is the conversion's alone, which the device ignores).
        assertThat(dev.invalidations(NotifierEvent.CLEAR)).isEqualTo(1);
        assertThat(dev.invalidations(NotifierEvent.EXCLUSIVE)).isZero();
        assertThat(dev.count(MirrorDevice.Counter.ATOMIC_REVOKED)).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.FAULT_RETRY)).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        // The device faults again for its next atomic and sees the CPU's add.
        assertThat(dev.atomicAdd(a + 8, 1)).isEqualTo(1005);
        assertThat(dev.count(MirrorDevice.Counter.ATOMIC_FAULT)).isEqualTo(2);
        assertThat(mm.readInt(a + 8)).isEqualTo(1006);
        host.checkInvariants(true);
    }

    private static void awaitWaiting(Thread t) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (t.getState() != Thread.State.WAITING && System.nanoTime() < deadline) Thread.onSpinWait();
        assertThat(t.getState()).as("CPU thread blocked on the folio lock").isEqualTo(Thread.State.WAITING);
    }

    @Test
    void zapRevokesTheDeviceAndFreesThePages() {
        long a = buffer(4);
        assertThat(dev.makeExclusive(a, 4)).isEqualTo(4);
        assertThat(host.memory().pagesInUse()).isEqualTo(4);
        mm.madvise(a, 2 * PAGE, Mman.MADV_DONTNEED);
        assertThat(dev.invalidations(NotifierEvent.CLEAR)).isEqualTo(1);
        assertThat(dev.checkExclusive(a, 2)).isFalse();
        assertThat(dev.checkExclusive(a + 2 * PAGE, 2)).as("outside the zapped range").isTrue();
        assertThat(host.memory().pagesInUse()).isEqualTo(2);
        // The device reads the zapped pages again: fresh zero pages, faulted in through GUP.
        assertThat(dev.read(a, 1)[0]).isZero();
        assertThat(dev.count(MirrorDevice.Counter.READ_FAULT)).isEqualTo(1);
        host.checkInvariants(true);

        mm.munmap(a, 4 * PAGE);
        assertThat(dev.invalidations(NotifierEvent.UNMAP)).isEqualTo(1);
        assertThat(dev.mirroredPages()).isZero();
        assertThat(mm.stats().count(MmEvent.ZAPPED_PAGE)).isEqualTo(2 + 3);
        assertThat(host.memory().pagesInUse()).isZero();
        assertThatThrownBy(() -> dev.read(a, 1)).isInstanceOfSatisfying(MmException.class,
                e -> assertThat(e.errno()).isEqualTo(Errno.EFAULT));
        host.checkInvariants(true);
    }

    @Test
    void reclaimRevokesTheDeviceAndTheDeviceSwapsItBackIn() {
        long a = buffer(2);
        dev.atomicAdd(a + PAGE + 12, 77);
        // Not while the driver holds the folio lock.
        dev.whileLocked = page -> assertThat(mm.reclaimPage(page)).isFalse();
        dev.atomicAdd(a, 1);
        dev.whileLocked = null;
        assertThat(dev.checkExclusive(a, 2)).isTrue();

        assertThat(mm.reclaimPage(a + PAGE)).isTrue();
        assertThat(HostPte.isSwap(mm.pte(a + PAGE))).isTrue();
        assertThat(dev.invalidations(NotifierEvent.CLEAR)).isEqualTo(1);
        assertThat(dev.hasAtomicAccess(a + PAGE)).isFalse();
        assertThat(dev.hasAtomicAccess(a)).isTrue();
        assertThat(host.swapSlotsInUse()).isEqualTo(1);
        host.checkInvariants(true);
        // The device's next atomic swaps the page in (through the conversion's GUP) and sees its earlier add.
        assertThat(dev.atomicAdd(a + PAGE + 12, 1)).isEqualTo(77);
        assertThat(mm.stats().count(MmEvent.SWAP_IN)).isEqualTo(1);
        assertThat(host.swapSlotsInUse()).isZero();
        assertThat(dev.hasAtomicAccess(a + PAGE)).isTrue();
        assertThat(mm.readInt(a + PAGE + 12)).isEqualTo(78);
        host.checkInvariants(true);
    }

    @Test
    void forkFailsWhileTheDeviceHoldsTheLockAndTheDeviceKeepsAccess() {
        long a = buffer(2);
        dev.makeExclusive(a + PAGE, 1);
        MmException[] failed = new MmException[1];
        dev.whileLocked = page -> {
            try {
                mm.fork();
            } catch (MmException e) {
                failed[0] = e;
            }
        };
        dev.atomicAdd(a, 3);
        dev.whileLocked = null;
        assertThat(failed[0]).isNotNull();
        assertThat(failed[0].errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host.addressSpaces()).containsExactly(mm);
        // Nothing was sent, so the device still has both pages.
        assertThat(dev.invalidationCounts()).isEmpty();
        assertThat(dev.checkExclusive(a, 1)).isTrue();
        assertThat(dev.checkExclusive(a + PAGE, 1)).isTrue();
        host.checkInvariants(true);

        // Once unlocked, fork restores both entries and the device loses them.
        AddressSpace child = mm.fork();
        assertThat(dev.invalidations(NotifierEvent.PROTECTION_PAGE)).isGreaterThanOrEqualTo(1);
        assertThat(dev.checkExclusive(a, 2)).isFalse();
        assertThat(mm.stats().count(MmEvent.FORK_RESTORE)).isEqualTo(2);
        assertThat(child.readInt(a)).isEqualTo(103);
        host.checkInvariants(true);
    }

    @Test
    void closeDropsTheMirrorAndStopsNotifications() {
        long a = buffer(3);
        dev.makeExclusive(a, 3);
        dev.close();
        assertThat(dev.mirroredPages()).isZero();
        assertThatThrownBy(() -> dev.atomicAdd(a, 1)).isInstanceOf(IllegalStateException.class).hasMessage("device dmirror: closed");
        mm.munmap(a, 3 * PAGE);
        assertThat(dev.invalidationCounts()).isEmpty();
        assertThat(host.memory().pagesInUse()).isZero();
    }

    @Test
    void rejectsBadArguments() {
        long a = buffer(1);
        assertThatThrownBy(() -> dev.read(a + 2, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("addr: 0x" + Long.toHexString(a + 2));
        assertThatThrownBy(() -> dev.read(a, -1)).isInstanceOf(IllegalArgumentException.class).hasMessage("nInts: -1 is negative");
        assertThatThrownBy(() -> dev.makeExclusive(a + 4, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("is not aligned to the page size");
        assertThatThrownBy(() -> dev.makeExclusive(a, 0)).isInstanceOf(IllegalArgumentException.class).hasMessage("nPages: 0 is not positive");
        assertThatThrownBy(() -> new MirrorDevice(mm, "")).isInstanceOf(IllegalArgumentException.class);
        long shared = mm.mmap(0, PAGE, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED | Mman.MAP_ANONYMOUS);
        assertThatThrownBy(() -> dev.makeExclusive(shared, 1)).isInstanceOfSatisfying(MmException.class,
                e -> assertThat(e.errno()).isEqualTo(Errno.EOPNOTSUPP));
    }

    /**
     * Two devices and two CPU threads add to the ints of a few shared pages at once while a
     * fifth thread reclaims them to swap: devices steal each page from each other, the CPUs take
     * it back, and reclaim moves it to a new folio each time it is swapped in again, thousands
     * of times. A device that kept a mapping the host no longer has would add to a freed or
     * reused folio and lose the update; every add must land exactly once.
     */
    @Test
    void devicesAndCpusAddConcurrentlyWithoutLosingAnUpdate() throws Exception {
        int pages = 4;
        long a = buffer(pages);
        long base = 0;
        for (int i = 0; i < pages; i++) base += 100 + i;
        MirrorDevice other = new MirrorDevice(mm, "gpu");
        int opsEach = 20_000;
        List<Thread> threads = new ArrayList<>();
        CyclicBarrier go = new CyclicBarrier(5);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        java.util.concurrent.atomic.AtomicInteger addersLeft = new java.util.concurrent.atomic.AtomicInteger(4);
        long[] reclaimed = {0};
        for (int t = 0; t < 4; t++) {
            int id = t;
            threads.add(new Thread(() -> {
                SplittableRandom rnd = new SplittableRandom(id);
                try {
                    go.await();
                    for (int n = 0; n < opsEach; n++) {
                        long addr = a + rnd.nextInt(pages) * PAGE;
                        if (id == 0) dev.atomicAdd(addr, 1);
                        else if (id == 1) other.atomicAdd(addr, 1);
                        else mm.getAndAddInt(addr, 1);
                        // Two cores, five threads: yield now and then so ownership changes hands often.
                        if ((n & 7) == 7) Thread.yield();
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                } finally {
                    addersLeft.decrementAndGet();
                }
            }, "adder-" + t));
        }
        threads.add(new Thread(() -> {
            SplittableRandom rnd = new SplittableRandom(99);
            try {
                go.await();
                while (addersLeft.get() > 0) {
                    if (mm.reclaimPage(a + rnd.nextInt(pages) * PAGE)) reclaimed[0]++;
                    Thread.yield();
                }
            } catch (Throwable e) {
                failure.compareAndSet(null, e);
            }
        }, "reclaim"));
        for (Thread t : threads) t.start();
        for (Thread t : threads) t.join(TimeUnit.SECONDS.toMillis(60));
        assertThat(failure.get()).isNull();
        System.out.println("concurrent adds: " + dev + " " + dev.counts() + "; " + other + " " + other.counts() + "; mm " + mm.stats() + "; reclaimed " + reclaimed[0]);
        long sum = 0;
        for (int i = 0; i < pages; i++) sum += mm.readInt(a + i * PAGE);
        assertThat(sum).isEqualTo(base + 4L * opsEach);
        assertThat(dev.count(MirrorDevice.Counter.ATOMIC_ADD) + other.count(MirrorDevice.Counter.ATOMIC_ADD)).isEqualTo(2L * opsEach);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION)).isPositive();
        assertThat(other.count(MirrorDevice.Counter.CONVERSION)).isPositive();
        // They did interleave: pages changed hands between devices and back to the CPUs many times.
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION) + other.count(MirrorDevice.Counter.CONVERSION)).isGreaterThan(100);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION_RESTORE) + other.count(MirrorDevice.Counter.CONVERSION_RESTORE)).isPositive();
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isGreaterThan(100);
        assertThat(reclaimed[0]).isPositive();
        assertThat(mm.stats().count(MmEvent.SWAP_IN)).isPositive();
        // The final CPU reads revoked every device mapping.
        assertThat(dev.checkExclusive(a, pages) || other.checkExclusive(a, pages)).isFalse();
        other.close();
        for (int i = 0; i < pages; i++) {
            Folio f = folioAt(a + i * PAGE);
            assertThat(f.refcount()).isEqualTo(1);
            assertThat(f.mapcount()).isEqualTo(1);
        }
        host.checkInvariants(true);
    }
}
