package dev.ptlab.core.hw;

import dev.ptlab.core.PageTableException;

import dev.ptlab.core.arch.Granule;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One CPU's TLB: leaf translations tagged with VMID, the leaf's level and its descriptor (so
 * permissions and attributes come from the cached copy, as on hardware).
 *
 * <p>Direct-mapped per leaf level: a lookup probes the page level first, then larger blocks.
 *
 * <p>Concurrency: only the owning CPU looks up and fills; any thread may invalidate. A walk that
 * started before an invalidation must not leave an entry behind it, so every invalidation bumps
 * {@link #generation()}; {@link #fill} re-checks the generation after storing and drops the
 * entry if an invalidation intervened (conservative: it may drop an unrelated fill too).
 */
public final class Tlb {
    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final VarHandle GEN;
    private static final VarHandle WALK;

    static {
        try {
            GEN = MethodHandles.lookup().findVarHandle(Tlb.class, "generation", long.class);
            WALK = MethodHandles.lookup().findVarHandle(Tlb.class, "walkSeq", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    // Layout: one direct-mapped array per leaf level (1, 2, 3), indexed by the address bits just
    // above that level's span. Each level is one flat long[] of (tag, descriptor) pairs, so a
    // probe touches one cache line: the tag (addr >> levelShift) << 17 | vmid << 1 | 1 at
    // 2 * slot and the leaf descriptor after it; 0 is an empty tag. The lookup is unrolled over
    // final per-level fields.
    private final Granule granule;
    private final String name;
    private final int[] slots = new int[4];      // per level 0..3 (level 0 unused for leaves)
    /** Per level: {@code [2 * slot]} tag, {@code [2 * slot + 1]} descriptor. */
    private final long[][] entries = new long[4][];
    private final int[] shifts = new int[4];
    // The same per level, as final fields for the unrolled lookup.
    private final long[] e0, e1, e2, e3;
    private final int sh0, sh1, sh2, sh3;
    private final int m0, m1, m2, m3;
    /**
     * Bit {@code level} set once a fill has stored an entry at that level. A level never filled
     * holds only empty (0) tags, which no lookup tag matches (bit 0 of a tag is 1), so lookup and
     * the conflict check skip it. Only the owning CPU fills and looks up, so a plain field.
     */
    private int filledLevels;
    @SuppressWarnings("unused")
    private volatile long generation;
    /**
     * Odd while the owning CPU's MMU is walking tables for a miss. Written by the owner only;
     * read by invalidating threads, which wait for an in-flight walk to finish (see
     * {@link #awaitWalk}).
     */
    @SuppressWarnings("unused")
    private volatile long walkSeq;

    private long hits;
    private long misses;
    private long fills;
    private volatile long conflicts;
    /** Scan a block fill's span for smaller cached entries (checking aid; costs up to a level's slots per block fill). */
    private boolean scanConflicts;
    private volatile ConflictListener conflictListener;

    /** Told about every TLB conflict: a fill overlapping cached entries of another size. */
    @FunctionalInterface
    public interface ConflictListener {
        /**
         * @param level level of the entry being filled
         * @param otherLevel level of the overlapping entry already cached
         * @param otherBase first address the overlapping entry translates
         */
        void conflict(Tlb tlb, int vmid, long addr, int level, long pte, int otherLevel, long otherBase, long otherPte);
    }

    /** Receives each conflict as it is found (null: only count them). */
    public void setConflictListener(ConflictListener listener) {
        this.conflictListener = listener;
    }

    /**
     * Also looks for smaller entries inside the span of every block being filled (a coalesced
     * block whose old pages were never invalidated). Off by default: it scans up to a whole
     * level's slots per block fill. {@link Mmu} turns it on over checking-mode memory.
     */
    public void setScanConflicts(boolean scan) {
        this.scanConflicts = scan;
    }

    public Tlb(String name, Granule granule, int pageEntries, int blockEntries) {
        if (granule == null) throw PageTableException.invalidArgument("granule", null, "is null");
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
            entries[level] = new long[2 * n];
            shifts[level] = granule.levelShift(level);
        }
        e0 = entries[0]; e1 = entries[1]; e2 = entries[2]; e3 = entries[3];
        sh0 = shifts[0]; sh1 = shifts[1]; sh2 = shifts[2]; sh3 = shifts[3];
        m0 = slots[0] - 1; m1 = slots[1] - 1; m2 = slots[2] - 1; m3 = slots[3] - 1;
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

    /**
     * The owning CPU's MMU starts a table walk. A volatile store, and the walk's next step is a
     * volatile read of {@link #generation()}: with {@link #awaitWalk} on the invalidating side this
     * is a Dekker pair, so an invalidation either sees the walk in flight and waits for it, or
     * the walk sees the invalidation's generation bump (and so every entry change made before it).
     */
    void beginWalk() {
        WALK.setVolatile(this, (long) WALK.getOpaque(this) + 1);
    }

    /** The owning CPU's MMU finished its walk (and its fill, if any). */
    void endWalk() {
        WALK.setRelease(this, (long) WALK.getOpaque(this) + 1);
    }

    /**
     * Waits until a walk that was in flight when this was called has finished: the architectural
     * guarantee that a completed TLBI (with its DSB) leaves no walk still using the old entries.
     * A table freed after its TLBI completed is therefore never read by an MMU. Called by
     * {@link TlbSystem} after broadcast invalidations, from threads other than the owner.
     */
    void awaitWalk() {
        long s = (long) WALK.getVolatile(this);
        if ((s & 1) == 0) return;
        for (int spins = 0; (long) WALK.getVolatile(this) == s; spins++) {
            if (spins < 64) Thread.onSpinWait(); else Thread.yield();
        }
    }

    private static long tag(long addr, int shift, int vmid) {
        return ((addr >>> shift) << 17) | ((long) vmid << 1) | 1L;
    }

    private int slot(long addr, int level) {
        return (int) ((addr >>> shifts[level]) & (slots[level] - 1));
    }

    /** Index of the tag for {@code addr} in a level's array with this shift and slot mask. */
    private static int at(long addr, int shift, int mask) {
        return (int) ((addr >>> shift) & mask) << 1;
    }

    /** True if the level's slot for {@code addr} holds the entry of {@code addr} and {@code vmid}. */
    private static boolean holds(long[] e, int shift, int mask, long addr, int vmid) {
        return (long) LONGS.getAcquire(e, at(addr, shift, mask)) == tag(addr, shift, vmid);
    }

    /**
     * Looks {@code addr} up for {@code vmid}. Returns the level of the matching entry (its
     * descriptor via {@link #cachedPte}) or -2 on a miss.
     */
    public int lookup(int vmid, long addr) {
        int filled = filledLevels;
        if ((filled & 8) != 0 && holds(e3, sh3, m3, addr, vmid)) return hit(e3, at(addr, sh3, m3), 3);
        if ((filled & 4) != 0 && holds(e2, sh2, m2, addr, vmid)) return hit(e2, at(addr, sh2, m2), 2);
        if ((filled & 2) != 0 && holds(e1, sh1, m1, addr, vmid)) return hit(e1, at(addr, sh1, m1), 1);
        if ((filled & 1) != 0 && holds(e0, sh0, m0, addr, vmid)) return hit(e0, at(addr, sh0, m0), 0);
        misses++;
        return -2;
    }

    private int hit(long[] e, int i, int level) {
        hits++;
        lastHitPte = e[i + 1];
        return level;
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
        if (level > Granule.LAST_LEVEL) throw PageTableException.invalidArgument("level", (Object) level, "is not a leaf level 0..3");
        checkConflict(vmid, addr, level, pte);
        long[] e = entries[level];
        int i = 2 * slot(addr, level);
        filledLevels |= 1 << level;
        e[i + 1] = pte;
        LONGS.setVolatile(e, i, tag(addr, shifts[level], vmid));
        if (generation() != walkGeneration) {
            LONGS.setVolatile(e, i, 0L);
            return false;
        }
        fills++;
        return true;
    }

    /**
     * A fill overlapping a cached entry of another size is a TLB conflict: architecturally the
     * CPU may then raise a TLB conflict abort or use either entry. It means an entry of the old
     * size was not invalidated (break-before-make skipped its TLBI). Entries covering
     * {@code addr} are checked on every fill; smaller entries elsewhere in a block's span only
     * with {@link #setScanConflicts}.
     */
    private void checkConflict(int vmid, long addr, int level, long pte) {
        int others = filledLevels & ~(1 << level);
        if (others == 0) return;
        for (int l = 0; l <= Granule.LAST_LEVEL; l++) {
            if ((others & (1 << l)) == 0) continue;
            long[] t = entries[l];
            int shift = shifts[l];
            int i = 2 * slot(addr, l);
            long tag = tag(addr, shift, vmid);
            if ((long) LONGS.getAcquire(t, i) == tag) {
                conflict(vmid, addr, level, pte, l, (addr >>> shift) << shift, t[i + 1]);
            } else if (l > level && scanConflicts) {
                // Smaller entries anywhere inside the new block's span.
                long base = (addr >>> shifts[level]) << shifts[level];
                long top = base + (1L << shifts[level]);
                for (int j = 0; j < t.length; j += 2) {
                    long tj = (long) LONGS.getAcquire(t, j);
                    if (tj == 0 || ((tj >>> 1) & 0xFFFF) != vmid) continue;
                    long b = (tj >>> 17) << shift;
                    if (b >= base && b < top) conflict(vmid, addr, level, pte, l, b, t[j + 1]);
                }
            }
        }
    }

    private void conflict(int vmid, long addr, int level, long pte, int otherLevel, long otherBase, long otherPte) {
        conflicts++;
        ConflictListener l = conflictListener;
        if (l != null) l.conflict(this, vmid, addr, level, pte, otherLevel, otherBase, otherPte);
    }

    /** Visits cached entries (for checks at quiescent points). */
    @FunctionalInterface
    public interface EntryVisitor {
        /** {@code base} is the first address the entry translates; it spans {@code levelSize(level)}. */
        void entry(int vmid, int level, long base, long pte);
    }

    /**
     * Calls {@code visitor} for every valid entry. Meant for quiescent points (no fill running);
     * an entry invalidated concurrently may or may not be reported.
     */
    public void forEachEntry(EntryVisitor visitor) {
        for (int l = 0; l <= Granule.LAST_LEVEL; l++) {
            long[] t = entries[l];
            int shift = shifts[l];
            for (int i = 0; i < t.length; i += 2) {
                long tag = (long) LONGS.getAcquire(t, i);
                if (tag == 0) continue;
                long pte = t[i + 1];
                visitor.entry((int) ((tag >>> 1) & 0xFFFF), l, (tag >>> 17) << shift, pte);
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
            int i = 2 * slot(addr, level);
            long t = tag(addr, shifts[level], vmid);
            LONGS.compareAndSet(entries[level], i, t, 0L);
        }
    }

    /** Drops entries of {@code vmid} overlapping {@code [addr, addr + size)}. */
    public void invalidateRange(int vmid, long addr, long size) {
        bump();
        long end = addr + size;
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            long[] t = entries[level];
            int shift = shifts[level];
            for (int i = 0; i < t.length; i += 2) {
                long tag = (long) LONGS.getAcquire(t, i);
                if (tag == 0 || ((tag >>> 1) & 0xFFFF) != vmid) continue;
                long base = (tag >>> 17) << shift;
                long top = base + (1L << shift);
                if (base < end && top > addr) LONGS.compareAndSet(t, i, tag, 0L);
            }
        }
    }

    /** Drops every entry of {@code vmid}. */
    public void invalidateVmid(int vmid) {
        bump();
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            long[] t = entries[level];
            for (int i = 0; i < t.length; i += 2) {
                long tag = (long) LONGS.getAcquire(t, i);
                if (tag != 0 && ((tag >>> 1) & 0xFFFF) == vmid) LONGS.compareAndSet(t, i, tag, 0L);
            }
        }
    }

    /** Drops everything. */
    public void invalidateAll() {
        bump();
        for (long[] t : entries) {
            for (int i = 0; i < t.length; i += 2) LONGS.setVolatile(t, i, 0L);
        }
    }

    /** Number of valid entries (for tests and reports). */
    public int size() {
        int n = 0;
        for (long[] t : entries) for (int i = 0; i < t.length; i += 2) if ((long) LONGS.getAcquire(t, i) != 0) n++;
        return n;
    }
}
