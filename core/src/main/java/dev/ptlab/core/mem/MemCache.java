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
    /**
     * The kernel's {@code KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE} on arm64 (asm/kvm_types.h): the
     * capacity of a vCPU's memory cache.
     */
    public static final int DEFAULT_CAPACITY = 40;

    private final PhysicalMemory memory;
    private final int capacity;
    private long[] frames = new long[16];
    private int count;
    private long refills;

    /** A cache of {@link #DEFAULT_CAPACITY} frames, as a vCPU's. */
    public MemCache(PhysicalMemory memory) {
        this(memory, DEFAULT_CAPACITY);
    }

    /**
     * A cache that a top-up fills to {@code capacity} frames (the eager-split cache's capacity is
     * its minimum, the frames one split chunk needs).
     */
    public MemCache(PhysicalMemory memory, int capacity) {
        if (memory == null) throw new IllegalArgumentException("memory: null");
        if (capacity < 1) throw PageTableException.invalidArgument("capacity", (Object) capacity, "is not positive");
        this.memory = memory;
        this.capacity = capacity;
    }

    public PhysicalMemory memory() { return memory; }

    /** Frames a top-up fills the cache to (when {@code min} is not larger). */
    public int capacity() { return capacity; }

    /** Frames available. */
    public int size() { return count; }

    /** Number of top-ups that had to allocate at least one frame. */
    public long refills() { return refills; }

    /**
     * The kernel's {@code kvm_mmu_topup_memory_cache} (virt/kvm/kvm_main.c, unchanged in Linux
     * 7.1): nothing if the cache holds at least {@code min} frames; otherwise it is filled to its
     * {@link #capacity}, so the next few faults need no allocation. If memory runs out first, the
     * cache keeps what it got and the call succeeds if that is at least {@code min}, else fails
     * with ENOMEM. A {@code min} above the capacity fills to {@code min} here (the kernel stops at
     * its capacity and reports success with fewer than {@code min}, a caller bug there): ptlab's
     * scenario lines and benches size one cache for a whole operation.
     * Counted in {@link #refills} when it allocated at least one frame.
     */
    public void topUp(int min) {
        if (min < 0) throw PageTableException.invalidArgument("min", (Object) min, "is negative");
        if (count >= min) return;
        int target = Math.max(min, capacity);
        if (frames.length < target) {
            // Never grow the array past what memory can fill: topUp(Integer.MAX_VALUE) on a small
            // memory must end in ENOMEM, not in the JVM's OutOfMemoryError.
            long fillable = (long) count + memory.frameCount() - memory.framesInUse() + 1;
            int length = (int) Math.min(Math.max(target, (long) frames.length * 2), Math.max(fillable, frames.length));
            frames = java.util.Arrays.copyOf(frames, length);
        }
        refills++;
        while (count < target) {
            // Allocate before touching count: in "frames[count++] = allocate()" the index (and its
            // increment) is evaluated first, so an ENOMEM would leave a phantom zero entry behind.
            long pa;
            try {
                pa = memory.allocate();
            } catch (PageTableException e) {
                if (e.errno() == Errno.ENOMEM && count >= min) return; // enough for this caller
                throw e;
            }
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
