package dev.ptlab.mm;

import static dev.ptlab.mm.MmFixture.M2;
import static dev.ptlab.mm.MmFixture.PAGE;
import static dev.ptlab.mm.MmFixture.PRIVATE;
import static dev.ptlab.mm.MmFixture.RW;
import static dev.ptlab.mm.MmFixture.SHARED;
import static dev.ptlab.mm.MmFixture.assertAllReturned;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.hw.Access;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** Device-exclusive entries at the mm level (6.15 design, reference part A). */
class DeviceExclusiveTest {
    private final Host host = MmFixture.host(1);
    private final AddressSpace mm = host.newAddressSpace();
    private final Object device = "device-1";

    private long buffer(int pages) {
        long a = mm.mmap(0, pages * PAGE, RW, PRIVATE);
        for (int i = 0; i < pages; i++) mm.writeInt(a + i * PAGE, i);
        return a;
    }

    private static void release(Folio f) {
        f.unlock();
        f.put();
    }

    private static MmException errno(Errno e, Runnable r) {
        try {
            r.run();
        } catch (MmException x) {
            assertThat(x.errno()).isEqualTo(e);
            return x;
        }
        throw new AssertionError("expected " + e);
    }

    @Test
    void conversionInstallsTheEntryKeepsCountsAndReturnsTheFolioLocked() {
        long a = buffer(2);
        long before = mm.pte(a + PAGE);
        Folio f = host.memory().folioOf(HostPte.pa(mm.geometry(), before));
        RecordingNotifier rec = new RecordingNotifier(mm);
        Folio got = mm.makeDeviceExclusive(a + PAGE + 123, device);
        assertThat(got).isSameAs(f);
        long pte = mm.pte(a + PAGE);
        assertThat(HostPte.isDeviceExclusive(pte)).isTrue();
        assertThat(HostPte.swapOffset(pte)).isEqualTo(f.pa() >>> 12);
        assertThat(HostPte.isSoftDirty(pte)).as("soft-dirty carried").isTrue();
        assertThat(f.isLocked()).isTrue();
        assertThat(f.isDirty()).as("the dirty entry's state moved to the folio").isTrue();
        assertThat(f.mapcount()).as("the entry is still a mapping").isEqualTo(1);
        assertThat(f.refcount()).as("mapping + the caller's reference").isEqualTo(2);
        assertThat(mm.rss()).isEqualTo(2);
        NotifierRange r = rec.single();
        assertThat(r.event()).isEqualTo(NotifierEvent.EXCLUSIVE);
        assertThat(r.owner()).isSameAs(device);
        assertThat(r.start()).isEqualTo(a + PAGE);
        assertThat(r.end()).isEqualTo(a + 2 * PAGE);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_CONVERSION)).isEqualTo(1);
        host.checkInvariants(false);
        release(got);
        host.checkInvariants(true);
    }

    @Test
    void cpuReadRestoresAnOldEntryWritableOnlyIfTheVmaIs() {
        long a = buffer(2);
        release(mm.makeDeviceExclusive(a, device));
        RecordingNotifier rec = new RecordingNotifier(mm);
        assertThat(mm.handleFault(a, Access.READ)).isEqualTo(FaultResult.DONE);
        long pte = mm.pte(a);
        assertThat(HostPte.isPresent(pte)).isTrue();
        assertThat(HostPte.isYoung(pte)).as("restored old").isFalse();
        assertThat(HostPte.isWrite(pte)).isTrue();
        assertThat(HostPte.isDirty(pte)).as("the folio is dirty").isTrue();
        assertThat(HostPte.isSoftDirty(pte)).isTrue();
        NotifierRange r = rec.single();
        assertThat(r.event()).as("remove_device_exclusive_entry, 6.15+").isEqualTo(NotifierEvent.CLEAR);
        assertThat(r.owner()).isNull();
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        assertThat(mm.readInt(a)).isZero();
        host.checkInvariants(true);

        // mprotect leaves the entry alone (one PROTECTION_VMA); the restore reads the VMA.
        release(mm.makeDeviceExclusive(a + PAGE, device));
        rec.clear();
        mm.mprotect(a, 2 * PAGE, Mman.PROT_READ);
        assertThat(rec.single().event()).isEqualTo(NotifierEvent.PROTECTION_VMA);
        assertThat(HostPte.isDeviceExclusive(mm.pte(a + PAGE))).isTrue();
        assertThat(mm.readInt(a + PAGE)).isEqualTo(1);
        assertThat(HostPte.isWrite(mm.pte(a + PAGE))).isFalse();
        assertThatThrownBy(() -> mm.writeInt(a + PAGE, 5)).isInstanceOf(SegmentationFault.class);
        host.checkInvariants(true);
    }

    // restore_exclusive_pte (6.15 to 7.1-rc4): the entry is made old from the VMA's base
    // protection; only when VM_WRITE is set (and the entry may be made writable) is it made
    // dirty (if the folio is) and writable. Each case below derives its entry from that rule.

    @Test
    void aReadAfterMprotectReadOnlyRestoresACleanReadOnlyOldEntryThoughTheFolioIsDirty() {
        long a = buffer(1); // written: the entry is dirty, and the conversion moves that to the folio
        release(mm.makeDeviceExclusive(a, device));
        Folio f = host.memory().folioOf(HostPte.swapOffset(mm.pte(a)) << 12);
        assertThat(f.isDirty()).isTrue();
        mm.mprotect(a, PAGE, Mman.PROT_READ);
        assertThat(mm.handleFault(a, Access.READ)).isEqualTo(FaultResult.DONE);
        long pte = mm.pte(a);
        assertThat(HostPte.isPresent(pte)).isTrue();
        assertThat(HostPte.isWrite(pte)).as("VM_WRITE is clear").isFalse();
        assertThat(HostPte.isDirty(pte)).as("dirty only inside the VM_WRITE branch").isFalse();
        assertThat(HostPte.isYoung(pte)).as("restored old").isFalse();
        assertThat(HostPte.isSoftDirty(pte)).as("soft-dirty carried from the entry").isTrue();
        assertThat(f.isDirty()).as("the folio keeps its dirty flag: nothing written is lost").isTrue();
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        assertThat(mm.readInt(a)).isZero();
        assertThatThrownBy(() -> mm.writeInt(a, 5)).isInstanceOf(SegmentationFault.class);
        host.checkInvariants(true);
    }

    @Test
    void aWriteOnAWritableVmaRestoresAWritableDirtyOldEntry() {
        long a = buffer(1);
        release(mm.makeDeviceExclusive(a, device));
        assertThat(mm.handleFault(a, Access.WRITE)).isEqualTo(FaultResult.DONE);
        long pte = mm.pte(a);
        assertThat(HostPte.isWrite(pte)).as("VM_WRITE and the page is exclusively ours").isTrue();
        assertThat(HostPte.isDirty(pte)).as("the folio is dirty").isTrue();
        assertThat(HostPte.isYoung(pte)).as("restored old: the replayed access sets AF").isFalse();
        long faults = mm.stats().count(MmEvent.FAULT);
        mm.writeInt(a, 5);
        assertThat(mm.stats().count(MmEvent.FAULT)).as("the write replays without another fault").isEqualTo(faults);
        assertThat(mm.readInt(a)).isEqualTo(5);
        host.checkInvariants(true);
    }

    @Test
    void forkRestoresThroughTheSameRuleSoAReadOnlyVmaGetsCleanEntriesOnBothSides() {
        // copy_nonpresent_pte -> try_restore_exclusive_pte -> restore_exclusive_pte: the rule
        // of a fault, then the present entry is copied (write-protected; the child's made old).
        long a = buffer(2);
        release(mm.makeDeviceExclusive(a + PAGE, device));
        mm.mprotect(a, 2 * PAGE, Mman.PROT_READ);
        AddressSpace child = mm.fork();
        assertThat(mm.stats().count(MmEvent.FORK_RESTORE)).isEqualTo(1);
        long pte = mm.pte(a + PAGE);
        assertThat(HostPte.isPresent(pte)).isTrue();
        assertThat(HostPte.isWrite(pte)).isFalse();
        assertThat(HostPte.isDirty(pte)).as("restored clean: VM_WRITE is clear").isFalse();
        assertThat(HostPte.isYoung(pte)).isFalse();
        assertThat(child.pte(a + PAGE)).isEqualTo(pte);
        // The page that was never exclusive keeps its dirty entry: only the restore decides anew.
        assertThat(HostPte.isDirty(mm.pte(a))).isTrue();
        assertThat(child.readInt(a + PAGE)).isEqualTo(1);
        host.checkInvariants(true);
        child.close();
    }

    @Test
    void cpuFaultWaitsForTheDriverToUnlockWithoutHoldingTheMmapLock() throws Exception {
        long a = buffer(1);
        long other = mm.mmap(0, PAGE, RW, PRIVATE);
        Folio f = mm.makeDeviceExclusive(a, device);
        AtomicInteger read = new AtomicInteger(-1);
        AtomicReference<Throwable> error = new AtomicReference<>();
        CountDownLatch started = new CountDownLatch(1);
        Thread cpu = new Thread(() -> {
            started.countDown();
            try {
                read.set(mm.getAndAddInt(a, 1));
            } catch (Throwable t) {
                error.set(t);
            }
        }, "cpu");
        cpu.start();
        assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (cpu.getState() != Thread.State.WAITING && System.nanoTime() < deadline) Thread.sleep(1);
        assertThat(cpu.getState()).as("blocked on the folio lock").isEqualTo(Thread.State.WAITING);
        assertThat(HostPte.isDeviceExclusive(mm.pte(a))).as("still exclusive while the driver holds the lock").isTrue();
        assertThat(mm.stats().count(MmEvent.FAULT_RETRY)).isEqualTo(1);
        // The waiting fault gave up the mmap lock: a writer gets through.
        org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(Duration.ofSeconds(10), () -> mm.munmap(other, PAGE));
        release(f);
        cpu.join(10_000);
        assertThat(cpu.isAlive()).isFalse();
        assertThat(error.get()).isNull();
        assertThat(read.get()).isZero();
        assertThat(mm.readInt(a)).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        host.checkInvariants(true);
    }

    @Test
    void zapWhileExclusiveBalancesCounts() {
        long a = buffer(4);
        Folio f = mm.makeDeviceExclusive(a + 2 * PAGE, device);
        RecordingNotifier rec = new RecordingNotifier(mm);
        mm.munmap(a, 4 * PAGE);
        assertThat(rec.single().event()).isEqualTo(NotifierEvent.UNMAP);
        assertThat(f.mapcount()).isZero();
        assertThat(f.refcount()).as("only the driver's reference is left").isEqualTo(1);
        assertThat(mm.rss()).isZero();
        assertThat(host.memory().pagesInUse()).isEqualTo(1);
        host.checkInvariants(false);
        release(f);
        assertThat(f.isFree()).isTrue();
        assertAllReturned(host);

        long b = buffer(2);
        release(mm.makeDeviceExclusive(b, device));
        mm.madvise(b, 2 * PAGE, Mman.MADV_DONTNEED);
        assertThat(mm.pte(b)).isZero();
        assertThat(mm.readInt(b)).isZero();
        host.checkInvariants(true);
    }

    @Test
    void reclaimWhileExclusiveProducesASwapEntryAndANotifier() {
        long a = buffer(2);
        mm.writeInt(a + PAGE + 16, 99);
        Folio f = mm.makeDeviceExclusive(a + PAGE, device);
        assertThat(mm.reclaimPage(a + PAGE)).as("the driver holds the folio lock").isFalse();
        release(f);
        RecordingNotifier rec = new RecordingNotifier(mm);
        assertThat(mm.reclaimPage(a + PAGE)).isTrue();
        NotifierRange r = rec.single();
        assertThat(r.event()).isEqualTo(NotifierEvent.CLEAR);
        assertThat(r.start()).isEqualTo(a + PAGE);
        long pte = mm.pte(a + PAGE);
        assertThat(HostPte.isSwap(pte)).isTrue();
        assertThat(HostPte.isSoftDirty(pte)).isTrue();
        assertThat(f.isFree()).isTrue();
        assertThat(mm.rss()).isEqualTo(1);
        host.checkInvariants(true);
        assertThat(mm.readInt(a + PAGE + 16)).isEqualTo(99);
        assertThat(mm.stats().count(MmEvent.SWAP_IN)).isEqualTo(1);
        host.checkInvariants(true);
    }

    @Test
    void forkWhileTheDriverHoldsTheLockFailsAndChangesNothing() {
        long a = buffer(4);
        Folio f = mm.makeDeviceExclusive(a + PAGE, device);
        long[] ptes = new long[4];
        for (int i = 0; i < 4; i++) ptes[i] = mm.pte(a + i * PAGE);
        long frames = host.tableMemory().framesInUse();
        long pages = host.memory().pagesInUse();
        int refs = f.refcount();
        RecordingNotifier rec = new RecordingNotifier(mm);
        errno(Errno.ENOMEM, mm::fork);
        assertThat(mm.stats().count(MmEvent.FORK_FAILED)).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.FORK)).isZero();
        assertThat(host.addressSpaces()).containsExactly(mm);
        for (int i = 0; i < 4; i++) assertThat(mm.pte(a + i * PAGE)).isEqualTo(ptes[i]);
        assertThat(host.tableMemory().framesInUse()).isEqualTo(frames);
        assertThat(host.memory().pagesInUse()).isEqualTo(pages);
        assertThat(f.refcount()).isEqualTo(refs);
        assertThat(f.mapcount()).isEqualTo(1);
        assertThat(f.isLocked()).as("still the driver's").isTrue();
        assertThat(rec.starts).isEmpty();
        host.checkInvariants(false);
        release(f);
        host.checkInvariants(true);
    }

    @Test
    void forkAfterUnlockRestoresInTheParentAndBothSidesCow() {
        // hmm-tests exclusive_cow: each side increments every element and sees its own values.
        int n = 8;
        long a = buffer(n);
        for (int i = 0; i < n; i++) release(mm.makeDeviceExclusive(a + i * PAGE, device));
        AddressSpace child = mm.fork();
        assertThat(mm.stats().count(MmEvent.FORK_RESTORE)).isEqualTo(n);
        for (int i = 0; i < n; i++) {
            long pte = mm.pte(a + i * PAGE);
            assertThat(HostPte.isPresent(pte)).isTrue();
            assertThat(HostPte.isWrite(pte)).isFalse();
            assertThat(child.pte(a + i * PAGE)).isEqualTo(HostPte.mkOld(pte));
        }
        host.checkInvariants(true);
        for (int i = 0; i < n; i++) {
            mm.getAndAddInt(a + i * PAGE, 1);
            child.getAndAddInt(a + i * PAGE, 10);
        }
        for (int i = 0; i < n; i++) {
            assertThat(mm.readInt(a + i * PAGE)).isEqualTo(i + 1);
            assertThat(child.readInt(a + i * PAGE)).isEqualTo(i + 10);
        }
        // Per page the parent writes first (copy), then the child is the only user left (reuse).
        assertThat(mm.stats().count(MmEvent.COW_COPY)).isEqualTo(n);
        assertThat(child.stats().count(MmEvent.COW_REUSE)).isEqualTo(n);
        host.checkInvariants(true);
        child.close();
        mm.close();
        assertAllReturned(host);
    }

    @Test
    void refusedForHugetlbSharedReadOnlyAndUnmapped() {
        Host big = MmFixture.host(2);
        AddressSpace s = big.newAddressSpace();
        long h = s.mmap(0, M2, RW, PRIVATE | Mman.MAP_HUGETLB);
        errno(Errno.EOPNOTSUPP, () -> s.makeDeviceExclusive(h, device));
        long sh = s.mmap(0, PAGE, RW, SHARED);
        s.writeInt(sh, 1);
        MmException e = errno(Errno.EOPNOTSUPP, () -> s.makeDeviceExclusive(sh, device));
        assertThat(e.getMessage()).contains("anonymous");
        long ro = s.mmap(0, PAGE, Mman.PROT_READ, PRIVATE);
        errno(Errno.EFAULT, () -> s.makeDeviceExclusive(ro, device));
        errno(Errno.EFAULT, () -> s.makeDeviceExclusive(0x1000, device));
        big.checkInvariants(true);
        Folio f = big.memory().folioOf(HostPte.pa(s.geometry(), s.pte(sh)));
        assertThat(f.isLocked()).isFalse();
        assertThat(f.refcount()).as("GUP's reference was dropped").isEqualTo(2);
    }

    @Test
    void thpSourceIsSplitAndOnePteMadeExclusive() {
        long a = mm.mmap(0, M2, RW, PRIVATE);
        mm.madvise(a, M2, Mman.MADV_HUGEPAGE);
        mm.writeInt(a + 9 * PAGE, 9);
        assertThat(mm.pteLevel(a)).isEqualTo(2);
        Folio f = mm.makeDeviceExclusive(a + 9 * PAGE, device);
        assertThat(f.order()).isZero();
        assertThat(mm.pteLevel(a)).isEqualTo(3);
        assertThat(HostPte.isDeviceExclusive(mm.pte(a + 9 * PAGE))).isTrue();
        assertThat(HostPte.isPresent(mm.pte(a + 8 * PAGE))).isTrue();
        assertThat(host.memory().folioOf(HostPte.pa(mm.geometry(), mm.pte(a + 8 * PAGE))).order()).isZero();
        assertThat(mm.rss()).isEqualTo(512);
        assertThat(f.readInt(0)).isEqualTo(9);
        host.checkInvariants(false);
        release(f);
        host.checkInvariants(true);
    }

    @Test
    void cowSharedPageIsCopiedBeforeConversion() {
        long a = buffer(1);
        AddressSpace child = mm.fork();
        Folio shared = host.memory().folioOf(HostPte.pa(mm.geometry(), mm.pte(a)));
        Folio f = mm.makeDeviceExclusive(a, device);
        assertThat(f).as("GUP for write broke COW first").isNotSameAs(shared);
        assertThat(shared.mapcount()).isEqualTo(1);
        assertThat(HostPte.isPresent(child.pte(a))).isTrue();
        release(f);
        child.writeInt(a, 5);
        assertThat(mm.readInt(a)).isZero();
        host.checkInvariants(true);
        child.close();
    }

    @Test
    void aSecondDeviceStealsExclusivityThroughTheGupFault() {
        // Two devices ping-ponging one page: each conversion's GUP restores the other's entry.
        long a = buffer(1);
        Object other = "device-2";
        RecordingNotifier rec = new RecordingNotifier(mm);
        for (int round = 0; round < 4; round++) {
            Object owner = round % 2 == 0 ? device : other;
            rec.clear();
            release(mm.makeDeviceExclusive(a, owner));
            assertThat(HostPte.isDeviceExclusive(mm.pte(a))).isTrue();
            if (round > 0) {
                assertThat(rec.starts).hasSize(2);
                assertThat(rec.starts.get(0).owner()).as("the previous owner loses it").isNull();
            }
            assertThat(rec.starts.get(rec.starts.size() - 1).owner()).isSameAs(owner);
        }
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(3);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_CONVERSION)).isEqualTo(4);
        host.checkInvariants(true);
        assertThat(mm.readInt(a)).isZero();
    }

    @Test
    void aPinnedThpCannotBeSplitSoConversionIsBusy() {
        long a = mm.mmap(0, M2, RW, PRIVATE);
        mm.madvise(a, M2, Mman.MADV_HUGEPAGE);
        mm.writeInt(a, 1);
        GupResult pin = new GupResult();
        mm.getUserPage(a, 0, pin);
        Folio thp = pin.folio;
        errno(Errno.EBUSY, () -> mm.makeDeviceExclusive(a + PAGE, device));
        // The PMD was remapped by PTEs, but the pinned folio stays large.
        assertThat(mm.pteLevel(a)).isEqualTo(3);
        assertThat(thp.order()).isEqualTo(9);
        assertThat(thp.mapcount()).isEqualTo(512);
        assertThat(thp.refcount()).isEqualTo(513);
        host.checkInvariants(false);
        pin.folio.put();
        Folio f = mm.makeDeviceExclusive(a + PAGE, device);
        assertThat(f.order()).isZero();
        release(f);
        host.checkInvariants(true);
    }
}
