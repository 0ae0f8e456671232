package dev.ptlab.mm;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A host page or a naturally aligned power-of-two run of them (the kernel's {@code struct
 * folio}): reference count, map count, a sleeping lock, flags, and the pages' contents.
 *
 * <p>Counting model (6.15, see reference part A.11): every page-table entry that maps the folio,
 * present or device-exclusive, holds one reference and one map count; GUP adds references only.
 * The folio is freed when its reference count drops to zero, and never used again (a new
 * allocation of the same pages is a new object), so a stale {@code Folio} can be recognised:
 * {@link #tryGet()} fails on it.
 *
 * <p>The lock is a bit in {@link #flags} (PG_locked); waiters sleep on a hashed monitor, as the
 * kernel sleeps on a hashed wait queue. It is not owned by a thread: a driver may lock in one
 * call and unlock in another, as with the kernel's folio lock.
 *
 * <p>Contents are kept per page, only once written (an unwritten page reads as zeros: a freshly
 * allocated anonymous page is zeroed), so a 1 GiB hugetlb folio costs only the pages used. Word
 * accesses are atomic, so a device and a CPU thread can add to the same word concurrently.
 */
public final class Folio {
    public static final int LOCKED = 1;
    public static final int ANON = 1 << 1;
    public static final int DIRTY = 1 << 2;
    public static final int HUGETLB = 1 << 3;
    /** Lock has (or had) sleepers: unlock must wake them (PG_waiters). */
    private static final int WAITERS = 1 << 4;

    private static final VarHandle FLAGS;
    private static final VarHandle REFS;
    private static final VarHandle MAPS;
    private static final VarHandle DATA = MethodHandles.arrayElementVarHandle(long[].class);
    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            FLAGS = l.findVarHandle(Folio.class, "flags", int.class);
            REFS = l.findVarHandle(Folio.class, "refcount", int.class);
            MAPS = l.findVarHandle(Folio.class, "mapcount", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
    private static final Object[] WAIT_QUEUES = new Object[64];
    static {
        for (int i = 0; i < WAIT_QUEUES.length; i++) WAIT_QUEUES[i] = new Object();
    }

    private final HostMemory memory;
    private final long pa;
    private final int order;
    private volatile int flags;
    private volatile int refcount;
    private volatile int mapcount;
    private final int pageShift;
    private final long pageMask;
    /** Per page, its words once written ({@code null} reads as zeros), so a huge folio costs only what was written. */
    private final long[][] data;

    Folio(HostMemory memory, long pa, int order, int flags) {
        this.memory = memory;
        this.pa = pa;
        this.order = order;
        this.flags = flags;
        this.refcount = 1;
        this.pageShift = Long.numberOfTrailingZeros(memory.pageSize());
        this.pageMask = memory.pageSize() - 1;
        this.data = new long[1 << order][];
    }

    public HostMemory memory() { return memory; }
    /** Physical address of the first page. */
    public long pa() { return pa; }
    public int order() { return order; }
    public int pages() { return 1 << order; }
    public long size() { return (long) memory.pageSize() << order; }
    public boolean isLarge() { return order > 0; }
    public boolean contains(long addr) { return addr >= pa && addr - pa < size(); }

    public boolean isAnon() { return (flags & ANON) != 0; }
    public boolean isHugetlb() { return (flags & HUGETLB) != 0; }
    public boolean isDirty() { return (flags & DIRTY) != 0; }
    public boolean isLocked() { return (flags & LOCKED) != 0; }
    public void markDirty() { setFlag(DIRTY); }

    private void setFlag(int bit) {
        int f;
        do { f = flags; } while ((f & bit) == 0 && !FLAGS.compareAndSet(this, f, f | bit));
    }

    // ---- reference and map counts ----

    public int refcount() { return refcount; }
    public int mapcount() { return mapcount; }
    public boolean isFree() { return refcount == 0; }

    /** Takes a reference the caller knows keeps the folio alive (it already holds one, or a mapping does under the PTL). */
    public void get() {
        int r = (int) REFS.getAndAdd(this, 1);
        if (r <= 0) {
            REFS.getAndAdd(this, -1);
            throw new IllegalStateException("folio 0x" + Long.toHexString(pa) + ": get on a free folio (refcount " + r + ")");
        }
    }

    /** Takes a reference unless the folio is already free (the kernel's folio_try_get). */
    public boolean tryGet() {
        int r;
        do {
            r = refcount;
            if (r <= 0) return false;
        } while (!REFS.compareAndSet(this, r, r + 1));
        return true;
    }

    /** Drops a reference; the last one frees the folio. */
    public void put() {
        int r = (int) REFS.getAndAdd(this, -1) - 1;
        if (r == 0) {
            memory.free(this);
        } else if (r < 0) {
            throw new IllegalStateException("folio 0x" + Long.toHexString(pa) + ": put below zero");
        }
    }

    public void incMapcount() { MAPS.getAndAdd(this, 1); }

    public void decMapcount() {
        int m = (int) MAPS.getAndAdd(this, -1) - 1;
        if (m < 0) throw new IllegalStateException("folio 0x" + Long.toHexString(pa) + ": mapcount below zero");
    }

    /** Used when splitting a large folio: the counts move to the new small folios. */
    void setCounts(int refs, int maps) {
        refcount = refs;
        mapcount = maps;
    }

    /**
     * Adds {@code n} references and {@code n} map counts at once: a block entry mapping this
     * folio was replaced by {@code n + 1} page entries (a PMD split), each holding one of each.
     * The caller holds the page-table lock and the block's own reference keeps the folio alive.
     */
    void addMappings(int n) {
        if (n < 0) throw new IllegalArgumentException("n: " + n + " is negative");
        int r = (int) REFS.getAndAdd(this, n);
        if (r <= 0) throw new IllegalStateException("folio 0x" + Long.toHexString(pa) + ": mappings added to a free folio");
        MAPS.getAndAdd(this, n);
    }

    // ---- the folio lock ----

    public boolean tryLock() {
        int f;
        do {
            f = flags;
            if ((f & LOCKED) != 0) return false;
        } while (!FLAGS.compareAndSet(this, f, f | LOCKED));
        return true;
    }

    /** Sleeps until the lock is taken (folio_lock; ptlab has no fatal signals, so it cannot fail). */
    public void lock() {
        if (tryLock()) return;
        Object q = queue();
        boolean interrupted = false;
        synchronized (q) {
            while (true) {
                setFlag(WAITERS);
                if (tryLock()) break;
                try {
                    q.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }

    public void unlock() {
        int f;
        do {
            f = flags;
            if ((f & LOCKED) == 0) throw new IllegalStateException("folio 0x" + Long.toHexString(pa) + ": unlock of an unlocked folio");
        } while (!FLAGS.compareAndSet(this, f, f & ~(LOCKED | WAITERS)));
        if ((f & WAITERS) != 0) {
            Object q = queue();
            synchronized (q) {
                q.notifyAll();
            }
        }
    }

    /** Waits until the folio is unlocked, without taking the lock (folio_wait_locked). */
    public void waitUnlocked() {
        if (!isLocked()) return;
        Object q = queue();
        boolean interrupted = false;
        synchronized (q) {
            while (true) {
                setFlag(WAITERS);
                if (!isLocked()) break;
                try {
                    q.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }

    private Object queue() {
        return WAIT_QUEUES[(int) ((pa >>> 12) ^ (pa >>> 21)) & (WAIT_QUEUES.length - 1)];
    }

    // ---- contents ----

    /** The words of page {@code index}, allocated on first write. */
    private long[] words(int index) {
        long[][] d = data;
        long[] w = d[index];
        if (w == null) {
            synchronized (this) {
                w = data[index];
                if (w == null) data[index] = w = new long[(int) (memory.pageSize() >>> 3)];
            }
        }
        return w;
    }

    private void checkOffset(long offset) {
        if (offset < 0 || offset >= size()) {
            throw new IllegalArgumentException("offset: 0x" + Long.toHexString(offset) + " is outside the folio (size 0x"
                    + Long.toHexString(size()) + ")");
        }
    }

    private int pageIndex(long offset) {
        return (int) (offset >>> pageShift);
    }

    private int wordIndex(long offset) {
        return (int) ((offset & pageMask) >>> 3);
    }

    /** The 64-bit word at byte {@code offset} (rounded down to 8). */
    public long readLong(long offset) {
        checkOffset(offset);
        long[] w = data[pageIndex(offset)];
        return w == null ? 0 : (long) DATA.getVolatile(w, wordIndex(offset));
    }

    public void writeLong(long offset, long value) {
        checkOffset(offset);
        DATA.setVolatile(words(pageIndex(offset)), wordIndex(offset), value);
    }

    /** The 32-bit int at byte {@code offset} (4-aligned; little-endian within the word). */
    public int readInt(long offset) {
        int shift = (int) (offset & 4) << 3;
        return (int) (readLong(offset) >>> shift);
    }

    public void writeInt(long offset, int value) {
        updateInt(offset, value, false);
    }

    /** Atomically adds to the int at {@code offset}; returns the previous value. */
    public int getAndAddInt(long offset, int delta) {
        return updateInt(offset, delta, true);
    }

    private int updateInt(long offset, int v, boolean add) {
        checkOffset(offset);
        long[] d = words(pageIndex(offset));
        int i = wordIndex(offset);
        int shift = (int) (offset & 4) << 3;
        long mask = 0xFFFF_FFFFL << shift;
        while (true) {
            long w = (long) DATA.getVolatile(d, i);
            int old = (int) (w >>> shift);
            int nv = add ? old + v : v;
            long nw = (w & ~mask) | (((long) nv & 0xFFFF_FFFFL) << shift);
            if (DATA.compareAndSet(d, i, w, nw)) return old;
        }
    }

    /** Copies {@code src}'s contents into this folio (same size; the COW copy). */
    public void copyFrom(Folio src) {
        if (src.size() != size()) throw new IllegalArgumentException("src: size 0x" + Long.toHexString(src.size()) + " differs");
        for (int i = 0; i < data.length; i++) data[i] = src.pageWords(i);
    }

    /**
     * Copies page {@code srcPage} of {@code src} into this order-0 folio (the COW copy of one page
     * of a PTE-mapped large folio).
     */
    public void copyPageFrom(Folio src, int srcPage) {
        if (order != 0) throw new IllegalStateException("folio 0x" + Long.toHexString(pa) + " is not order 0");
        if (srcPage < 0 || srcPage >= src.pages()) {
            throw new IllegalArgumentException("srcPage: " + srcPage + " is outside 0.." + (src.pages() - 1));
        }
        data[0] = src.pageWords(srcPage);
    }

    /**
     * A copy of the contents of page {@code index}, or null if it was never written (used when
     * copying, splitting and swapping).
     */
    long[] pageWords(int index) {
        long[] w = data[index];
        if (w == null) return null;
        long[] out = new long[w.length];
        for (int i = 0; i < w.length; i++) out[i] = (long) DATA.getVolatile(w, i);
        return out;
    }

    /** Replaces the contents of page {@code index} (null: zeros); the caller owns {@code words}. */
    void setPageWords(int index, long[] words) {
        data[index] = words;
    }

    @Override
    public String toString() {
        return "folio 0x" + Long.toHexString(pa) + " order " + order + " ref " + refcount + " map " + mapcount
                + (isAnon() ? " anon" : "") + (isHugetlb() ? " hugetlb" : "") + (isLocked() ? " locked" : "")
                + (isDirty() ? " dirty" : "");
    }
}
