package dev.ptlab.core.mem;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;

/**
 * Pre-filled zeroed frames a walker may allocate tables from (the kernel's
 * {@code kvm_mmu_memory_cache}). Operations that may need a table take a cache, topped up before
 * the walk, so allocation inside a walk never blocks; an empty cache is an out-of-memory error
 * (ENOMEM) and the operation stops with the table still consistent.
 *
 * <p>Not thread-safe: each vCPU (or the exclusive caller) owns its cache.
 */
public final class MemCache {
    private final PhysicalMemory memory;
    private long[] frames = new long[16];
    private int count;
    private long refills;

    public MemCache(PhysicalMemory memory) {
        if (memory == null) throw new IllegalArgumentException("memory: null");
        this.memory = memory;
    }

    public PhysicalMemory memory() { return memory; }

    /** Frames available. */
    public int size() { return count; }

    /** Number of top-ups that had to allocate at least one frame. */
    public long refills() { return refills; }

    /** Fills the cache up to {@code min} frames from physical memory. */
    public void topUp(int min) {
        if (min < 0) throw PageTableException.invalidArgument("min", (Object) min, "is negative");
        if (count >= min) return;
        if (frames.length < min) frames = java.util.Arrays.copyOf(frames, Math.max(min, frames.length * 2));
        refills++;
        while (count < min) {
            // Allocate before touching count: in "frames[count++] = allocate()" the index (and its
            // increment) is evaluated first, so an ENOMEM would leave a phantom zero entry behind.
            long pa = memory.allocate();
            frames[count++] = pa;
        }
    }

    /** Takes one zeroed frame (refcount 1). */
    public long allocate() {
        if (count == 0) {
            throw new PageTableException(Errno.ENOMEM, PageTableException.NO_ADDRESS, PageTableException.NO_LEVEL,
                    "memory cache is empty (top it up before the operation)");
        }
        return frames[--count];
    }

    /** Returns a frame taken from this cache but never linked into a table (it must still be zero). */
    public void giveBack(long pa) {
        if (count == frames.length) frames = java.util.Arrays.copyOf(frames, frames.length * 2);
        frames[count++] = pa;
    }

    /** Returns every cached frame to physical memory. */
    public void release() {
        while (count > 0) memory.free(frames[--count]);
    }
}
