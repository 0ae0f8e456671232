package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Folio;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.HostPte;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.device.MirrorDevice;
import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A VM and a device sharing a host process's memory (issue 7's KVM integration): a
 * device-exclusive conversion of a page the guest has mapped removes it from stage-2 through the
 * VM's notifier; the guest's next access faults, its GUP restores the host entry (revoking the
 * device), and stage-2 maps the same page again. A vCPU whose fault meets a device (or host
 * thread) stopped mid-invalidation waits for it.
 */
class VmDeviceTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long GPA = 0x4000_0000L;

    private Host host;
    private AddressSpace mm;
    private Vm vm;
    private MirrorDevice dev;
    private long hva;

    @BeforeEach
    void setUp() {
        host = new Host(Granule.G4K, 64L << 20, 48, true);
        mm = host.newAddressSpace();
        vm = new Vm(VmConfig.defaults().withChecking(true));
        hva = mm.mmap(0, M2, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        vm.addMemslot(GPA, M2, mm, hva, false);
        dev = new MirrorDevice(mm, "gpu");
    }

    @AfterEach
    void everythingComesBack() {
        dev.close();
        host.checkInvariants(true);
        vm.destroy();
        mm.close();
        assertThat(vm.tableMemory().framesInUse()).isZero();
        assertThat(host.memory().pagesInUse()).isZero();
        assertThat(host.tableMemory().framesInUse()).isZero();
    }

    private Leaf leaf(long gpa) {
        return vm.table().getLeaf(gpa);
    }

    @Test
    void conversionUnmapsStage2AndTheGuestsNextAccessTakesThePageBack() {
        Vcpu v = vm.createVcpu();
        long gpa = GPA + 5 * K4, va = hva + 5 * K4;
        long pa = v.access(gpa + 16, Access.WRITE);
        Folio folio = host.memory().folioOf(pa);
        folio.getAndAddInt(pa - folio.pa(), 7);
        assertThat(leaf(gpa).valid()).isTrue();
        assertThat(Stage2Descriptor.writable(leaf(gpa).pte())).isTrue();
        long unmappedBefore = vm.notifierUnmappedLeaves();

        // The device makes the page exclusive: the VM's notifier sees the EXCLUSIVE event with the
        // device as owner (the VM filters nothing by owner) and unmaps the stage-2 leaf.
        assertThat(dev.atomicAdd(va + 16, 1)).isEqualTo(7);
        assertThat(HostPte.isDeviceExclusive(mm.pte(va))).isTrue();
        assertThat(vm.notifierInvalidations(NotifierEvent.EXCLUSIVE)).isEqualTo(1);
        assertThat(leaf(gpa).valid()).as("no stage-2 leaf over a device-exclusive entry").isFalse();
        assertThat(vm.notifierUnmappedLeaves()).isEqualTo(unmappedBefore + 1);
        assertThat(leaf(gpa + K4).valid()).as("neighbours are not touched").isFalse();
        assertThat(dev.hasAtomicAccess(va)).isTrue();

        // The guest reads the page again: a translation fault whose GUP restores the host entry.
        // The restore is itself an invalidation that ends after the fault read the sequence, so
        // that fault maps nothing and the vCPU faults once more (as KVM, when GUP's own fault
        // fires a notifier); the second fault maps the page.
        long faults = v.stats().faults();
        long again = v.access(gpa + 16, Access.READ);
        assertThat(again).as("the same page: conversion and restore keep the PA").isEqualTo(pa);
        assertThat(v.stats().faults()).isEqualTo(faults + 2);
        assertThat(v.stats().seqRetries()).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        assertThat(HostPte.isPresent(mm.pte(va))).isTrue();
        assertThat(dev.hasAtomicAccess(va)).as("the restore revoked the device").isFalse();
        assertThat(dev.invalidations(NotifierEvent.CLEAR)).as("the restore (6.15+: CLEAR, no owner)").isEqualTo(1);
        assertThat(vm.notifierInvalidations(NotifierEvent.EXCLUSIVE)).as("the conversion").isEqualTo(1);
        assertThat(vm.notifierInvalidations(NotifierEvent.CLEAR)).as("the restore").isEqualTo(1);
        assertThat(leaf(gpa).valid()).as("stage-2 maps it again").isTrue();
        assertThat(folio.readInt(pa - folio.pa())).isEqualTo(8);
        // A restored entry is old and, after a read, not yet dirty-written: the guest's write
        // may need a permission fault only if stage-2 mapped it read-only.
        long w = v.access(gpa + 16, Access.WRITE);
        assertThat(w).isEqualTo(pa);
        assertThat(Stage2Descriptor.writable(leaf(gpa).pte())).isTrue();
        host.checkInvariants(true);
    }

    @Test
    void aDeviceAndAGuestTakingTurnsOnOnePageNeverLoseAnAdd() {
        Vcpu v = vm.createVcpu();
        long gpa = GPA + 9 * K4 + 40, va = hva + 9 * K4 + 40;
        int rounds = 20;
        for (int r = 0; r < rounds; r++) {
            long pa = v.access(gpa, Access.WRITE);
            Folio f = host.memory().folioOf(pa);
            f.getAndAddInt(pa - f.pa(), 1);
            assertThat(leaf(gpa & -K4).valid()).isTrue();
            dev.atomicAdd(va, 1);
            assertThat(leaf(gpa & -K4).valid()).as("round %d: converted away from stage-2", r).isFalse();
        }
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION)).isEqualTo(rounds);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).as("every guest write after the first restored").isEqualTo(rounds - 1);
        assertThat(v.stats().seqRetries()).as("each of those faults retried once after its own restore").isEqualTo(rounds - 1);
        assertThat(vm.notifierInvalidations(NotifierEvent.EXCLUSIVE)).as("conversions").isEqualTo(rounds);
        assertThat(vm.notifierInvalidations(NotifierEvent.CLEAR)).as("restores").isEqualTo(rounds - 1);
        assertThat(mm.readInt(va)).isEqualTo(2 * rounds);
    }

    /**
     * The device converts a page of a THP the guest maps as a 2M block: GUP's FOLL_SPLIT_PMD
     * splits the THP into order-0 folios, which in ptlab moves the contents into new folio
     * objects. As the kernel's __split_huge_pmd does, the split must first be announced (a CLEAR
     * notifier over the huge page), so the VM drops its block before the data moves. Here a guest
     * store is in flight on the block (the MMU read lock held, the folio looked up) while the
     * device converts another page: the split must wait for the store, or the store lands in the
     * old folio and is lost.
     */
    @Test
    void aThpSplitWaitsForAGuestStoreInFlightOnTheBlock() throws Exception {
        dev.close();
        mm.munmap(hva, M2);
        long thp = mm.mmap(0, 4 * M2, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        mm.madvise(thp, 4 * M2, Mman.MADV_HUGEPAGE);
        long aligned = (thp + M2 - 1) & -M2;
        long gpa = 0x8000_0000L;
        vm.addMemslot(gpa, M2, mm, aligned, false);
        dev = new MirrorDevice(mm, "gpu");
        Vcpu v = vm.createVcpu();
        long pa = v.access(gpa + 8, Access.WRITE);
        assertThat(leaf(gpa).level()).as("a 2M block over the THP").isEqualTo(2);
        Folio large = host.memory().folioOf(pa);
        assertThat(large.isLarge()).isTrue();

        vm.mmuLock().readLock();
        Thread device;
        try {
            assertThat(v.mmu().translate(gpa + 8, Access.WRITE)).isEqualTo(pa);
            device = new Thread(() -> dev.atomicAdd(aligned + 5 * K4, 1), "device");
            device.start();
            // Correct: the split waits behind the store (its notifier needs the MMU write lock).
            // Broken: the split happens now, under the in-flight store.
            long deadline = System.nanoTime() + 300_000_000L;
            while (host.memory().folioOf(pa) == large && System.nanoTime() < deadline) Thread.sleep(1);
            large.getAndAddInt(pa - large.pa(), 1);
        } finally {
            vm.mmuLock().readUnlock();
        }
        device.join(10_000);
        assertThat(device.isAlive()).isFalse();
        assertThat(host.memory().folioOf(pa).isLarge()).as("the THP was split").isFalse();
        assertThat(mm.readInt(aligned + 8)).as("the guest's store survived the split").isEqualTo(1);
        assertThat(mm.readInt(aligned + 5 * K4)).isEqualTo(1);
    }

    // ------------------------------------------------------------------------------------------
    // A thread the scheduler stops between invalidateRangeStart and End (issue 16): a vCPU whose
    // fault finds that invalidation in progress over its address waits for it to end, as long as
    // it takes, instead of re-faulting into the livelock bound. The pause is a whole-space
    // notifier registered after the VM's, so it runs after the VM counted the invalidation in
    // progress and before anyone ends it.

    /** How long the invalidating thread stays descheduled: far longer than 10,000 re-faults take. */
    static final long HOLD_MILLIS = 2_000;

    /** Holds the first invalidation of {@code event} for {@link #HOLD_MILLIS} once it has counted down {@code entered}. */
    private void pauseFirst(NotifierEvent event, CountDownLatch entered) {
        mm.notifiers().register(new MmuNotifier() {
            @Override
            public void invalidateRangeStart(NotifierRange range) {
                if (range.event() != event || entered.getCount() == 0) return;
                entered.countDown();
                try {
                    Thread.sleep(HOLD_MILLIS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
    }

    /** Runs {@code action} on a new thread; the returned reference holds what it threw. */
    private static Thread start(String name, Runnable action, AtomicReference<Throwable> failed) {
        Thread t = new Thread(() -> {
            try {
                action.run();
            } catch (Throwable e) {
                failed.set(e);
            }
        }, name);
        t.start();
        return t;
    }

    @Test
    void aVcpuWaitsOutADeviceConversionDescheduledMidInvalidation() throws Exception {
        Vcpu v = vm.createVcpu();
        long gpa = GPA + 5 * K4, va = hva + 5 * K4;
        long pa = v.access(gpa, Access.WRITE);
        CountDownLatch entered = new CountDownLatch(1);
        pauseFirst(NotifierEvent.EXCLUSIVE, entered);
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread device = start("device", () -> dev.makeExclusive(va, 1), failed);
        assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();
        assertThat(vm.mmuInvalidateInProgress()).as("the device is stopped inside its invalidation").isEqualTo(1);
        long faults = v.stats().faults(), retries = v.stats().seqRetries();
        long t0 = System.nanoTime();

        long again = v.access(gpa, Access.READ);

        long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        device.join(10_000);
        assertThat(failed.get()).isNull();
        assertThat(again).as("the same page, restored from the device").isEqualTo(pa);
        assertThat(waited).as("the access waited for the conversion to finish").isGreaterThanOrEqualTo(HOLD_MILLIS / 2);
        // One fault that found the invalidation in progress and waited, one whose GUP restored the
        // device's entry (an invalidation ending under it), one that maps: a handful, not 10^4.
        assertThat(v.stats().faults() - faults).isBetween(2L, 4L);
        assertThat(v.stats().seqRetries() - retries).isBetween(1L, 3L);
        assertThat(HostPte.isPresent(mm.pte(va))).isTrue();
    }

    @Test
    void aVcpuWaitsOutAHostInvalidationDescheduledBetweenStartAndEnd() throws Exception {
        Vcpu v = vm.createVcpu();
        long gpa = GPA + 9 * K4, va = hva + 9 * K4;
        v.access(gpa, Access.WRITE);
        CountDownLatch entered = new CountDownLatch(1);
        pauseFirst(NotifierEvent.CLEAR, entered);
        AtomicReference<Throwable> failed = new AtomicReference<>();
        // A thread announcing an invalidation of the page (as a zap would) and then stopped
        // before its end: the host entry is still there for GUP to find.
        NotifierRange range = new NotifierRange(va, va + K4, NotifierEvent.CLEAR, null);
        Thread invalidator = start("invalidator", () -> {
            mm.notifiers().invalidateRangeStart(range);
            mm.notifiers().invalidateRangeEnd(range);
        }, failed);
        assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();
        long faults = v.stats().faults();
        long t0 = System.nanoTime();

        long pa = v.access(gpa, Access.READ);

        long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        invalidator.join(10_000);
        assertThat(failed.get()).isNull();
        assertThat(pa).isNotNegative();
        assertThat(waited).isGreaterThanOrEqualTo(HOLD_MILLIS / 2);
        assertThat(v.stats().faults() - faults).as("one fault waited, one mapped").isEqualTo(2);
        assertThat(vm.mmuInvalidateInProgress()).isZero();
    }
}
