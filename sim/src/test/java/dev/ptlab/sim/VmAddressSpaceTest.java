package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.GupResult;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.HostPte;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Memslots backed by a host address space: the fault path maps the host's page (GUP) with the
 * host's mapping size, MMU notifiers keep stage-2 coherent with munmap, mprotect, MADV_DONTNEED,
 * fork and aging, and an invalidation racing with a fault makes it retry (deterministic
 * interleavings through the fault hook). Checking mode throughout; every test ends with every
 * table frame and host page back.
 */
class VmAddressSpaceTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long GPA = 0x4000_0000L;
    static final int RW = Mman.PROT_READ | Mman.PROT_WRITE;
    static final int ANON = Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS;

    Host host;
    AddressSpace mm;
    Vm vm;
    /** Where {@link #guestOver} mapped the guest's memory. */
    long hva;

    /**
     * A checking host of 64 MiB, one address space, a checking VM (4K granule, 40-bit IPA)
     * without hardware AF, so aging is seen again as access-flag faults.
     */
    private void setUp() {
        host = new Host(Granule.G4K, 64L << 20, 48, true);
        mm = host.newAddressSpace();
        vm = new Vm(VmConfig.defaults().withChecking(true).withHardwareAf(false));
    }

    @AfterEach
    void everythingComesBack() {
        if (vm == null) return;
        host.checkInvariants(true);
        vm.destroy();
        if (!mm.closed()) mm.close();
        assertThat(vm.tableMemory().framesInUse()).as("stage-2 table frames").isZero();
        assertThat(host.memory().pagesInUse()).as("host pages").isZero();
        assertThat(host.tableMemory().framesInUse()).as("host page-table frames").isZero();
    }

    /** {@link #setUp()}, then {@code length} bytes of private anonymous memory at {@link #hva} as memslot GPA, and a vCPU. */
    private Vcpu guestOver(long length) {
        setUp();
        hva = mm.mmap(0, length, RW, ANON);
        vm.addMemslot(GPA, length, mm, hva, false);
        return vm.createVcpu();
    }

    /** The PA of the host page mapping {@code va} now (GUP without faulting), or -1 if none is mapped. */
    private long hostPa(long va) {
        GupResult g = new GupResult();
        try {
            mm.getUserPage(va, Mman.FOLL_NOFAULT, g);
        } catch (dev.ptlab.mm.MmException e) {
            return -1;
        }
        g.folio.put();
        return g.pa + (va & (K4 - 1));
    }

    private Leaf leaf(long gpa) {
        return vm.table().getLeaf(gpa);
    }

    @Test
    void guestReadAndWriteFaultsMapTheHostsPage() {
        Vcpu v = guestOver(4 * M2);

        long w = v.access(GPA + 5 * K4 + 8, Access.WRITE);
        assertThat(w).as("the write's PA is the host page now mapped at the hva").isEqualTo(hostPa(hva + 5 * K4 + 8)).isNotNegative();
        assertThat(leaf(GPA + 5 * K4).level()).as("base pages: no THP").isEqualTo(3);
        assertThat(Stage2Descriptor.writable(leaf(GPA + 5 * K4).pte())).isTrue();

        long r = v.access(GPA + 9 * K4, Access.READ);
        assertThat(r).isEqualTo(hostPa(hva + 9 * K4)).isNotNegative();
        // A read maps writable exactly when the host entry is writable (no second fault for the first write).
        assertThat(Stage2Descriptor.writable(leaf(GPA + 9 * K4).pte())).isEqualTo(HostPte.isWrite(mm.pte(hva + 9 * K4)));
        assertThat(mm.stats().count(MmEvent.ANON_PAGE)).as("GUP faulted the host pages in").isGreaterThanOrEqualTo(2);
        assertThat(v.stats().seqRetries()).isZero();
    }

    @Test
    void aThpBackedVmaMapsA2MBlockWhenCongruentAndPagesWhenNot() {
        setUp();
        long hva = mm.mmap(0, 8 * M2, RW, ANON);
        mm.madvise(hva, 8 * M2, Mman.MADV_HUGEPAGE);
        assertThat(hva % M2).as("mmap aligns a THP-sized area").isZero();
        Memslot congruent = vm.addMemslot(GPA, 2 * M2, mm, hva, false);
        // gpa 2M-aligned, hva 4K past a 2M boundary: the host THP cannot be a stage-2 block here.
        Memslot skewed = vm.addMemslot(2 * GPA, 2 * M2, mm, hva + 4 * M2 + K4, false);
        Vcpu v = vm.createVcpu();

        long pa = v.access(congruent.gpa() + 3 * K4, Access.WRITE);
        assertThat(mm.stats().count(MmEvent.THP_PAGE)).as("the host faulted a THP").isEqualTo(1);
        assertThat(leaf(congruent.gpa()).level()).as("congruent: one level-2 block").isEqualTo(2);
        assertThat(pa).isEqualTo(hostPa(hva + 3 * K4));
        assertThat(v.access(congruent.gpa() + M2 - K4, Access.READ)).as("the block covers the whole THP").isEqualTo(hostPa(hva + M2 - K4));

        long pb = v.access(skewed.gpa(), Access.READ);
        assertThat(leaf(skewed.gpa()).level()).as("not congruent: pages").isEqualTo(3);
        assertThat(pb).isEqualTo(hostPa(hva + 4 * M2 + K4));
        assertThat(v.stats().faults()).as("one fault each: the block, the skewed page").isEqualTo(2);
    }

    @Test
    void hugetlbPagesMapAsBlocksOfTheirSize() {
        setUp();
        long hva = mm.mmap(0, 2 * M2, RW, ANON | Mman.MAP_HUGETLB | Mman.MAP_HUGE_2MB);
        vm.addMemslot(GPA, 2 * M2, mm, hva, false);
        Vcpu v = vm.createVcpu();
        long pa = v.access(GPA + M2 + 7 * K4, Access.WRITE);
        assertThat(mm.stats().count(MmEvent.HUGETLB_PAGE)).isEqualTo(1);
        assertThat(leaf(GPA + M2).level()).isEqualTo(2);
        assertThat(pa).isEqualTo(hostPa(hva + M2 + 7 * K4));
        assertThat(pa % M2).isEqualTo(7 * K4);
    }

    @Test
    void munmapUnmapsStage2AndTheNextAccessExitsWithEfault() {
        Vcpu v = guestOver(M2);
        v.access(GPA, Access.WRITE);
        v.access(GPA + K4, Access.WRITE);
        assertThat(leaf(GPA + K4).valid()).isTrue();

        mm.munmap(hva + K4, K4);
        assertThat(vm.notifierInvalidations(NotifierEvent.UNMAP)).isEqualTo(1);
        assertThat(leaf(GPA + K4).valid()).as("the unmapped page left stage-2").isFalse();
        assertThat(leaf(GPA).valid()).as("its neighbour stays").isTrue();
        assertThat(vm.notifierUnmappedLeaves()).isEqualTo(1);
        assertThat(v.access(GPA + K4, Access.READ)).isEqualTo(Vcpu.EXIT_EFAULT);
        assertThat(v.stats().efaultExits()).isEqualTo(1);
        assertThat(leaf(GPA + K4).valid()).isFalse();

        // The VMM maps memory there again: the guest gets a fresh page.
        assertThat(mm.mmap(hva + K4, K4, RW, ANON | Mman.MAP_FIXED)).isEqualTo(hva + K4);
        long pa = v.access(GPA + K4, Access.READ);
        assertThat(pa).isEqualTo(hostPa(hva + K4)).isNotNegative();
    }

    @Test
    void mprotectReadOnlyLeavesOnlyReadMappingsAndAWriteExitsWithEfault() {
        Vcpu v = guestOver(M2);
        long before = v.access(GPA, Access.WRITE);
        mm.mprotect(hva, M2, Mman.PROT_READ);
        assertThat(vm.notifierInvalidations(NotifierEvent.PROTECTION_VMA)).isEqualTo(1);
        assertThat(leaf(GPA).valid()).isFalse();

        assertThat(v.access(GPA, Access.READ)).as("same page, read-only now").isEqualTo(before);
        assertThat(Stage2Descriptor.writable(leaf(GPA).pte())).isFalse();
        assertThat(v.access(GPA, Access.WRITE)).isEqualTo(Vcpu.EXIT_EFAULT);
        assertThat(Stage2Descriptor.writable(leaf(GPA).pte())).as("nothing made it writable").isFalse();
        assertThat(v.stats().efaultExits()).isEqualTo(1);
    }

    @Test
    void madviseDontneedMakesTheGuestSeeAFreshPage() {
        Vcpu v = guestOver(M2);
        long old = v.access(GPA + 2 * K4, Access.WRITE);
        // Keep the old page allocated, so a fresh page cannot reuse its PA.
        GupResult pin = new GupResult();
        mm.getUserPage(hva + 2 * K4, 0, pin);

        mm.madvise(hva, M2, Mman.MADV_DONTNEED);
        assertThat(vm.notifierInvalidations(NotifierEvent.CLEAR)).isEqualTo(1);
        assertThat(leaf(GPA + 2 * K4).valid()).isFalse();
        long written = v.access(GPA + 2 * K4, Access.WRITE);
        long read = v.access(GPA + 2 * K4, Access.READ);
        assertThat(written).isNotEqualTo(old).isEqualTo(read).isEqualTo(hostPa(hva + 2 * K4));
        pin.folio.put();
    }

    @Test
    void forkWriteProtectsAndTheGuestsNextWriteGetsItsOwnCopy() {
        Vcpu v = guestOver(M2);
        long shared = v.access(GPA, Access.WRITE);
        mm.writeInt(hva, 41);

        AddressSpace child = mm.fork();
        assertThat(vm.notifierInvalidations(NotifierEvent.PROTECTION_PAGE)).isGreaterThanOrEqualTo(1);
        Leaf after = leaf(GPA);
        assertThat(after.valid() && Stage2Descriptor.writable(after.pte())).as("no writable stage-2 entry to a COW page").isFalse();

        assertThat(v.access(GPA, Access.READ)).as("a read still sees the shared page").isEqualTo(shared);
        assertThat(Stage2Descriptor.writable(leaf(GPA).pte())).isFalse();
        long own = v.access(GPA, Access.WRITE);
        assertThat(own).as("the write broke COW").isNotEqualTo(shared).isEqualTo(hostPa(hva));
        assertThat(Stage2Descriptor.writable(leaf(GPA).pte())).isTrue();
        assertThat(child.readInt(hva)).isEqualTo(41);
        child.close();
    }

    @Test
    void aDeviceExclusiveConversionRemovesThePageFromStage2AndTheGuestsNextAccessRestoresIt() {
        Vcpu v = guestOver(M2);
        long pa = v.access(GPA + 4 * K4, Access.WRITE);
        Object device = "device";
        dev.ptlab.mm.Folio f = mm.makeDeviceExclusive(hva + 4 * K4, device);
        assertThat(vm.notifierInvalidations(NotifierEvent.EXCLUSIVE)).isEqualTo(1);
        assertThat(leaf(GPA + 4 * K4).valid()).as("stage-2 dropped the page").isFalse();
        assertThat(HostPte.isDeviceExclusive(mm.pte(hva + 4 * K4))).isTrue();
        f.unlock();
        f.put();

        // The guest's access faults; GUP's host fault restores the entry (telling the device).
        assertThat(v.access(GPA + 4 * K4, Access.READ)).as("the same page, now the guest's again").isEqualTo(pa);
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        assertThat(vm.notifierInvalidations(NotifierEvent.EXCLUSIVE)).as("the conversion's alone").isEqualTo(1);
        assertThat(vm.notifierInvalidations(NotifierEvent.CLEAR)).as("the restore's own notifier (6.15+)").isEqualTo(1);
        assertThat(HostPte.isPresent(mm.pte(hva + 4 * K4))).isTrue();
        assertThat(leaf(GPA + 4 * K4).valid()).isTrue();
    }

    @Test
    void agingClearsStage2AccessFlagsThroughClearFlushYoung() {
        Vcpu v = guestOver(M2);
        v.access(GPA, Access.READ);
        v.access(GPA + K4, Access.WRITE);
        GupResult hostOnly = new GupResult();
        mm.getUserPage(hva + 2 * K4, 0, hostOnly); // a host page the guest never touched
        hostOnly.folio.put();
        assertThat(Stage2Descriptor.young(leaf(GPA).pte())).isTrue();

        assertThat(mm.notifiers().testYoung(hva, hva + 2 * K4)).isTrue();
        assertThat(mm.notifiers().testYoung(hva + 2 * K4, hva + 3 * K4)).as("never mapped in stage-2").isFalse();
        mm.age(hva, 3 * K4);
        long young = vm.notifierYoung();
        assertThat(young).as("the host ages leaf by leaf: the guest's two pages were young").isEqualTo(2);
        assertThat(Stage2Descriptor.young(leaf(GPA).pte())).isFalse();
        assertThat(Stage2Descriptor.young(leaf(GPA + K4).pte())).isFalse();
        assertThat(mm.notifiers().testYoung(hva, hva + 2 * K4)).isFalse();

        // The TLB was flushed: the next access takes an access-flag fault and makes the page young again.
        long af = v.stats().faults(FaultType.ACCESS_FLAG, 3);
        v.access(GPA, Access.READ);
        assertThat(v.stats().faults(FaultType.ACCESS_FLAG, 3)).isEqualTo(af + 1);
        assertThat(mm.notifiers().clearFlushYoung(hva, hva + K4)).isTrue();
        assertThat(mm.notifiers().clearFlushYoung(hva, hva + K4)).as("cleared by the first call").isFalse();
    }

    @Test
    void anInvalidationBetweenGupAndTheMmuLockMakesTheFaultRetry() {
        Vcpu v = guestOver(M2);
        long gpa = GPA + 3 * K4, va = hva + 3 * K4;
        v.access(gpa, Access.WRITE);
        long old = hostPa(va);
        GupResult pin = new GupResult();
        mm.getUserPage(va, 0, pin); // keeps the old page allocated: a new one cannot reuse its PA
        mm.madvise(va, K4, Mman.MADV_DONTNEED);
        assertThat(leaf(gpa).valid()).isFalse();
        long installed = vm.table().counters().leavesInstalled();

        int[] hooks = {0};
        vm.setFaultHook(() -> {
            if (hooks[0]++ == 0) mm.madvise(va, K4, Mman.MADV_DONTNEED);
        });
        long seq = vm.mmuInvalidateSeq();
        assertThat(vm.handleAbort(v, gpa, Access.WRITE, FaultType.TRANSLATION, 3, 0)).isEqualTo(AbortResult.INVALIDATED);
        assertThat(vm.mmuInvalidateSeq()).isEqualTo(seq + 1);
        assertThat(v.stats().seqRetries()).as("the fault saw the sequence move").isEqualTo(1);
        assertThat(leaf(gpa).valid()).as("and mapped nothing").isFalse();
        assertThat(vm.table().counters().leavesInstalled()).isEqualTo(installed);
        assertThat(hostPa(va)).as("the page that fault's GUP found is gone from the host too").isEqualTo(-1);

        long now = v.access(gpa, Access.READ);
        assertThat(now).as("the re-fault maps the new host page").isEqualTo(hostPa(va)).isNotEqualTo(old).isNotNegative();
        assertThat(v.stats().seqRetries()).isEqualTo(1);
        assertThat(hooks[0]).isEqualTo(2);

        // Without an invalidation in between, no retry.
        mm.madvise(va, K4, Mman.MADV_DONTNEED);
        vm.setFaultHook(null);
        assertThat(vm.handleAbort(v, gpa, Access.WRITE, FaultType.TRANSLATION, 3, 0)).isEqualTo(AbortResult.RESUME);
        assertThat(v.stats().seqRetries()).isEqualTo(1);
        assertThat(leaf(gpa).valid()).isTrue();
        pin.folio.put();
    }

    @Test
    void aFaultCheckingWhileAnInvalidationIsInProgressRetriesEvenThoughTheSequenceHasNotMoved() throws Exception {
        Vcpu v = guestOver(M2);
        long gpa = GPA + 6 * K4, va = hva + 6 * K4;
        v.access(gpa, Access.WRITE);
        long old = hostPa(va);
        mm.madvise(va, K4, Mman.MADV_DONTNEED); // stage-2 empty again; the next fault GUPs
        // Registered after the VM's notifier, so it runs after the VM's start callback: it holds
        // the invalidation "in progress" (start done, end not) until released.
        CountDownLatch entered = new CountDownLatch(1), release = new CountDownLatch(1);
        MmuNotifier blocker = new MmuNotifier() {
            @Override
            public void invalidateRangeStart(NotifierRange range) {
                if (range.event() != NotifierEvent.CLEAR) return;
                entered.countDown();
                try {
                    release.await(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        mm.notifiers().register(blocker);
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread madviser = new Thread(() -> {
            try {
                mm.madvise(va, K4, Mman.MADV_DONTNEED);
            } catch (Throwable t) {
                failed.set(t);
            }
        }, "host-madvise");
        long[] seqInHook = {-1}, gupPa = {-1};
        vm.setFaultHook(() -> {
            vm.setFaultHook(null);
            gupPa[0] = hostPa(va);
            madviser.start();
            try {
                assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            seqInHook[0] = vm.mmuInvalidateSeq();
        });
        long seq = vm.mmuInvalidateSeq();
        try {
            assertThat(vm.handleAbort(v, gpa, Access.WRITE, FaultType.TRANSLATION, 3, 0)).isEqualTo(AbortResult.INVALIDATING);
            assertThat(seqInHook[0]).as("the invalidation has not ended: only in-progress can catch it").isEqualTo(seq);
            assertThat(vm.mmuInvalidateInProgress()).isEqualTo(1);
            assertThat(v.stats().seqRetries()).isEqualTo(1);
            assertThat(leaf(gpa).valid()).as("the page GUP found (about to be zapped) was not mapped").isFalse();
        } finally {
            release.countDown();
            madviser.join(10_000);
        }
        assertThat(failed.get()).isNull();
        mm.notifiers().unregister(blocker);
        assertThat(vm.mmuInvalidateInProgress()).isZero();
        assertThat(vm.mmuInvalidateSeq()).isEqualTo(seq + 1);
        assertThat(hostPa(va)).isEqualTo(-1);
        long now = v.access(gpa, Access.WRITE);
        assertThat(now).isEqualTo(hostPa(va)).isNotNegative();
        assertThat(gupPa[0]).as("the racing fault had a real page in hand").isNotNegative();
        assertThat(old).isNotNegative();
    }

    @Test
    void closingTheAddressSpaceUnmapsItsSlots() {
        Vcpu v = guestOver(M2);
        v.access(GPA, Access.WRITE);
        v.access(GPA + 7 * K4, Access.READ);
        mm.close();
        assertThat(vm.notifierInvalidations(NotifierEvent.RELEASE)).isEqualTo(1);
        assertThat(leaf(GPA).valid()).isFalse();
        assertThat(leaf(GPA + 7 * K4).valid()).isFalse();
        assertThat(vm.notifierUnmappedLeaves()).isEqualTo(2);
        assertThat(host.memory().pagesInUse()).as("stage-2 held no page references").isZero();
        assertThat(v.access(GPA, Access.READ)).as("no process, no page").isEqualTo(Vcpu.EXIT_EFAULT);
    }

    @Test
    void addMemslotRefusesRangesTheAddressSpaceDoesNotMapNamingTheArgument() {
        setUp();
        long hva = mm.mmap(0, 2 * M2, RW, ANON);
        mm.munmap(hva + M2, K4);
        assertThatThrownBy(() -> vm.addMemslot(GPA, 2 * M2, mm, hva, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("hva: ").hasMessageContaining("no VMA at 0x"
                        + Long.toHexString(hva + M2));
        assertThatThrownBy(() -> vm.addMemslot(GPA, M2, mm, hva + 8, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("hva: 0x");
        assertThatThrownBy(() -> vm.addMemslot(GPA, M2, (AddressSpace) null, hva, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("mm: null");
        assertThatThrownBy(() -> vm.addMemslot(GPA, M2 + 8, mm, hva, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("memory: ");
        Memslot ro = vm.addMemslot(GPA, M2, mm, hva, true);
        assertThat(ro.mm()).isSameAs(mm);
        assertThat(ro.hva(GPA + K4)).isEqualTo(hva + K4);
        assertThatThrownBy(() -> ro.hostPa(GPA)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> vm.addMemslot(GPA + K4, K4, mm, hva, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlaps");
        assertThat(vm.addressSpaces()).containsExactly(mm);
        // A read-only slot: reads map read-only, writes exit to the VMM as with a fixed slot.
        Vcpu v = vm.createVcpu();
        assertThat(v.access(GPA, Access.READ)).isEqualTo(hostPa(hva));
        assertThat(Stage2Descriptor.writable(leaf(GPA).pte())).isFalse();
        assertThat(v.access(GPA, Access.WRITE)).isEqualTo(Vcpu.EXIT_MMIO);
    }
}
