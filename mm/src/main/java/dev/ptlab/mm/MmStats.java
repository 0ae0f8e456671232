package dev.ptlab.mm;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;

/** Event counters of one address space (thread-safe). */
public final class MmStats {
    private final AtomicLongArray counts = new AtomicLongArray(MmEvent.values().length);

    public void add(MmEvent event) {
        counts.incrementAndGet(event.ordinal());
    }

    public void add(MmEvent event, long n) {
        if (n != 0) counts.addAndGet(event.ordinal(), n);
    }

    public long count(MmEvent event) {
        return counts.get(event.ordinal());
    }

    /** Non-zero counters. */
    public Map<MmEvent, Long> snapshot() {
        Map<MmEvent, Long> m = new EnumMap<>(MmEvent.class);
        for (MmEvent e : MmEvent.values()) {
            long c = counts.get(e.ordinal());
            if (c != 0) m.put(e, c);
        }
        return m;
    }

    @Override
    public String toString() {
        return snapshot().toString();
    }
}
