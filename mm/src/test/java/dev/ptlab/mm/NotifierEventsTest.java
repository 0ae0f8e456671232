package dev.ptlab.mm;

import static dev.ptlab.mm.MmFixture.PAGE;
import static dev.ptlab.mm.MmFixture.PRIVATE;
import static dev.ptlab.mm.MmFixture.RW;
import static dev.ptlab.mm.MmFixture.SHARED;
import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.hw.Access;
import dev.ptlab.mm.notify.IntervalSubscription;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Each operation sends the invalidation the kernel sends: event, range and owner. */
class NotifierEventsTest {
    private final Host host = MmFixture.host(1);
    private final AddressSpace mm = host.newAddressSpace();
    private final RecordingNotifier rec = new RecordingNotifier(mm);

    private static void assertRange(NotifierRange r, NotifierEvent event, long start, long end, Object owner) {
        assertThat(r.event()).isEqualTo(event);
        assertThat(r.start()).as("start").isEqualTo(start);
        assertThat(r.end()).as("end").isEqualTo(end);
        assertThat(r.owner()).isSameAs(owner);
    }

    @Test
    void munmapSendsUnmapOverTheMappedPart() {
        long a = mm.mmap(0, 8 * PAGE, RW, PRIVATE);
        mm.writeInt(a, 1);
        rec.clear();
        mm.munmap(a + 2 * PAGE, 2 * PAGE);
        assertRange(rec.single(), NotifierEvent.UNMAP, a + 2 * PAGE, a + 4 * PAGE, null);
        rec.clear();
        mm.munmap(a + 6 * PAGE, 16 * PAGE);
        assertRange(rec.single(), NotifierEvent.UNMAP, a + 6 * PAGE, a + 8 * PAGE, null);
        rec.clear();
        mm.munmap(a + 2 * PAGE, 2 * PAGE);
        assertThat(rec.starts).as("nothing mapped there any more").isEmpty();
        mm.mmap(a, PAGE, RW, PRIVATE | Mman.MAP_FIXED);
        assertRange(rec.single(), NotifierEvent.UNMAP, a, a + PAGE, null);
    }

    @Test
    void dontneedSendsClearAndMprotectProtectionVma() {
        long a = mm.mmap(0, 8 * PAGE, RW, PRIVATE);
        rec.clear();
        mm.madvise(a + PAGE, PAGE, Mman.MADV_DONTNEED);
        assertRange(rec.single(), NotifierEvent.CLEAR, a + PAGE, a + 2 * PAGE, null);
        rec.clear();
        mm.mprotect(a, 3 * PAGE, Mman.PROT_READ);
        assertRange(rec.single(), NotifierEvent.PROTECTION_VMA, a, a + 3 * PAGE, null);
        rec.clear();
        mm.madvise(a, 8 * PAGE, Mman.MADV_HUGEPAGE);
        assertThat(rec.starts).as("a VMA flag only").isEmpty();
    }

