package dev.ptlab.mm.device;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.MmException;
import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A device whose thread the scheduler stops in the middle of a conversion (issue 16): being slow
 * is not losing. The pause is a whole-space notifier registered after the device's subscription
 * that holds the converting thread inside its own EXCLUSIVE invalidation, after
 * {@code readBegin} and before the sequence check: exactly where a descheduled driver thread
 * would sit. Only lost races, {@link MirrorDevice#MAX_LOST_RACES} of them in a row, may make the
 * device give up.
 */
class MirrorDeviceStarvationTest {
    private static final long PAGE = Granule.G4K.pageSize();

    private Host host;
    private AddressSpace mm;
    private long buf;
    private MirrorDevice dev;

    @BeforeEach
    void setUp() {
        host = new Host(Granule.G4K, 16L << 20, 48, true);
        mm = host.newAddressSpace();
        buf = mm.mmap(0, 4 * PAGE, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        for (int p = 0; p < 4; p++) mm.writeInt(buf + p * PAGE, p);
        dev = new MirrorDevice(mm, "gpu");
    }

    @AfterEach
    void tearDown() {
        dev.close();
        host.checkInvariants(true);
        mm.close();
        assertThat(host.memory().pagesInUse()).isZero();
    }

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
        AtomicInteger paused = new AtomicInteger();
        onOwnConversion(() -> {
            if (paused.getAndIncrement() != 0) return;
            try {
                Thread.sleep(TimeUnit.NANOSECONDS.toMillis(MirrorDevice.TIMEOUT_NANOS) + 200);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        });

        assertThat(dev.atomicAdd(buf + 2 * PAGE, 5)).isEqualTo(2);

        assertThat(paused.get()).as("one attempt: slow is not lost").isEqualTo(1);
        assertThat(dev.count(MirrorDevice.Counter.CONVERSION_RETRY)).isZero();
        assertThat(mm.readInt(buf + 2 * PAGE)).isEqualTo(7);
    }

    @Test
    void aConversionThatLosesEveryRaceGivesUpOnlyAfterMaxLostRacesInARowSpanningTheTimeout() {
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
