package dev.ptlab.mm;

import dev.ptlab.core.arch.Granule;

/**
 * The host's page allocator for data pages (the buddy allocator behind folios): a physical range
 * of {@code size} bytes from {@code base}, handed out as naturally aligned folios of 2^order pages.
 *
 * <p>Free blocks of each order are kept in a bit set (membership, for merging buddies) and a
 * stack of candidates (for O(1) allocation; stale candidates are skipped). Every folio's pages
 * map back to it ({@link #folioOf(long)}) while it is allocated.
 */
public final class HostMemory {
    /**
     * {@link #folioOf} runs on every fault and GUP, so it reads without the allocator's lock: the
     * array is written (under the lock) with release stores and read with acquire loads, so a
     * reader that finds a folio sees it fully constructed. A reader racing with a free may get a
     * folio that is being freed (or null): callers that do not hold a mapping's reference must
     * {@link Folio#tryGet()} it and re-check the entry, as the kernel's folio_try_get does.
     */
    private static final java.lang.invoke.VarHandle FOLIOS = java.lang.invoke.MethodHandles.arrayElementVarHandle(Folio[].class);
    private final long base;
    private final long size;
    private final Granule granule;
    private final int pageShift;
    private final int maxOrder;
    /** Per order, one bit per block of that order: free or not (a plain bitmap: BitSet rescans on clearing its top bit). */
    private final long[][] free;
    private final long[][] stacks;
    private final int[] stackTop;
    private final Folio[] folios;
    private long pagesInUse;
    private long peakPagesInUse;
    private long allocations;
    private long frees;

    /**
     * @param base aligned to the largest folio the memory hands out ({@code 2^maxOrder} pages)
     * @param maxOrder largest order (e.g. 18 for 1 GiB folios with 4K pages)
     */
    public HostMemory(long base, long size, Granule granule, int maxOrder) {
        if (granule == null) throw new IllegalArgumentException("granule: null");
        this.granule = granule;
        this.pageShift = granule.shift();
        if (maxOrder < 0 || maxOrder > 20) throw new IllegalArgumentException("maxOrder: " + maxOrder + " is outside 0..20");
        long unit = 1L << (pageShift + maxOrder);
        if (base < 0 || (base & (unit - 1)) != 0) {
            throw new IllegalArgumentException("base: 0x" + Long.toHexString(base) + " is not aligned to 0x" + Long.toHexString(unit));
        }
        if (size <= 0 || (size & (unit - 1)) != 0) {
            throw new IllegalArgumentException("size: 0x" + Long.toHexString(size) + " is not a positive multiple of 0x" + Long.toHexString(unit));
        }
        long pages = size >>> pageShift;
        if (pages > Integer.MAX_VALUE) throw new IllegalArgumentException("size: 0x" + Long.toHexString(size) + " has too many pages");
        this.base = base;
        this.size = size;
        this.maxOrder = maxOrder;
        this.folios = new Folio[(int) pages];
        this.free = new long[maxOrder + 1][];
        this.stacks = new long[maxOrder + 1][];
        this.stackTop = new int[maxOrder + 1];
        for (int o = 0; o <= maxOrder; o++) {
            free[o] = new long[(int) (((pages >>> o) + 63) >>> 6)];
            stacks[o] = new long[16];
        }
        long blocks = pages >>> maxOrder;
        for (long b = blocks - 1; b >= 0; b--) pushFree(maxOrder, b << maxOrder);
    }

    public long base() { return base; }
    public long size() { return size; }
    public Granule granule() { return granule; }
    public long pageSize() { return 1L << pageShift; }
    public int maxOrder() { return maxOrder; }
    public boolean contains(long pa) { return pa >= base && pa - base < size; }

    public synchronized long pagesInUse() { return pagesInUse; }
    public synchronized long peakPagesInUse() { return peakPagesInUse; }
    public synchronized long allocations() { return allocations; }
    public synchronized long frees() { return frees; }

