package dev.ptlab.core.hw;

import dev.ptlab.core.arch.Granule;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One CPU's TLB: leaf translations tagged with VMID, the leaf's level and its descriptor (so
 * permissions and attributes come from the cached copy, as on hardware).
 *
 * <p>Layout: one direct-mapped array per leaf level (1, 2, 3), indexed by the address bits just
 * above that level's span. A lookup probes the page level first, then larger blocks. Entries are
 * two flat {@code long[]}: a tag {@code (addr >> levelShift) << 17 | vmid << 1 | 1} and the leaf
 * descriptor; 0 is an empty tag.
 *
 * <p>Concurrency: only the owning CPU looks up and fills; any thread may invalidate. A walk that
 * started before an invalidation must not leave an entry behind it, so every invalidation bumps
 * {@link #generation()}; {@link #fill} re-checks the generation after storing and drops the
 * entry if an invalidation intervened (conservative: it may drop an unrelated fill too).
 */
public final class Tlb {
    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final VarHandle GEN;

    static {
        try {
            GEN = MethodHandles.lookup().findVarHandle(Tlb.class, "generation", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final Granule granule;
    private final String name;
    private final int[] slots = new int[4];      // per level 0..3 (level 0 unused for leaves)
    private final long[][] tags = new long[4][];
    private final long[][] ptes = new long[4][];
    private final int[] shifts = new int[4];
    @SuppressWarnings("unused")
    private volatile long generation;

    private long hits;
    private long misses;
    private long fills;
    private long conflicts;

    public Tlb(String name, Granule granule, int pageEntries, int blockEntries) {
        if (Integer.bitCount(pageEntries) != 1 || pageEntries < 1) {
            throw new IllegalArgumentException("pageEntries: " + pageEntries + " is not a power of two");
        }
        if (Integer.bitCount(blockEntries) != 1 || blockEntries < 1) {
            throw new IllegalArgumentException("blockEntries: " + blockEntries + " is not a power of two");
        }
        this.name = name;
        this.granule = granule;
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            int n = level == Granule.LAST_LEVEL ? pageEntries : blockEntries;
            slots[level] = n;
            tags[level] = new long[n];
            ptes[level] = new long[n];
            shifts[level] = granule.levelShift(level);
        }
    }

    public Tlb(String name, Granule granule) {
        this(name, granule, 512, 64);
    }

    public String name() { return name; }
    public Granule granule() { return granule; }
    public long hits() { return hits; }
    public long misses() { return misses; }
    public long fills() { return fills; }
    /** Fills that found an overlapping entry of another size for the same VMID. */
    public long conflicts() { return conflicts; }

    public long generation() {
        return (long) GEN.getVolatile(this);
    }

    private static long tag(long addr, int shift, int vmid) {
        return ((addr >>> shift) << 17) | ((long) vmid << 1) | 1L;
    }

    private int slot(long addr, int level) {
        return (int) ((addr >>> shifts[level]) & (slots[level] - 1));
    }

    /**
     * Looks {@code addr} up for {@code vmid}. Returns the level of the matching entry (its
     * descriptor via {@link #cachedPte}) or -2 on a miss.
     */
    public int lookup(int vmid, long addr) {
        for (int level = Granule.LAST_LEVEL; level >= 0; level--) {
            int s = slot(addr, level);
            if ((long) LONGS.getAcquire(tags[level], s) == tag(addr, shifts[level], vmid)) {
                hits++;
                lastHitPte = ptes[level][s];
                return level;
            }
        }
        misses++;
        return -2;
    }

    private long lastHitPte;

    /** Descriptor of the entry the last successful {@link #lookup} found. */
    public long cachedPte() {
        return lastHitPte;
    }

    /**
     * Caches a leaf found by a walk that began at generation {@code walkGeneration}.
     *
     * @return false if an invalidation ran since the walk began (nothing is cached)
     */
    public boolean fill(int vmid, long addr, int level, long pte, long walkGeneration) {
        if (level < 0) return false;
        checkConflict(vmid, addr, level, pte);
        int s = slot(addr, level);
        ptes[level][s] = pte;
        LONGS.setVolatile(tags[level], s, tag(addr, shifts[level], vmid));
        if (generation() != walkGeneration) {
            LONGS.setVolatile(tags[level], s, 0L);
            return false;
        }
        fills++;
        return true;
    }

    private void checkConflict(int vmid, long addr, int level, long pte) {
        for (int other = 0; other <= Granule.LAST_LEVEL; other++) {
            if (other == level) continue;
            int s = slot(addr, other);
            if ((long) LONGS.getAcquire(tags[other], s) == tag(addr, shifts[other], vmid)) {
                conflicts++;
            }
        }
    }

    private void bump() {
        GEN.getAndAdd(this, 1L);
    }

    /** Drops entries of {@code vmid} translating {@code addr} at any level. */
    public void invalidateAddress(int vmid, long addr) {
        bump();
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            int s = slot(addr, level);
            long t = tag(addr, shifts[level], vmid);
            LONGS.compareAndSet(tags[level], s, t, 0L);
        }
    }

    /** Drops entries of {@code vmid} overlapping {@code [addr, addr + size)}. */
    public void invalidateRange(int vmid, long addr, long size) {
        bump();
        long end = addr + size;
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            long[] t = tags[level];
            int shift = shifts[level];
            for (int s = 0; s < t.length; s++) {
                long tag = (long) LONGS.getAcquire(t, s);
                if (tag == 0 || ((tag >>> 1) & 0xFFFF) != vmid) continue;
                long base = (tag >>> 17) << shift;
                long top = base + (1L << shift);
                if (base < end && top > addr) LONGS.compareAndSet(t, s, tag, 0L);
            }
        }
    }

    /** Drops every entry of {@code vmid}. */
    public void invalidateVmid(int vmid) {
        bump();
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            long[] t = tags[level];
            for (int s = 0; s < t.length; s++) {
                long tag = (long) LONGS.getAcquire(t, s);
                if (tag != 0 && ((tag >>> 1) & 0xFFFF) == vmid) LONGS.compareAndSet(t, s, tag, 0L);
            }
        }
    }

    /** Drops everything. */
    public void invalidateAll() {
        bump();
        for (long[] t : tags) {
            for (int s = 0; s < t.length; s++) LONGS.setVolatile(t, s, 0L);
        }
    }

    /** Number of valid entries (for tests and reports). */
    public int size() {
        int n = 0;
        for (long[] t : tags) for (int s = 0; s < t.length; s++) if ((long) LONGS.getAcquire(t, s) != 0) n++;
        return n;
    }
}
