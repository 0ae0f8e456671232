package dev.ptlab.mm;

import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.ArrayList;
import java.util.List;

/**
 * Records every invalidation a space sends and checks the notifier contract as it goes: end gets
 * the same range object as the start before it, and the callbacks run without the page-table lock.
 */
final class RecordingNotifier implements MmuNotifier {
    private final AddressSpace mm;
    final List<NotifierRange> starts = new ArrayList<>();
    final List<NotifierRange> ends = new ArrayList<>();
    int releases;

    RecordingNotifier(AddressSpace mm) {
        this.mm = mm;
        mm.notifiers().register(this);
    }

    @Override
    public synchronized void invalidateRangeStart(NotifierRange range) {
        if (mm.table.locked()) throw new AssertionError("notifier start called with the PTL held: " + range);
        if (!mm.mmapLock().heldForRead()) throw new AssertionError("notifier start called without the mmap lock: " + range);
        starts.add(range);
    }

    @Override
    public synchronized void invalidateRangeEnd(NotifierRange range) {
        if (mm.table.locked()) throw new AssertionError("notifier end called with the PTL held: " + range);
        if (!starts.contains(range)) throw new AssertionError("end without its start: " + range);
        ends.add(range);
    }

    @Override
    public void release() {
        releases++;
    }

    synchronized List<NotifierRange> of(NotifierEvent event) {
        List<NotifierRange> out = new ArrayList<>();
        for (NotifierRange r : starts) if (r.event() == event) out.add(r);
        return out;
    }

    synchronized void clear() {
        starts.clear();
        ends.clear();
    }

    /** The only invalidation recorded since the last clear, which must have ended too. */
    synchronized NotifierRange single() {
        if (starts.size() != 1 || ends.size() != 1) throw new AssertionError("expected one invalidation, got " + starts + " / " + ends);
        return starts.get(0);
    }
}
