package dev.ptlab.mm.notify;

/**
 * One invalidation (pass the same object to start and end): {@code [start, end)} of the address space's virtual addresses, why, and who
 * caused it ({@code owner} is the cookie the initiator passed, null for core mm).
 */
public final class NotifierRange {
    private final long start;
    private final long end;
    private final NotifierEvent event;
    private final Object owner;
    /** Set by {@link MmuNotifiers#invalidateRangeStart} if this range made the sequence odd (an interval overlapped). */
    volatile boolean countedActive;

    public NotifierRange(long start, long end, NotifierEvent event, Object owner) {
        if (end <= start) {
            throw new IllegalArgumentException("end: 0x" + Long.toHexString(end) + " is not above start 0x" + Long.toHexString(start));
        }
        if (event == null) throw new IllegalArgumentException("event: null");
        this.start = start;
        this.end = end;
        this.event = event;
        this.owner = owner;
    }

    public long start() { return start; }
    public long end() { return end; }
    public NotifierEvent event() { return event; }
    public Object owner() { return owner; }

    public boolean overlaps(long s, long e) {
        return s < end && start < e;
    }

    @Override
    public String toString() {
        return event + " [0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end) + ")"
                + (owner == null ? "" : " owner " + owner);
    }
}
