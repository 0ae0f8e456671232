package dev.ptlab.mm.notify;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class MmuNotifiersTest {
    private static final long PAGE = 4096;

    /** An interval subscriber that follows the documented protocol and records what it saw. */
    private static final class Recorder implements IntervalInvalidator {
        final List<NotifierRange> seen = new ArrayList<>();
        final List<Long> seqs = new ArrayList<>();

        @Override
        public synchronized boolean invalidate(IntervalSubscription sub, NotifierRange range, long currentSeq) {
            sub.setSeq(currentSeq);
            seen.add(range);
            seqs.add(currentSeq);
            return true;
        }
    }

    @Test
    void wholeSpaceSubscribersSeeStartThenEndWithTheSameRangeAndEventsAreCounted() {
        MmuNotifiers hub = new MmuNotifiers();
        List<String> log = new ArrayList<>();
        hub.register(new MmuNotifier() {
            @Override public void invalidateRangeStart(NotifierRange r) { log.add("start " + r); }
            @Override public void invalidateRangeEnd(NotifierRange r) { log.add("end " + r); }
        });
        Object owner = "dev0";
        NotifierRange r = new NotifierRange(0x1000, 0x3000, NotifierEvent.EXCLUSIVE, owner);
        hub.invalidateRangeStart(r);
        hub.invalidateRangeEnd(r);
        hub.invalidateRangeStart(new NotifierRange(0, PAGE, NotifierEvent.UNMAP, null));

        assertThat(log).containsExactly("start EXCLUSIVE [0x1000, 0x3000) owner dev0", "end EXCLUSIVE [0x1000, 0x3000) owner dev0",
                "start UNMAP [0x0, 0x1000)");
        assertThat(hub.count(NotifierEvent.EXCLUSIVE)).isEqualTo(1);
        assertThat(hub.count(NotifierEvent.UNMAP)).isEqualTo(1);
        assertThat(hub.counts()).containsOnlyKeys(NotifierEvent.EXCLUSIVE, NotifierEvent.UNMAP);
    }

    @Test
    void onlyOverlappingIntervalsAreInvalidatedAndOnlyTheirReadRetryFails() {
        MmuNotifiers hub = new MmuNotifiers();
        Recorder low = new Recorder();
        Recorder high = new Recorder();
        IntervalSubscription a = hub.insertInterval(0, 4 * PAGE, low);
        IntervalSubscription b = hub.insertInterval(8 * PAGE, 4 * PAGE, high);
        long seqA = a.readBegin();
        long seqB = b.readBegin();

        NotifierRange r = new NotifierRange(2 * PAGE, 5 * PAGE, NotifierEvent.CLEAR, null);
        hub.invalidateRangeStart(r);
        assertThat(hub.sequence() & 1).as("odd while in progress").isEqualTo(1);
        hub.invalidateRangeEnd(r);

        assertThat(low.seen).containsExactly(r);
        assertThat(high.seen).isEmpty();
        assertThat(a.readRetry(seqA)).isTrue();
        assertThat(b.readRetry(seqB)).isFalse();
        assertThat(hub.sequence() & 1).as("even when idle").isEqualTo(0);
        // A fresh read section after the invalidation is stable again.
        long again = a.readBegin();
        assertThat(a.readRetry(again)).isFalse();
    }

    @Test
    void aRangeEndingWhereTheIntervalStartsDoesNotOverlap() {
        MmuNotifiers hub = new MmuNotifiers();
        Recorder rec = new Recorder();
        IntervalSubscription s = hub.insertInterval(4 * PAGE, PAGE, rec);
        long seq = s.readBegin();
        NotifierRange r = new NotifierRange(0, 4 * PAGE, NotifierEvent.UNMAP, null);
        hub.invalidateRangeStart(r);
        hub.invalidateRangeEnd(r);
        assertThat(rec.seen).isEmpty();
        assertThat(s.readRetry(seq)).isFalse();
    }

    @Test
    void readBeginWaitsForAnInvalidationInProgressOnItsInterval() throws Exception {
        MmuNotifiers hub = new MmuNotifiers();
        IntervalSubscription s = hub.insertInterval(0, PAGE, new Recorder());
        NotifierRange r = new NotifierRange(0, PAGE, NotifierEvent.PROTECTION_VMA, null);
        hub.invalidateRangeStart(r);

        AtomicLong got = new AtomicLong(-1);
        CountDownLatch done = new CountDownLatch(1);
        Thread reader = new Thread(() -> {
            got.set(s.readBegin());
            done.countDown();
        });
        reader.start();
        // Deterministic: the reader must reach WAITING (inside readBegin) and stay there.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (reader.getState() != Thread.State.WAITING && System.nanoTime() < deadline) Thread.onSpinWait();
        assertThat(reader.getState()).isEqualTo(Thread.State.WAITING);
        assertThat(done.getCount()).isEqualTo(1);

        hub.invalidateRangeEnd(r);
        assertThat(done.await(10, TimeUnit.SECONDS)).isTrue();
        reader.join();
        // The value it got is the one the invalidation stored: stable now.
        assertThat(s.readRetry(got.get())).isFalse();
    }

    @Test
    void overlappingInvalidationsKeepTheSequenceOddUntilTheLastEnds() {
        MmuNotifiers hub = new MmuNotifiers();
        Recorder rec = new Recorder();
        hub.insertInterval(0, 16 * PAGE, rec);
        NotifierRange first = new NotifierRange(0, PAGE, NotifierEvent.CLEAR, null);
        NotifierRange second = new NotifierRange(PAGE, 2 * PAGE, NotifierEvent.CLEAR, null);
        hub.invalidateRangeStart(first);
        long odd = hub.sequence();
        hub.invalidateRangeStart(second);
        assertThat(hub.sequence()).isEqualTo(odd);
        assertThat(rec.seqs).containsExactly(odd, odd);
        hub.invalidateRangeEnd(first);
        assertThat(hub.sequence()).as("still one in progress").isEqualTo(odd);
        hub.invalidateRangeEnd(second);
        assertThat(hub.sequence()).isEqualTo(odd + 1);
    }

    @Test
    void aSubscriptionInsertedDuringAnInvalidationIsNotConsideredInvalidated() {
        MmuNotifiers hub = new MmuNotifiers();
        hub.insertInterval(0, PAGE, new Recorder());
        NotifierRange r = new NotifierRange(0, PAGE, NotifierEvent.CLEAR, null);
        hub.invalidateRangeStart(r);
        IntervalSubscription late = hub.insertInterval(0, PAGE, new Recorder());
        long seq = late.readBegin(); // must not block: the running invalidation did not reach it
        hub.invalidateRangeEnd(r);
        assertThat(late.readRetry(seq)).isFalse();
    }

    @Test
    void aRemovedSubscriptionHearsNothing() {
        MmuNotifiers hub = new MmuNotifiers();
        Recorder rec = new Recorder();
        IntervalSubscription s = hub.insertInterval(0, PAGE, rec);
        s.remove();
        NotifierRange r = new NotifierRange(0, PAGE, NotifierEvent.UNMAP, null);
        hub.invalidateRangeStart(r);
        hub.invalidateRangeEnd(r);
        assertThat(rec.seen).isEmpty();
        assertThat(s.removed()).isTrue();
        assertThat(hub.sequence() & 1).isZero();
    }

    @Test
    void agingAsksEverySubscriberAndOrsTheAnswers() {
        MmuNotifiers hub = new MmuNotifiers();
        List<String> calls = new ArrayList<>();
        hub.register(new MmuNotifier() {
            @Override public boolean clearFlushYoung(long s, long e) { calls.add("a"); return false; }
        });
        hub.register(new MmuNotifier() {
            @Override public boolean clearFlushYoung(long s, long e) { calls.add("b"); return true; }
            @Override public boolean testYoung(long s, long e) { return true; }
        });
        assertThat(hub.clearFlushYoung(0, PAGE)).isTrue();
        assertThat(calls).containsExactly("a", "b");
        assertThat(hub.testYoung(0, PAGE)).isTrue();
    }

    @Test
    void badArgumentsNameTheArgument() {
        MmuNotifiers hub = new MmuNotifiers();
        assertThatThrownBy(() -> hub.insertInterval(0, 0, new Recorder())).hasMessageContaining("length: 0x0");
        assertThatThrownBy(() -> hub.insertInterval(0, PAGE, null)).hasMessageContaining("invalidator: null");
        assertThatThrownBy(() -> new NotifierRange(PAGE, PAGE, NotifierEvent.UNMAP, null)).hasMessageContaining("end: 0x1000");
        assertThatThrownBy(() -> hub.register(null)).hasMessageContaining("notifier: null");
    }
}
