package dev.ptlab.core.mem;

import java.util.concurrent.atomic.LongAdder;

/**
 * Cache-maintenance operations the tables issue on the memory a leaf maps: D-cache clean and
 * invalidate to the point of coherency (before a cacheable mapping appears when FWB is off, and
 * after an unmap so no line allocated through the old mapping survives), and I-cache invalidate
 * to the point of unification (before memory becomes executable). Nothing is cached in the
 * simulation, so the operations are counted: calls and bytes.
 */
public final class CacheMaintenance {
    /** Observer of individual operations, for tests and tracing tools that check ordering. */
    public interface Listener {
        void dcacheCleanInvalPoc(long pa, long size);

        void icacheInvalPou(long pa, long size);
    }

    private volatile Listener listener;
    private final LongAdder dcacheOps = new LongAdder();
    private final LongAdder dcacheBytes = new LongAdder();
    private final LongAdder icacheOps = new LongAdder();
    private final LongAdder icacheBytes = new LongAdder();

    public void dcacheCleanInvalPoc(long pa, long size) {
        dcacheOps.increment();
        dcacheBytes.add(size);
        Listener l = listener;
        if (l != null) l.dcacheCleanInvalPoc(pa, size);
    }

    public void icacheInvalPou(long pa, long size) {
        icacheOps.increment();
        icacheBytes.add(size);
        Listener l = listener;
        if (l != null) l.icacheInvalPou(pa, size);
    }

    /**
     * Installs (or, with null, removes) a listener. While one is installed, walkers report each
     * operation at the moment it happens instead of adding their counts at the end of the walk.
     */
    public void setListener(Listener listener) {
        this.listener = listener;
    }

    public Listener listener() {
        return listener;
    }

    /** Adds counts a walk accumulated locally (one update per walk instead of one per leaf). */
    public void record(long dOps, long dBytes, long iOps, long iBytes) {
        if (dOps != 0) {
            dcacheOps.add(dOps);
            dcacheBytes.add(dBytes);
        }
        if (iOps != 0) {
            icacheOps.add(iOps);
            icacheBytes.add(iBytes);
        }
    }

    public long dcacheOps() { return dcacheOps.sum(); }
    public long dcacheBytes() { return dcacheBytes.sum(); }
    public long icacheOps() { return icacheOps.sum(); }
    public long icacheBytes() { return icacheBytes.sum(); }

    public void reset() {
        dcacheOps.reset();
        dcacheBytes.reset();
        icacheOps.reset();
        icacheBytes.reset();
    }
}
