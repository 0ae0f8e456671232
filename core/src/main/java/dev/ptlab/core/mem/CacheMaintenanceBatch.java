package dev.ptlab.core.mem;

/**
 * The cache maintenance one walk issues, on its way to a {@link CacheMaintenance}: each operation
 * is reported to the listener (if one is installed) at the moment it happens, and the counts are
 * summed here and added with one {@link CacheMaintenance#record} when the walk ends, so counting
 * costs nothing shared per leaf. Table operations issue cache maintenance only through one of
 * these.
 *
 * <p>One per walk, used by the walking thread only (not thread-safe).
 */
public final class CacheMaintenanceBatch {
    private final CacheMaintenance target;
    private long dcacheOps;
    private long dcacheBytes;
    private long icacheOps;
    private long icacheBytes;
    private long bbmOps;
    private long bbmBytes;

    public CacheMaintenanceBatch(CacheMaintenance target) {
        if (target == null) throw new IllegalArgumentException("target: null");
        this.target = target;
    }

    /** D-cache clean+invalidate to the point of coherency of {@code [pa, pa + size)}. */
    public void dcacheCleanInvalPoc(long pa, long size) {
        dcacheCleanInvalPoc(pa, size, false);
    }

    /**
     * {@link #dcacheCleanInvalPoc(long, long)}; {@code inBbmWindow}: issued while a valid entry
     * is broken (also counted as {@link CacheCounter#BBM_CMO_OPS}).
     */
    public void dcacheCleanInvalPoc(long pa, long size, boolean inBbmWindow) {
        if (inBbmWindow) inWindow(size);
        dcacheOps++;
        dcacheBytes += size;
        CacheMaintenance.Listener l = target.listener();
        if (l != null) l.dcacheCleanInvalPoc(pa, size);
    }

    /** I-cache invalidate to the point of unification of {@code [pa, pa + size)}. */
    public void icacheInvalPou(long pa, long size) {
        icacheInvalPou(pa, size, false);
    }

    /** {@link #icacheInvalPou(long, long)}; {@code inBbmWindow} as for the D-cache. */
    public void icacheInvalPou(long pa, long size, boolean inBbmWindow) {
        if (inBbmWindow) inWindow(size);
        icacheOps++;
        icacheBytes += size;
        CacheMaintenance.Listener l = target.listener();
        if (l != null) l.icacheInvalPou(pa, size);
    }

    private void inWindow(long size) {
        bbmOps++;
        bbmBytes += size;
    }

    /** Adds what was counted since the last flush to the target's counts. */
    public void flush() {
        target.record(dcacheOps, dcacheBytes, icacheOps, icacheBytes, bbmOps, bbmBytes);
        bbmOps = 0;
        bbmBytes = 0;
        dcacheOps = 0;
        dcacheBytes = 0;
        icacheOps = 0;
        icacheBytes = 0;
    }
}
