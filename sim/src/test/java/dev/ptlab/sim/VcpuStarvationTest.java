package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.Access;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.HostPte;
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
 * A thread the scheduler stops between {@code invalidateRangeStart} and {@code End} (issue 16):
 * a vCPU whose fault finds that invalidation in progress over its address waits for it to end,
 * as long as it takes, instead of re-faulting into the livelock bound. The pause is a
 * whole-space notifier registered after the VM's, so it runs after the VM counted the
 * invalidation in progress and before anyone ends it.
 */
class VcpuStarvationTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long GPA = 0x4000_0000L;
    /** How long the invalidating thread stays descheduled: far longer than 10,000 re-faults take. */
    static final long HOLD_MILLIS = 2_000;

    private Host host;
    private AddressSpace mm;
    private Vm vm;
    private long hva;

    @BeforeEach
    void setUp() {
        host = new Host(Granule.G4K, 64L << 20, 48, true);
        mm = host.newAddressSpace();
        vm = new Vm(VmConfig.defaults().withChecking(true));
        hva = mm.mmap(0, M2, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        vm.addMemslot(GPA, M2, mm, hva, false);
    }

    @AfterEach
    void everythingComesBack() {
        host.checkInvariants(true);
        vm.destroy();
        mm.close();
        assertThat(vm.tableMemory().framesInUse()).isZero();
        assertThat(host.memory().pagesInUse()).isZero();
    }

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
        MirrorDevice dev = new MirrorDevice(mm, "gpu");
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
        dev.close();
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
