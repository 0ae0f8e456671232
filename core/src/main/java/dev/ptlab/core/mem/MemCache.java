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

    /**
     * Fills the cache up to {@code min} frames from physical memory. When memory runs out first,
     * the cache keeps what it got and the call fails with ENOMEM.
     */
    public void topUp(int min) {
        if (min < 0) throw PageTableException.invalidArgument("min", (Object) min, "is negative");
        if (count >= min) return;
        if (frames.length < min) {
            // Never grow the array past what memory can fill: topUp(Integer.MAX_VALUE) on a small
            // memory must end in ENOMEM, not in the JVM's OutOfMemoryError.
            long fillable = (long) count + memory.frameCount() - memory.framesInUse() + 1;
            int length = (int) Math.min(Math.max(min, (long) frames.length * 2), Math.max(fillable, frames.length));
            frames = java.util.Arrays.copyOf(frames, length);
        }
        refills++;
        while (count < min) {
            // Allocate before touching count: in "frames[count++] = allocate()" the index (and its
            // increment) is evaluated first, so an ENOMEM would leave a phantom zero entry behind.
            long pa = memory.allocate();
            if (count == frames.length) frames = java.util.Arrays.copyOf(frames, frames.length + 1);
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

    /**
     * Returns the frame this cache handed out last (and not yet returned), which was never linked
     * into a table, so it is still zero. Frames come back in the reverse order they left; any
     * other PA (a frame of a table, of another cache or memory, the table's root) is refused:
     * accepting it would free a live frame when the cache is released.
     */
    public void giveBack(long pa) {
        // allocate() leaves the handed-out PA in the slot just above count: frames[count] is the
        // most recent frame still out, unless a top-up has refilled that slot since.
        if (count >= frames.length || frames[count] != pa || !memory.isLive(pa) || memory.count(pa) != 1) {
            throw PageTableException.invalidArgument("pa", pa, "is not the frame this memory cache handed out last");
        }
        count++;
    }

    /** Returns every cached frame to physical memory. */
    public void release() {
        while (count > 0) memory.free(frames[--count]);
    }
}
