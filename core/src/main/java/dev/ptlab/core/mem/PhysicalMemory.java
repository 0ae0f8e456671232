package dev.ptlab.core.mem;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * A simulated physical address range of granule-sized frames from which table frames are
 * allocated.
 *
 * <p>A frame is found from its PA by arithmetic; there is no map lookup on any path. Each frame
 * has a reference count: an allocation starts at 1, {@link #get}/{@link #put} move it, and the
 * {@code put} that reaches 0 frees the frame. Only table frames get a {@code long[]} (allocated
 * on first use and recycled afterwards), so memory costs one array per table frame plus a few
 * bytes of per-frame metadata.
 *
 * <p>Allocation and freeing are synchronized (they happen on memory-cache refills and table
 * teardown, not per visited entry). Reference counts use atomic read-modify-write so shared
 * walkers can update them concurrently; {@link #getExclusive}/{@link #putExclusive} are the
 * cheaper forms for callers that hold the table's write lock.
 *
 * <p>In checking mode freed frames are poisoned and marked, and reading a freed frame throws
 * {@link FrameAccessException} naming the PA. Each frame also counts how often it was freed, so a
 * walker holding a stale reference to a frame that was freed and reused can be caught.
 *
 * <p>The frames' {@code long[]} arrays never leave the core: see {@link FrameAccess}.
 */
public final class PhysicalMemory {
    /** Pattern written over freed frames in checking mode: invalid (bit 0 clear), never a real entry. */
    public static final long POISON = 0xDEAD_BEEF_DEAD_BEE0L;

    private static final byte FREE = 0, IN_USE = 1, FREED = 2;
    private static final VarHandle INTS = MethodHandles.arrayElementVarHandle(int[].class);

    private final long base;
    private final long size;
    private final Granule granule;
    private final int shift;
    private final long pageMask;
    private final int frameCount;
    private final boolean checking;
    /** Per frame index {@code (pa - base) >> shift}: its descriptor array (table frames only). */
    private final long[][] frames;
    private final int[] refcount;
    private final byte[] state;
    /**
     * Per frame, how many times it has been freed. A walker that remembers the generation of a
     * frame it entered can tell, in checking mode, that the frame was freed and reused under it
     * (a reused frame is live again, so liveness alone cannot tell).
     */
    private final int[] generation;
    private final int entries;

    // Free frames below the bump pointer; every frame at or above it has never been allocated.
    private int[] freeStack = new int[64];
    private int freeTop;
    private int bump;

    private long inUse;
    private long peakInUse;
    private long allocations;
    private long frees;
    private final CacheMaintenance cache = new CacheMaintenance();

    public PhysicalMemory(long base, long size, Granule granule, boolean checking) {
        if (granule == null) throw new IllegalArgumentException("granule: null");
        if ((base & granule.pageMask()) != 0 || base < 0) {
            throw PageTableException.invalidArgument("base", base, "is not a non-negative multiple of the " + granule.label() + " granule");
        }
        if (size <= 0 || (size & granule.pageMask()) != 0) {
            throw PageTableException.invalidArgument("size", size, "is not a positive multiple of the " + granule.label() + " granule");
        }
        if (size > Long.MAX_VALUE - base) {
            // Past 2^63 a frame's PA would be negative: no output-address format reaches there anyway.
            throw PageTableException.invalidArgument("size", size, "puts the end of memory past 2^63 (base 0x"
                    + Long.toHexString(base) + ")");
        }
        long count = size >>> granule.shift();
        if (count > Integer.MAX_VALUE - 8) {
            throw PageTableException.invalidArgument("size", size, "holds more than 2^31 frames");
        }
        this.base = base;
        this.size = size;
        this.granule = granule;
        this.shift = granule.shift();
        this.pageMask = granule.pageMask();
        this.frameCount = (int) count;
        this.checking = checking;
        this.frames = new long[frameCount][];
        this.refcount = new int[frameCount];
        this.state = new byte[frameCount];
        this.generation = new int[frameCount];
        this.entries = granule.entriesPerTable();
    }

    public long base() { return base; }
    public long size() { return size; }
    public Granule granule() { return granule; }
    public boolean checking() { return checking; }
    public int frameCount() { return frameCount; }
    public CacheMaintenance cacheMaintenance() { return cache; }

    /** Frames currently allocated (tables, memory-cache contents, roots). */
    public synchronized long framesInUse() { return inUse; }
    public synchronized long peakFramesInUse() { return peakInUse; }
    /** Starts a new peak measurement from the current use (per-phase peaks). */
    public synchronized void resetPeak() { peakInUse = inUse; }
    public synchronized long allocations() { return allocations; }
    public synchronized long frees() { return frees; }

    public boolean contains(long pa) {
        return pa >= base && pa - base < size;
    }

    private int frameIndex(long pa) {
        long off = pa - base;
        if (off < 0 || off >= size || (off & pageMask) != 0) throw notAFrame(pa);
        return (int) (off >>> shift);
    }

    /**
     * Index of the frame containing {@code pa}: {@code frameIndex(pa & ~pageMask)} with one
     * unsigned compare (base and size are frame-aligned, so the rounded-down offset is in range
     * exactly when the offset is).
     */
    private int frameContaining(long pa) {
        long off = pa - base;
        if (Long.compareUnsigned(off, size) >= 0) throw notAFrame(pa & ~pageMask);
        return (int) (off >>> shift);
    }

    private FrameAccessException notAFrame(long pa) {
        return new FrameAccessException("PA 0x" + Long.toHexString(pa) + " is not a frame of ["
                + "0x" + Long.toHexString(base) + ", 0x" + Long.toHexString(base + size) + ")");
    }

    private long frameAddress(int index) {
        return base + ((long) index << shift);
    }

    /** Allocates one zeroed frame with refcount 1. */
    public synchronized long allocate() {
        int idx;
        if (freeTop > 0) {
            idx = freeStack[--freeTop];
        } else if (bump < frameCount) {
            idx = bump++;
        } else {
            throw outOfMemory(1);
        }
        claim(idx);
        return frameAddress(idx);
    }

    /**
     * Allocates {@code n} physically contiguous zeroed frames, aligned to {@code n} frames (the
     * alignment hardware requires of concatenated root tables), each with refcount 1. Returns the
     * PA of the first.
     */
    public synchronized long allocateContiguous(int n) {
        if (n <= 0 || n > 64) throw PageTableException.invalidArgument("n", (Object) n, "is outside 1..64");
        if (n == 1) return allocate();
        int start = -1;
        // Alignment is of the physical address, not of the frame index: the first index whose PA
        // is a multiple of n frames depends on where the range starts.
        int first = (int) ((n - (base >>> shift) % n) % n);
        int aligned = bump + Math.floorMod(first - bump, n);
        if (aligned + n <= frameCount) {
            for (int i = bump; i < aligned; i++) pushFree(i);
            bump = aligned + n;
            start = aligned;
        } else {
            // Reuse freed frames; a run may end in never-used frames at or above the bump pointer.
            for (int s = first; s + n <= frameCount && s < bump && start < 0; s += n) {
                boolean free = true;
                for (int i = s; i < s + n && free; i++) free = i >= bump || (state[i] != IN_USE && isOnFreeStack(i));
                if (free) start = s;
            }
            if (start < 0) throw outOfMemory(n);
            for (int i = start; i < Math.min(start + n, bump); i++) removeFromFreeStack(i);
            bump = Math.max(bump, start + n);
        }
        for (int i = start; i < start + n; i++) claim(i);
        return frameAddress(start);
    }

    private boolean isOnFreeStack(int idx) {
        for (int i = 0; i < freeTop; i++) if (freeStack[i] == idx) return true;
        return false;
    }

    private void removeFromFreeStack(int idx) {
        for (int i = 0; i < freeTop; i++) {
            if (freeStack[i] == idx) {
                freeStack[i] = freeStack[--freeTop];
                return;
            }
        }
    }

    private void pushFree(int idx) {
        if (freeTop == freeStack.length) freeStack = Arrays.copyOf(freeStack, freeStack.length * 2);
        freeStack[freeTop++] = idx;
    }

    private void claim(int idx) {
        long[] f = frames[idx];
        if (f == null) {
            frames[idx] = new long[entries];
        } else {
            Arrays.fill(f, 0L);
        }
        state[idx] = IN_USE;
        INTS.setRelease(refcount, idx, 1);
        allocations++;
        inUse++;
        if (inUse > peakInUse) peakInUse = inUse;
    }

    private PageTableException outOfMemory(int n) {
        return new PageTableException(Errno.ENOMEM, PageTableException.NO_ADDRESS, PageTableException.NO_LEVEL,
                "physical memory [0x" + Long.toHexString(base) + ", 0x" + Long.toHexString(base + size)
                        + ") has no " + (n == 1 ? "free frame" : n + " contiguous free frames") + " (" + inUse + " of "
                        + frameCount + " in use)");
    }

    /** Frees a frame regardless of its count (used for roots and frames never linked anywhere). */
    public synchronized void free(long pa) {
        int idx = frameIndex(pa);
        if (state[idx] != IN_USE) {
            throw new FrameAccessException("double free of frame 0x" + Long.toHexString(pa));
        }
        release(idx);
    }

    private void release(int idx) {
        INTS.setRelease(refcount, idx, 0);
        INTS.getAndAdd(generation, idx, 1);
        if (checking) {
            Arrays.fill(frames[idx], POISON);
            state[idx] = FREED;
        } else {
            state[idx] = FREE;
        }
        pushFree(idx);
        frees++;
        inUse--;
    }

    private synchronized void releaseOnZero(int idx, long pa) {
        if (state[idx] != IN_USE) {
            throw new FrameAccessException("refcount of freed frame 0x" + Long.toHexString(pa) + " dropped to 0 again");
        }
        release(idx);
    }

    /** Frees {@code n} contiguous frames starting at {@code pa}. */
    public void freeContiguous(long pa, int n) {
        for (int i = 0; i < n; i++) free(pa + ((long) i << shift));
    }

    /**
     * The descriptor array of the live table frame at {@code pa}. Core-internal (package-private,
     * reached from other core packages only through {@link FrameAccess}): software walkers reach
     * entries through a walk's visit context, hardware walkers through the MMU.
     *
     * @throws FrameAccessException in checking mode, if the frame is not allocated
     */
    long[] table(long pa) {
        long off = pa - base;
        if (checking || off < 0 || off >= size) {
            int idx = frameIndex(pa);
            if (checking && state[idx] != IN_USE) {
                throw new FrameAccessException((state[idx] == FREED ? "read of freed table frame 0x" : "read of unallocated frame 0x")
                        + Long.toHexString(pa));
            }
            return frames[idx];
        }
        return frames[(int) (off >>> shift)];
    }

    /** How many times the frame at {@code pa} has been freed (see {@link #generation}). */
    int generation(long pa) {
        return (int) INTS.getAcquire(generation, frameIndex(pa));
    }

    /** True if the frame at {@code pa} is allocated. */
    public boolean isLive(long pa) {
        return state[frameIndex(pa)] == IN_USE;
    }

    /** Reference count of the frame containing {@code pa} (the kernel's page_count). */
    public int count(long pa) {
        return (int) INTS.getAcquire(refcount, frameContaining(pa));
    }

    /** Takes a reference on the frame containing {@code pa}. */
    public void get(long pa) {
        int idx = frameContaining(pa);
        int before = (int) INTS.getAndAdd(refcount, idx, 1);
        if (before <= 0) {
            INTS.getAndAdd(refcount, idx, -1);
            throw new FrameAccessException("get on free frame 0x" + Long.toHexString(pa));
        }
    }

    /** Drops a reference on the frame containing {@code pa}; the last reference frees it. */
    public void put(long pa) {
        long fpa = pa & ~pageMask;
        int idx = frameContaining(pa);
        int after = (int) INTS.getAndAdd(refcount, idx, -1) - 1;
        if (after == 0) {
            releaseOnZero(idx, fpa);
        } else if (after < 0) {
            throw new FrameAccessException("put on free frame 0x" + Long.toHexString(fpa));
        }
    }

    /** {@link #get} for a caller that holds the table exclusively (no concurrent refcount updates). */
    public void getExclusive(long pa) {
        int idx = frameContaining(pa);
        int c = refcount[idx];
        if (c <= 0) throw new FrameAccessException("get on free frame 0x" + Long.toHexString(pa));
        refcount[idx] = c + 1;
    }

    /** {@link #put} for a caller that holds the table exclusively. */
    public void putExclusive(long pa) {
        int idx = frameContaining(pa);
        int c = refcount[idx] - 1;
        if (c < 0) throw new FrameAccessException("put on free frame 0x" + Long.toHexString(pa & ~pageMask));
        refcount[idx] = c;
        if (c == 0) releaseOnZero(idx, pa & ~pageMask);
    }

    /** {@code n} calls of {@link #getExclusive(long)} in one update. */
    public void getExclusive(long pa, int n) {
        if (n < 0) throw PageTableException.invalidArgument("n", (Object) n, "is negative");
        if (n == 0) return;
        int idx = frameContaining(pa);
        int c = refcount[idx];
        if (c <= 0) throw new FrameAccessException("get on free frame 0x" + Long.toHexString(pa));
        refcount[idx] = c + n;
    }

    /**
     * {@code n} calls of {@link #putExclusive(long)}: one update while the count stays above 0,
     * else one call at a time (the one that reaches 0 frees the frame, any further one throws).
     */
    public void putExclusive(long pa, int n) {
        if (n < 0) throw PageTableException.invalidArgument("n", (Object) n, "is negative");
        if (n == 0) return;
        int idx = frameContaining(pa);
        int c = refcount[idx];
        if (c > n) {
            refcount[idx] = c - n;
            return;
        }
        for (int i = 0; i < n; i++) putExclusive(pa);
    }

    /** Bytes of heap used by allocated table frames' arrays and per-frame metadata. */
    public long tableHeapBytes() {
        long arrays = 0;
        for (long[] f : frames) if (f != null) arrays += 16 + 8L * f.length;
        return arrays + (long) frameCount * (8 + 4 + 1);
    }
}