    @Test
    void forkSendsProtectionPageOverEachPrivateArea() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        long s = mm.mmap(0, 4 * PAGE, RW, SHARED);
        long b = mm.mmap(0, 2 * PAGE, Mman.PROT_READ, PRIVATE);
        mm.writeInt(a, 1);
        mm.writeInt(s, 1);
        rec.clear();
        AddressSpace child = mm.fork();
        List<NotifierRange> got = rec.of(NotifierEvent.PROTECTION_PAGE);
        assertThat(rec.starts).hasSize(2).containsExactlyElementsOf(got);
        List<Long> starts = new ArrayList<>();
        for (NotifierRange r : got) {
            starts.add(r.start());
            assertThat(r.end() - r.start()).isEqualTo(r.start() == a ? 4 * PAGE : 2 * PAGE);
        }
        assertThat(starts).containsExactlyInAnyOrder(a, b);
        child.close();
    }

    @Test
    void cowCopySendsClearOverThePageAndReuseSendsNothing() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        mm.writeInt(a + PAGE, 1);
        AddressSpace child = mm.fork();
        rec.clear();
        RecordingNotifier childRec = new RecordingNotifier(child);
        child.writeInt(a + PAGE, 2);
        assertRange(childRec.single(), NotifierEvent.CLEAR, a + PAGE, a + 2 * PAGE, null);
        mm.writeInt(a + PAGE, 3);
        assertThat(rec.starts).as("reuse").isEmpty();
        assertThat(mm.stats().count(MmEvent.COW_REUSE)).isEqualTo(1);
        child.close();
    }

    @Test
    void reclaimSendsClearOverThePage() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        mm.writeInt(a + 2 * PAGE, 1);
        rec.clear();
        assertThat(mm.reclaimPage(a + 2 * PAGE + 100)).isTrue();
        assertRange(rec.single(), NotifierEvent.CLEAR, a + 2 * PAGE, a + 3 * PAGE, null);
    }

    /**
     * A THP split is an invalidation: a secondary MMU's 2M mapping must go before the PMD becomes
     * PTEs and the folio is cut into new ones. The notifier brackets the split: at its start the
     * huge mapping is still there, at its end it is gone.
     */
    @Test
    void thpSplitForGupSendsClearOverTheHugePageAroundTheSplit() {
        long a = mm.mmap(0, 2 * MmFixture.M2, RW, PRIVATE);
        long t = (a + MmFixture.M2 - 1) & -MmFixture.M2;
        mm.madvise(a, 2 * MmFixture.M2, Mman.MADV_HUGEPAGE);
        mm.writeInt(t + 5 * PAGE, 5);
        assertThat(mm.pteLevel(t)).isEqualTo(2);
        List<Integer> levelAtStart = new ArrayList<>();
        List<Integer> levelAtEnd = new ArrayList<>();
        mm.notifiers().register(new dev.ptlab.mm.notify.MmuNotifier() {
            @Override
            public void invalidateRangeStart(NotifierRange range) {
                levelAtStart.add(mm.pteLevel(t + 5 * PAGE));
            }

            @Override
            public void invalidateRangeEnd(NotifierRange range) {
                levelAtEnd.add(mm.pteLevel(t + 5 * PAGE));
            }
        });
        rec.clear();
        GupResult pin = new GupResult();
        mm.getUserPage(t + 5 * PAGE, Mman.FOLL_SPLIT_PMD, pin);
        assertRange(rec.single(), NotifierEvent.CLEAR, t, t + MmFixture.M2, null);
        assertThat(levelAtStart).containsExactly(2);
        assertThat(levelAtEnd).containsExactly(3);
        assertThat(pin.folio.order()).as("the folio was split too").isZero();
        assertThat(mm.stats().count(MmEvent.THP_SPLIT)).isEqualTo(2);
        pin.folio.put();
        rec.clear();
        mm.getUserPage(t + 6 * PAGE, Mman.FOLL_SPLIT_PMD, pin);
        assertThat(rec.starts).as("nothing huge left to split").isEmpty();
        pin.folio.put();
    }

    @Test
    void reclaimOfAThpPageSplitsItUnderClearOverTheHugePageFirst() {
        long a = mm.mmap(0, 2 * MmFixture.M2, RW, PRIVATE);
        long t = (a + MmFixture.M2 - 1) & -MmFixture.M2;
        mm.madvise(a, 2 * MmFixture.M2, Mman.MADV_HUGEPAGE);
        mm.writeInt(t, 1);
        rec.clear();
        assertThat(mm.reclaimPage(t + 3 * PAGE)).isTrue();
        assertThat(rec.starts).hasSize(2);
        assertRange(rec.starts.get(0), NotifierEvent.CLEAR, t, t + MmFixture.M2, null);
        assertRange(rec.starts.get(1), NotifierEvent.CLEAR, t + 3 * PAGE, t + 4 * PAGE, null);
        assertThat(mm.readInt(t)).isEqualTo(1);
    }

    @Test
    void deviceExclusiveConversionSendsExclusiveWithTheOwnerAndEachRestoreSendsClearWithout() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        mm.writeInt(a + PAGE, 1);
        mm.writeInt(a + 2 * PAGE, 2);
        rec.clear();
        Object owner = new Object();
        Folio f = mm.makeDeviceExclusive(a + PAGE + 8, owner);
        assertRange(rec.single(), NotifierEvent.EXCLUSIVE, a + PAGE, a + 2 * PAGE, owner);
        f.unlock();
        f.put();
        rec.clear();
        // remove_device_exclusive_entry (6.15+, 7.1-rc4): MMU_NOTIFY_CLEAR, owner NULL, one page.
        mm.readInt(a + PAGE);
        assertRange(rec.single(), NotifierEvent.CLEAR, a + PAGE, a + 2 * PAGE, null);

        // GUP (what hmm_range_fault and a second device's conversion do) faults through the
        // same handler: the same CLEAR.
        f = mm.makeDeviceExclusive(a + 2 * PAGE, owner);
        f.unlock();
        f.put();
        rec.clear();
        GupResult gup = new GupResult();
        mm.getUserPage(a + 2 * PAGE, 0, gup);
        gup.folio.put();
        assertRange(rec.single(), NotifierEvent.CLEAR, a + 2 * PAGE, a + 3 * PAGE, null);
        assertThat(mm.notifiers().count(NotifierEvent.EXCLUSIVE)).as("the two conversions only").isEqualTo(2);
    }

    @Test
    void closeCallsReleaseAndNoInvalidation() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        mm.writeInt(a, 1);
        rec.clear();
        mm.close();
        assertThat(rec.releases).isEqualTo(1);
        assertThat(rec.starts).isEmpty();
    }

    @Test
    void intervalSubscriptionSeesOnlyOverlappingInvalidationsAndTheSequenceMoves() {
        long a = mm.mmap(0, 8 * PAGE, RW, PRIVATE);
        for (int i = 0; i < 8; i++) mm.writeInt(a + i * PAGE, i);
        List<NotifierRange> seen = new ArrayList<>();
        IntervalSubscription sub = mm.notifiers().insertInterval(a + 4 * PAGE, 2 * PAGE, (s, range, seq) -> {
            synchronized (seen) {
                s.setSeq(seq);
                seen.add(range);
            }
            return true;
        });
        long seq = sub.readBegin();
        mm.madvise(a, PAGE, Mman.MADV_DONTNEED);
        assertThat(seen).isEmpty();
        assertThat(sub.readRetry(seq)).isFalse();
        mm.reclaimPage(a + 5 * PAGE);
        assertThat(seen).hasSize(1);
        assertRange(seen.get(0), NotifierEvent.CLEAR, a + 5 * PAGE, a + 6 * PAGE, null);
        assertThat(sub.readRetry(seq)).as("an invalidation hit the interval").isTrue();
        long seq2 = sub.readBegin();
        assertThat(seq2).isNotEqualTo(seq);
        assertThat(mm.notifiers().sequence() & 1).as("no invalidation in progress").isZero();
        mm.mprotect(a, 8 * PAGE, Mman.PROT_READ);
        assertThat(seen).hasSize(2);
        assertThat(sub.readRetry(seq2)).isTrue();
        assertThat(mm.readInt(a + 5 * PAGE)).isEqualTo(5);
        sub.remove();
        mm.munmap(a, 8 * PAGE);
        assertThat(seen).hasSize(2);
        assertThat(mm.notifiers().count(NotifierEvent.UNMAP)).isEqualTo(1);
        assertThat(mm.handleFault(a, Access.READ)).isEqualTo(FaultResult.SEGV_MAPERR);
    }
}
