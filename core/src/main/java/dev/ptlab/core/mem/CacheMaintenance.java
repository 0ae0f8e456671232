package dev.ptlab.core.mem;

import java.util.concurrent.atomic.LongAdder;

/**
 * Cache-maintenance operations the tables issue on the memory a leaf maps: D-cache clean and
 * invalidate to the point of coherency (before a cacheable mapping appears when FWB is off, and
 * after an unmap so no line allocated through the old mapping survives), and I-cache invalidate
 * to the point of unification (before memory becomes executable). Nothing is cached in the
 * simulation, so the operations are counted: calls and bytes ({@link CacheCounter}).
 */
public final class CacheMaintenance {
    /** Observer of individual operations, for tests and tracing tools that check ordering. */
    public interface Listener {
        void dcacheCleanInvalPoc(long pa, long size);

        void icacheInvalPou(long pa, long size);
    }

    private volatile Listener listener;
    /** By {@link CacheCounter} ordinal. */
    private final LongAdder[] counts = new LongAdder[CacheCounter.values().length];

    public CacheMaintenance() {
        for (int i = 0; i < counts.length; i++) counts[i] = new LongAdder();
    }

    public void dcacheCleanInvalPoc(long pa, long size) {
        counts[CacheCounter.DCACHE_OPS.ordinal()].increment();
        counts[CacheCounter.DCACHE_BYTES.ordinal()].add(size);
        Listener l = listener;
        if (l != null) l.dcacheCleanInvalPoc(pa, size);
    }

    public void icacheInvalPou(long pa, long size) {
        counts[CacheCounter.ICACHE_OPS.ordinal()].increment();
        counts[CacheCounter.ICACHE_BYTES.ordinal()].add(size);
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
        record(dOps, dBytes, iOps, iBytes, 0, 0);
    }

    /**
     * {@link #record(long, long, long, long)} with the part of those operations that ran inside
     * a break-before-make window ({@link CacheCounter#BBM_CMO_OPS}); that part is already
     * included in the D- and I-cache counts.
     */
    public void record(long dOps, long dBytes, long iOps, long iBytes, long bbmOps, long bbmBytes) {
        if (bbmOps != 0) {
            counts[CacheCounter.BBM_CMO_OPS.ordinal()].add(bbmOps);
            counts[CacheCounter.BBM_CMO_BYTES.ordinal()].add(bbmBytes);
        }
        if (dOps != 0) {
            counts[CacheCounter.DCACHE_OPS.ordinal()].add(dOps);
            counts[CacheCounter.DCACHE_BYTES.ordinal()].add(dBytes);
        }
        if (iOps != 0) {
            counts[CacheCounter.ICACHE_OPS.ordinal()].add(iOps);
            counts[CacheCounter.ICACHE_BYTES.ordinal()].add(iBytes);
        }
    }

    /** The count of {@code c} so far. */
    public long get(CacheCounter c) {
        return counts[c.ordinal()].sum();
    }

    public long dcacheOps() { return get(CacheCounter.DCACHE_OPS); }
    public long dcacheBytes() { return get(CacheCounter.DCACHE_BYTES); }
    public long icacheOps() { return get(CacheCounter.ICACHE_OPS); }
    public long icacheBytes() { return get(CacheCounter.ICACHE_BYTES); }
    public long bbmCmoOps() { return get(CacheCounter.BBM_CMO_OPS); }
    public long bbmCmoBytes() { return get(CacheCounter.BBM_CMO_BYTES); }

    public void reset() {
        for (LongAdder a : counts) a.reset();
    }
}