    /**
     * Allocates a zeroed folio of 2^order pages with refcount 1 and mapcount 0, or returns null
     * if no free block is large enough (the caller reports out-of-memory).
     */
    public synchronized Folio allocate(int order, int flags) {
        if (order < 0 || order > maxOrder) throw new IllegalArgumentException("order: " + order + " is outside 0.." + maxOrder);
        int o = order;
        long pfn = -1;
        while (o <= maxOrder && (pfn = popFree(o)) < 0) o++;
        if (pfn < 0) return null;
        while (o > order) {
            o--;
            pushFree(o, pfn + (1L << o)); // the upper half stays free
        }
        Folio f = new Folio(this, base + (pfn << pageShift), order, flags & ~Folio.LOCKED);
        int n = 1 << order;
        for (int i = 0; i < n; i++) FOLIOS.setRelease(folios, (int) pfn + i, f);
        pagesInUse += n;
        if (pagesInUse > peakPagesInUse) peakPagesInUse = pagesInUse;
        allocations++;
        return f;
    }

    /** The live folio containing {@code pa}, or null if the page is free. */
    public Folio folioOf(long pa) {
        if (!contains(pa)) {
            throw new IllegalArgumentException("pa: 0x" + Long.toHexString(pa) + " is outside host memory [0x"
                    + Long.toHexString(base) + ", 0x" + Long.toHexString(base + size) + ")");
        }
        return (Folio) FOLIOS.getAcquire(folios, (int) ((pa - base) >>> pageShift));
    }

    /** Called by {@link Folio#put()} when the last reference goes. */
    synchronized void free(Folio f) {
        long pfn = (f.pa() - base) >>> pageShift;
        int n = f.pages();
        for (int i = 0; i < n; i++) {
            if (folios[(int) pfn + i] != f) {
                throw new IllegalStateException("pa: 0x" + Long.toHexString(f.pa() + ((long) i << pageShift)) + " freed twice or by a stale folio");
            }
            FOLIOS.setRelease(folios, (int) pfn + i, null);
        }
        pagesInUse -= n;
        frees++;
        int o = f.order();
        while (o < maxOrder) {
            long buddy = pfn ^ (1L << o);
            if (!isFree(o, buddy >>> o)) break;
            setFree(o, buddy >>> o, false);
            pfn = Math.min(pfn, buddy);
            o++;
        }
        pushFree(o, pfn);
    }

    /**
     * Splits a large folio into order-0 folios that share its state: each gets {@code refsEach}
     * references and {@code mapsEach} map counts, its flags (the lock too) and its page's contents.
     * The caller holds whatever keeps the large folio's mappings stable (the page-table lock) and
     * rewrites them to point at the new folios by PA (the PAs do not change).
     */
    public synchronized Folio[] split(Folio large, int refsEach, int mapsEach) {
        if (!large.isLarge()) throw new IllegalArgumentException("folio: " + large + " is not large");
        if (large.isHugetlb()) throw new IllegalArgumentException("folio: " + large + " is hugetlb and cannot be split");
        long pfn = (large.pa() - base) >>> pageShift;
        int n = large.pages();
        Folio[] out = new Folio[n];
        int flags = (large.isAnon() ? Folio.ANON : 0) | (large.isDirty() ? Folio.DIRTY : 0);
        for (int i = 0; i < n; i++) {
            Folio f = new Folio(this, large.pa() + ((long) i << pageShift), 0, flags | (large.isLocked() ? Folio.LOCKED : 0));
            f.setCounts(refsEach, mapsEach);
            f.setPageWords(0, large.pageWords(i));
            FOLIOS.setRelease(folios, (int) pfn + i, f);
            out[i] = f;
        }
        large.setCounts(0, 0);
        return out;
    }

    private void pushFree(int order, long pfn) {
        setFree(order, pfn >>> order, true);
        long[] s = stacks[order];
        if (stackTop[order] == s.length) stacks[order] = s = java.util.Arrays.copyOf(s, s.length * 2);
        s[stackTop[order]++] = pfn;
    }

    private boolean isFree(int order, long block) {
        return (free[order][(int) (block >>> 6)] & (1L << block)) != 0;
    }

    private void setFree(int order, long block, boolean on) {
        long[] bits = free[order];
        int w = (int) (block >>> 6);
        if (on) bits[w] |= 1L << block; else bits[w] &= ~(1L << block);
    }

    private long popFree(int order) {
        long[] s = stacks[order];
        while (stackTop[order] > 0) {
            long pfn = s[--stackTop[order]];
            int idx = (int) (pfn >>> order);
            if (isFree(order, idx)) {
                setFree(order, idx, false);
                return pfn;
            }
        }
        return -1;
    }

    @Override
    public synchronized String toString() {
        return "host memory [0x" + Long.toHexString(base) + ", 0x" + Long.toHexString(base + size) + ") " + pagesInUse + " pages in use";
    }
}
