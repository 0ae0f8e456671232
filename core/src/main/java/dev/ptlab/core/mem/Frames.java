package dev.ptlab.core.mem;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Atomic access to descriptors in a table frame. A frame is a plain {@code long[]}; ordering comes
 * from the access mode, chosen by the caller:
 * <ul>
 *   <li>{@link #getAcquire}: hardware walkers and shared software walkers. Pairs with
 *       {@link #setRelease} so a walker that sees a new table descriptor also sees the zeroed or
 *       pre-built contents of that table (the kernel's store-release in make + DSB ISHST).</li>
 *   <li>{@link #compareAndExchange}: shared-mode updates; the winner owns the entry.</li>
 *   <li>{@link #getOpaque}/{@link #setOpaque}: exclusive walks under the write lock, where no other
 *       software walker can run; still single-copy atomic because hardware walkers can. (Opaque
 *       compiles to a plain load or store on x86 and arm64; the name says what Java promises.)</li>
 * </ul>
 */
public final class Frames {
    private Frames() {}

    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);

    public static long getAcquire(long[] frame, int index) {
        return (long) LONGS.getAcquire(frame, index);
    }

    public static void setRelease(long[] frame, int index, long value) {
        LONGS.setRelease(frame, index, value);
    }

    public static long compareAndExchange(long[] frame, int index, long expected, long value) {
        return (long) LONGS.compareAndExchange(frame, index, expected, value);
    }

    /** Read for an exclusive walk: single-copy atomic, no ordering (a plain load on x86 and arm64). */
    public static long getOpaque(long[] frame, int index) {
        return (long) LONGS.getOpaque(frame, index);
    }

    /**
     * Store for an exclusive walk. Opaque rather than a plain Java store because hardware walkers
     * (other vCPUs' MMUs) may read the entry at any time and must never see a torn descriptor.
     */
    public static void setOpaque(long[] frame, int index, long value) {
        LONGS.setOpaque(frame, index, value);
    }
}
