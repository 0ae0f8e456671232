package dev.ptlab.core.hw;

import dev.ptlab.core.PageTableException;

import dev.ptlab.core.arch.Granule;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One CPU's TLB: leaf translations tagged with VMID, the leaf's level and its descriptor (so
 * permissions and attributes come from the cached copy, as on hardware), and a walk cache of
 * stage-2 table descriptors per level (D8.16 RRVJDB: "intermediate TLB caching structures" are TLB
 * entries too).
 *
 * <p>Direct-mapped per leaf level: a lookup probes the page level first, then larger blocks. The
 * walk cache is direct-mapped per table level; its entry for level {@code L} holds the level-L
 * table descriptor translating {@code addr} (so the next table's address) and, for checking mode,
 * the generation of that next table's frame when the descriptor was read.
 *
 * <p>Entry kinds ({@link Kind}) live in separate arrays, so the kind is part of an entry's tag by
 * where it is stored: stage-2 leaves and stage-2 walk entries; guest stage-1 leaves (VA→IPA) and
 * combined entries (VA→PA, D8.17 "structures that combine stage 1 and stage 2"), which carry an
 * ASID word besides the VMID tag: 0 for a global entry (nG = 0), else {@code asid << 1 | 1}.
 * Each TLBI names the kinds it reaches: stage-2 forms never touch STAGE1 or COMBINED entries
 * (IPAS2E1IS is not required to, D8.17.6.1), VMALLE1* and VAE1* touch only those. A combined
 * entry spans the smaller of its two leaves (it is indexed at the deeper of their levels).
 * Stage-1 walk-cache entries (guest table descriptors per level, with the next table's IPA and
 * the hierarchical APTable/XNTable bits gathered down to it) are always ASID-tagged: entries
 * above the final level are non-global (D8.16 RCHVGJ).
 *
 * <p>Replacement: direct-mapped eviction by default (a fill replaces whatever its slot held). In
 * {@linkplain #setStrict strict} mode an occupied slot is never evicted: the new translation is
 * simply not cached (the architecture lets a TLB cache nothing), so every entry stays until a
 * TLBI that covers it removes it, which is as long as the architecture allows hardware to keep it.
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

    // Walk cache: per table level -1..2 (index level + 1), triples (tag, table descriptor, frame
    // generation of the table it points to), tags as for leaves. Final fields for the unrolled
    // probe in walkLookup.
    private static final int WALK_STRIDE = 3;
    private final int walkEntries;
    private final long[][] walk = new long[4][];
    private final long[] wm1, w0, w1, w2;
    private final int wsm1, ws0, ws1, ws2;
    private final int wmask;
    /** Bit {@code level + 1} set once a walk entry at that level was filled (as {@link #filledLevels}). */
    private int walkFilled;
    private long walkHits;
    private long walkFills;
    private long lastWalkPte;
    private int lastWalkGen;
    private boolean strict;

    /** The kinds of entry a TLB holds (each in its own arrays). */
    public enum Kind {
        /** A stage-2 (or hyp stage-1) leaf: block or page descriptor, IPA→PA. */
        LEAF,
        /** A cached stage-2 table descriptor (walk cache). */
        WALK,
        /** A guest stage-1 leaf, VA→IPA, tagged with VMID and ASID (or global). */
        STAGE1,
        /** A combined stage-1 + stage-2 entry, VA→PA, tagged with VMID and ASID (or global). */
        COMBINED
    }

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
        this(name, granule, pageEntries, blockEntries, DEFAULT_WALK_ENTRIES);
    }

    /** Walk-cache entries per table level by default. */
    public static final int DEFAULT_WALK_ENTRIES = 64;

    /**
     * @param walkEntries walk-cache entries per table level: a power of two, or 0 for no walk cache
     */
    public Tlb(String name, Granule granule, int pageEntries, int blockEntries, int walkEntries) {
        if (granule == null) throw PageTableException.invalidArgument("granule", null, "is null");
        if (Integer.bitCount(pageEntries) != 1 || pageEntries < 1) {
            throw PageTableException.invalidArgument("pageEntries", (Object) pageEntries, "is not a power of two");
        }
        if (Integer.bitCount(blockEntries) != 1 || blockEntries < 1) {
            throw PageTableException.invalidArgument("blockEntries", (Object) blockEntries, "is not a power of two");
        }
        if (walkEntries != 0 && (Integer.bitCount(walkEntries) != 1 || walkEntries < 0)) {
            throw PageTableException.invalidArgument("walkEntries", (Object) walkEntries, "is neither 0 nor a power of two");
        }
        this.walkEntries = walkEntries;
        int wn = Math.max(walkEntries, 1); // a one-slot array that is never filled when off
        for (int level = Granule.FIRST_LEVEL; level < Granule.LAST_LEVEL; level++) {
            walk[level + 1] = new long[WALK_STRIDE * wn];
        }
        wm1 = walk[0]; w0 = walk[1]; w1 = walk[2]; w2 = walk[3];
        wsm1 = granule.levelShift(-1); ws0 = granule.levelShift(0); ws1 = granule.levelShift(1); ws2 = granule.levelShift(2);
        wmask = wn - 1;
        this.name = name;
        this.granule = granule;
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            int n = level == Granule.LAST_LEVEL ? pageEntries : blockEntries;
            slots[level] = n;
            entries[level] = new long[2 * n];
            shifts[level] = granule.levelShift(level);
        }
        e0 = entries[0]; e1 = entries[1]; e2 = entries[2]; e3 = entries[3];
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            s1[level] = new long[S1_STRIDE * slots[level]];
            comb[level] = new long[COMB_STRIDE * slots[level]];
            s1walk[level] = new long[S1W_STRIDE * wn];
        }
        c0 = comb[0]; c1 = comb[1]; c2 = comb[2]; c3 = comb[3];
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
    /** Walk-cache entries per table level (0: no walk cache). */
    public int walkEntries() { return walkEntries; }
    /** Walks that started below the root thanks to a walk-cache entry. */
    public long walkHits() { return walkHits; }
    public long walkFills() { return walkFills; }
    public boolean strict() { return strict; }

    /**
     * Strict replacement: a fill never evicts another entry (see the class comment). Off by
     * default; checking runs turn it on so a missing TLBI cannot be hidden by an eviction.
     */
    public void setStrict(boolean strict) {
        this.strict = strict;
    }

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
        long tag = tag(addr, shifts[level], vmid);
        if (strict) {
            long held = (long) LONGS.getAcquire(e, i);
            if (held != 0 && held != tag) return false; // keep the older entry: see setStrict
        }
        filledLevels |= 1 << level;
        e[i + 1] = pte;
        LONGS.setVolatile(e, i, tag);
        if (generation() != walkGeneration) {
            LONGS.setVolatile(e, i, 0L);
            return false;
        }
        fills++;
        return true;
    }

    // ---- walk cache ------------------------------------------------------------------------------

    /** Index of the tag for {@code addr} in a walk-cache level array with this shift. */
    private int walkAt(long addr, int shift) {
        return (int) ((addr >>> shift) & wmask) * WALK_STRIDE;
    }

    /**
     * Looks the walk cache up for {@code addr} of {@code vmid}: the deepest level at or above
     * {@code minLevel} holding a table descriptor for it, or -2. The descriptor is then
     * {@link #cachedWalkPte}, the generation of the table frame it points to (when it was cached)
     * {@link #cachedWalkGeneration}. Owner only; allocation-free.
     */
    public int walkLookup(int vmid, long addr, int minLevel) {
        int filled = walkFilled;
        if (filled == 0) return -2;
        if ((filled & 8) != 0 && minLevel <= 2 && walkHolds(w2, ws2, addr, vmid)) return walkHit(w2, walkAt(addr, ws2), 2);
        if ((filled & 4) != 0 && minLevel <= 1 && walkHolds(w1, ws1, addr, vmid)) return walkHit(w1, walkAt(addr, ws1), 1);
        if ((filled & 2) != 0 && minLevel <= 0 && walkHolds(w0, ws0, addr, vmid)) return walkHit(w0, walkAt(addr, ws0), 0);
        if ((filled & 1) != 0 && minLevel <= -1 && walkHolds(wm1, wsm1, addr, vmid)) return walkHit(wm1, walkAt(addr, wsm1), -1);
        return -2;
    }

    private boolean walkHolds(long[] w, int shift, long addr, int vmid) {
        return (long) LONGS.getAcquire(w, walkAt(addr, shift)) == tag(addr, shift, vmid);
    }

    private int walkHit(long[] w, int i, int level) {
        walkHits++;
        lastWalkPte = w[i + 1];
        lastWalkGen = (int) w[i + 2];
        return level;
    }

    /** Table descriptor of the entry the last successful {@link #walkLookup} found. */
    public long cachedWalkPte() {
        return lastWalkPte;
    }

    /** Generation of the table frame that descriptor pointed to when it was cached. */
    public int cachedWalkGeneration() {
        return lastWalkGen;
    }

    /**
     * Caches the level-{@code level} table descriptor {@code pte} that a walk begun at generation
     * {@code walkGeneration} read for {@code addr}; {@code frameGeneration} is the generation of
     * the table frame it points to. Dropped, as a leaf fill is, if an invalidation ran meanwhile.
     *
     * @return whether the entry is cached
     */
    public boolean fillWalk(int vmid, long addr, int level, long pte, int frameGeneration, long walkGeneration) {
        if (walkEntries == 0) return false;
        if (level < Granule.FIRST_LEVEL || level >= Granule.LAST_LEVEL) {
            throw PageTableException.invalidArgument("level", (Object) level, "is not a table level -1..2");
        }
        long[] w = walk[level + 1];
        int shift = shifts(level);
        int i = walkAt(addr, shift);
        long tag = tag(addr, shift, vmid);
        long held = (long) LONGS.getAcquire(w, i);
        if (strict && held != 0 && held != tag) return false;
        walkFilled |= 1 << (level + 1);
        w[i + 1] = pte;
        w[i + 2] = frameGeneration;
        LONGS.setVolatile(w, i, tag);
        if (generation() != walkGeneration) {
            LONGS.setVolatile(w, i, 0L);
            return false;
        }
        walkFills++;
        return true;
    }

    private int shifts(int level) {
        return granule.levelShift(level);
    }

    /** Visits cached walk entries (for checks at quiescent points). */
    @FunctionalInterface
    public interface WalkEntryVisitor {
        /**
         * @param base first address the entry covers (it spans {@code levelSize(level)})
         * @param pte the cached level-{@code level} table descriptor
         */
        void entry(int vmid, int level, long base, long pte, int frameGeneration);
    }

    /** Calls {@code visitor} for every valid walk-cache entry (quiescent points, as {@link #forEachEntry}). */
    public void forEachWalkEntry(WalkEntryVisitor visitor) {
        for (int level = Granule.FIRST_LEVEL; level < Granule.LAST_LEVEL; level++) {
            long[] w = walk[level + 1];
            int shift = shifts(level);
            for (int i = 0; i < w.length; i += WALK_STRIDE) {
                long tag = (long) LONGS.getAcquire(w, i);
                if (tag == 0) continue;
                visitor.entry((int) ((tag >>> 1) & 0xFFFF), level, (tag >>> 17) << shift, w[i + 1], (int) w[i + 2]);
            }
        }
    }

    /** Number of valid walk-cache entries. */
    public int walkSize() {
        int n = 0;
        for (long[] w : walk) for (int i = 0; i < w.length; i += WALK_STRIDE) if ((long) LONGS.getAcquire(w, i) != 0) n++;
        return n;
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

    /** Level mask with every leaf level (bit {@code level + 1}, as {@link #invalidate}). */
    public static final int ALL_LEAF_LEVELS = 0b11110;
    /** Level mask with every walk-cache level -1..2. */
    public static final int ALL_WALK_LEVELS = 0b01111;

    /** Drops entries of {@code vmid} translating {@code addr} at any level, walk cache included. */
    public void invalidateAddress(int vmid, long addr) {
        invalidate(vmid, addr, 1, ALL_LEAF_LEVELS, ALL_WALK_LEVELS);
    }

    /** Drops entries of {@code vmid} overlapping {@code [addr, addr + size)}, walk cache included. */
    public void invalidateRange(int vmid, long addr, long size) {
        invalidate(vmid, addr, size, ALL_LEAF_LEVELS, ALL_WALK_LEVELS);
    }

    /**
     * The primitive behind every TLBI: drops the entries of {@code vmid} overlapping
     * {@code [addr, addr + size)} whose level is in {@code leafLevels} (leaf entries) or
     * {@code walkLevels} (walk-cache entries), bit {@code level + 1} per level. A size of one
     * probes the address's slot per level; larger sizes scan the levels' arrays.
     */
    public void invalidate(int vmid, long addr, long size, int leafLevels, int walkLevels) {
        bump();
        long end = addr + size;
        // Walk-cache entries first, upper levels first, then leaves. A walk that began after the
        // bump may still have hit a walk entry this pass has not dropped yet, and cache what it
        // found below it; such a walk re-checks its walk entry after each fill
        // (walkEntryStillHeld) and undoes the fill if the entry is gone. With this order, either
        // that re-check sees the drop, or the fill came before the later passes scanned its slot
        // and they drop it (a Dekker pair: volatile fill then volatile re-read on the walker's
        // side, CAS drop then volatile scan here).
        if (walkEntries != 0) {
            for (int level = Granule.FIRST_LEVEL; level < Granule.LAST_LEVEL; level++) {
                if ((walkLevels & (1 << (level + 1))) != 0) drop(walk[level + 1], WALK_STRIDE, shifts(level), vmid, addr, end, size == 1, wmask);
            }
        }
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            if ((leafLevels & (1 << (level + 1))) != 0) drop(entries[level], 2, shifts[level], vmid, addr, end, size == 1, slots[level] - 1);
        }
    }

    /**
     * Whether the walk-cache entry a walk started from ({@link #walkLookup} returned
     * {@code level} for {@code addr}) is still cached. Owner only. A walk that began from a
     * cached descriptor calls this after each fill: if an invalidation dropped the descriptor
     * meanwhile, what the walk found below it may be stale and the fill must be undone (see
     * {@link #invalidate}).
     */
    public boolean walkEntryStillHeld(int vmid, long addr, int level) {
        return walkHolds(walk[level + 1], shifts(level), addr, vmid);
    }

    /** Undoes this CPU's own fill of the level-{@code level} leaf for {@code addr} (owner only). */
    public void unfill(int vmid, long addr, int level) {
        LONGS.compareAndSet(entries[level], 2 * slot(addr, level), tag(addr, shifts[level], vmid), 0L);
    }

    /** Undoes this CPU's own fill of the level-{@code level} walk-cache entry for {@code addr} (owner only). */
    public void unfillWalk(int vmid, long addr, int level) {
        int shift = shifts(level);
        LONGS.compareAndSet(walk[level + 1], walkAt(addr, shift), tag(addr, shift, vmid), 0L);
    }

    /** Drops the entries of {@code vmid} in {@code t} (records of {@code stride} longs) overlapping [addr, end). */
    private static void drop(long[] t, int stride, int shift, int vmid, long addr, long end, boolean one, int mask) {
        if (one) {
            LONGS.compareAndSet(t, (int) ((addr >>> shift) & mask) * stride, tag(addr, shift, vmid), 0L);
            return;
        }
        for (int i = 0; i < t.length; i += stride) {
            long tag = (long) LONGS.getAcquire(t, i);
            if (tag == 0 || ((tag >>> 1) & 0xFFFF) != vmid) continue;
            long base = (tag >>> 17) << shift;
            long top = base + (1L << shift);
            if (base < end && top > addr) LONGS.compareAndSet(t, i, tag, 0L);
        }
    }

    /** Drops every entry of {@code vmid}, walk cache included. */
    public void invalidateVmid(int vmid) {
        bump();
        // Walk-cache entries before leaves, for the reason given in invalidate.
        for (long[][] kind : new long[][][] {walk, entries}) {
            int stride = kind == entries ? 2 : WALK_STRIDE;
            for (long[] t : kind) {
                for (int i = 0; i < t.length; i += stride) {
                    long tag = (long) LONGS.getAcquire(t, i);
                    if (tag != 0 && ((tag >>> 1) & 0xFFFF) == vmid) LONGS.compareAndSet(t, i, tag, 0L);
                }
            }
        }
        dropStage1(vmid, false);
    }

    /** Drops everything. */
    public void invalidateAll() {
        bump();
        // Walk-cache entries before leaves, for the reason given in invalidate.
        for (long[] w : walk) {
            for (int i = 0; i < w.length; i += WALK_STRIDE) LONGS.setVolatile(w, i, 0L);
        }
        for (long[] t : entries) {
            for (int i = 0; i < t.length; i += 2) LONGS.setVolatile(t, i, 0L);
        }
        dropStage1(0, true);
    }

    /** Number of valid leaf entries (for tests and reports; {@link #walkSize} counts the walk cache). */
    public int size() {
        int n = 0;
        for (long[] t : entries) for (int i = 0; i < t.length; i += 2) if ((long) LONGS.getAcquire(t, i) != 0) n++;
        return n;
    }

    // ---- guest stage-1 and combined entries -----------------------------------------------------

    // Per leaf level 0..3, direct-mapped like the stage-2 leaves. STAGE1 records: (tag, asid word,
    // effective stage-1 leaf). COMBINED records: (tag, asid word, effective stage-1 leaf, stage-2
    // leaf, PA of the entry's first byte). Tags as for stage-2 leaves, over the VA.
    private static final int S1_STRIDE = 3;
    private static final int COMB_STRIDE = 5;
    private final long[][] s1 = new long[4][];
    private final long[][] comb = new long[4][];
    private final long[] c0, c1, c2, c3;
    /**
     * Bit {@code level} set once a stage-1 (bits 0..3) or combined (bits 4..7) entry was filled
     * there. Volatile, unlike {@link #filledLevels}: invalidating threads read it to skip the
     * stage-1 arrays of a TLB that never held a guest entry (every stage-2 TLBI sequence ends
     * with VMALLE1IS). A fill sets its bit before publishing its tag and re-checks the
     * generation after, so an invalidation that bumped the generation first and then read no
     * bit leaves the fill to withdraw itself.
     */
    private volatile int s1Filled;
    private long s1Hits;
    private long combinedHits;
    private long lastS1Pte;
    private long lastS2Pte;
    private long lastPa;


    private static long asidWord(int asid, long s1pte) {
        return (s1pte & dev.ptlab.core.arch.Stage1Descriptor.NG) == 0 ? 0 : (long) asid << 1 | 1;
    }

    /** Whether a record's asid word matches {@code asid}: global entries match every ASID. */
    private static boolean asidMatches(long word, int asid) {
        return word == 0 || word == ((long) asid << 1 | 1);
    }

    // Stage-1 walk cache, per table level -1..2 (index level + 1): (tag, asid word, table
    // descriptor, hierarchical bits gathered down to and including it); as big as the stage-2 one.
    private static final int S1W_STRIDE = 4;
    private final long[][] s1walk = new long[4][];
    /** As {@link #s1Filled}, for the stage-1 walk cache (bit {@code level + 1}). */
    private volatile int s1WalkFilled;
    private long lastS1TableBits;
    private long s1WalkHits;

    /** Stage-1 walks that started below the TTBR thanks to a stage-1 walk-cache entry. */
    public long stage1WalkHits() { return s1WalkHits; }

    /**
     * The deepest stage-1 walk-cache entry at or below {@code minLevel} for {@code va} of
     * {@code vmid} and {@code asid}: its level, or -2. The descriptor is then
     * {@link #cachedWalkPte()}, the gathered table bits {@link #cachedStage1TableBits()}.
     */
    public int stage1WalkLookup(int vmid, int asid, long va, int minLevel) {
        if (s1WalkFilled == 0) return -2;
        long word = (long) asid << 1 | 1;
        for (int level = Granule.LAST_LEVEL - 1; level >= minLevel; level--) {
            if ((s1WalkFilled & (1 << (level + 1))) == 0) continue;
            long[] w = s1walk[level + 1];
            int shift = shifts(level);
            int i = (int) ((va >>> shift) & wmask) * S1W_STRIDE;
            if ((long) LONGS.getAcquire(w, i) == tag(va, shift, vmid) && w[i + 1] == word) {
                s1WalkHits++;
                lastWalkPte = w[i + 2];
                lastS1TableBits = w[i + 3];
                return level;
            }
        }
        return -2;
    }

    /** Hierarchical bits of the stage-1 walk entry the last {@link #stage1WalkLookup} found. */
    public long cachedStage1TableBits() { return lastS1TableBits; }

    /** Caches a guest table descriptor read at {@code level} for {@code va} (see {@link #fillWalk}). */
    public boolean fillStage1Walk(int vmid, int asid, long va, int level, long pte, long tableBits, long walkGeneration) {
        if (walkEntries == 0) return false;
        long[] w = s1walk[level + 1];
        int shift = shifts(level);
        int i = (int) ((va >>> shift) & wmask) * S1W_STRIDE;
        long tag = tag(va, shift, vmid);
        long word = (long) asid << 1 | 1;
        if (strict) {
            long held = (long) LONGS.getAcquire(w, i);
            if (held != 0 && (held != tag || w[i + 1] != word)) return false;
        }
        if ((s1WalkFilled & (1 << (level + 1))) == 0) s1WalkFilled |= 1 << (level + 1);
        w[i + 1] = word;
        w[i + 2] = pte;
        w[i + 3] = tableBits;
        return publish(w, i, tag, walkGeneration);
    }

    /** Valid stage-1 walk-cache entries. */
    public int stage1WalkSize() {
        return count(s1walk, S1W_STRIDE);
    }

    /** Stage-1 hits (VA→IPA, then stage 2 only for the output) and combined hits so far. */
    public long stage1Hits() { return s1Hits; }
    public long combinedHits() { return combinedHits; }

    /**
     * Looks up a combined VA→PA entry of {@code vmid} for {@code va} usable by {@code asid}: the
     * level it is indexed at, or -2. Then {@link #cachedPte()} is the effective stage-1 leaf,
     * {@link #cachedStage2Pte()} the stage-2 leaf, {@link #cachedPa()} the PA of the entry's
     * first byte. Owner only; allocation-free.
     */
    public int lookupCombined(int vmid, int asid, long va) {
        // Unrolled over final per-level fields, as lookup: the hit path of every guest access.
        int filled = s1Filled;
        if ((filled & 0x80) != 0 && combHolds(c3, sh3, m3, va, vmid, asid)) return combHit(c3, combAt(va, sh3, m3), 3);
        if ((filled & 0x40) != 0 && combHolds(c2, sh2, m2, va, vmid, asid)) return combHit(c2, combAt(va, sh2, m2), 2);
        if ((filled & 0x20) != 0 && combHolds(c1, sh1, m1, va, vmid, asid)) return combHit(c1, combAt(va, sh1, m1), 1);
        if ((filled & 0x10) != 0 && combHolds(c0, sh0, m0, va, vmid, asid)) return combHit(c0, combAt(va, sh0, m0), 0);
        return -2;
    }

    private static int combAt(long va, int shift, int mask) {
        return (int) ((va >>> shift) & mask) * COMB_STRIDE;
    }

    private static boolean combHolds(long[] c, int shift, int mask, long va, int vmid, int asid) {
        int i = combAt(va, shift, mask);
        return (long) LONGS.getAcquire(c, i) == tag(va, shift, vmid) && asidMatches(c[i + 1], asid);
    }

    private int combHit(long[] c, int i, int level) {
        combinedHits++;
        lastHitPte = c[i + 2];
        lastS2Pte = c[i + 3];
        lastPa = c[i + 4];
        return level;
    }

    /** Looks up a stage-1 VA→IPA leaf as {@link #lookupCombined}; its descriptor is then {@link #cachedPte()}. */
    public int lookupStage1(int vmid, int asid, long va) {
        int filled = s1Filled & 0xF;
        for (int level = Granule.LAST_LEVEL; level >= 0; level--) {
            if ((filled & (1 << level)) == 0) continue;
            long[] a = s1[level];
            int i = (int) ((va >>> shifts[level]) & (slots[level] - 1)) * S1_STRIDE;
            if ((long) LONGS.getAcquire(a, i) == tag(va, shifts[level], vmid) && asidMatches(a[i + 1], asid)) {
                s1Hits++;
                lastHitPte = a[i + 2];
                return level;
            }
        }
        return -2;
    }

    /** Stage-2 leaf of the combined entry the last {@link #lookupCombined} found. */
    public long cachedStage2Pte() { return lastS2Pte; }
    /** PA of the first byte of that combined entry's span. */
    public long cachedPa() { return lastPa; }

    /**
     * Caches a stage-1 leaf (effective descriptor, nG decides the ASID tag) found by a walk begun
     * at {@code walkGeneration}. Dropped if an invalidation ran meanwhile; strict mode never evicts.
     */
    public boolean fillStage1(int vmid, int asid, long va, int level, long s1pte, long walkGeneration) {
        long[] a = s1[level];
        int i = (int) ((va >>> shifts[level]) & (slots[level] - 1)) * S1_STRIDE;
        long tag = tag(va, shifts[level], vmid);
        long word = asidWord(asid, s1pte);
        if (strict) {
            long held = (long) LONGS.getAcquire(a, i);
            if (held != 0 && (held != tag || a[i + 1] != word)) return false;
        }
        if ((s1Filled & (1 << level)) == 0) s1Filled |= 1 << level;
        a[i + 1] = word;
        a[i + 2] = s1pte;
        return publish(a, i, tag, walkGeneration);
    }

    /**
     * Caches a combined entry for {@code va} at {@code level} (the deeper of the two leaves'
     * levels): {@code pa} is the PA of the span's first byte.
     */
    public boolean fillCombined(int vmid, int asid, long va, int level, long s1pte, long s2pte, long pa, long walkGeneration) {
        long[] c = comb[level];
        int i = (int) ((va >>> shifts[level]) & (slots[level] - 1)) * COMB_STRIDE;
        long tag = tag(va, shifts[level], vmid);
        long word = asidWord(asid, s1pte);
        if (strict) {
            long held = (long) LONGS.getAcquire(c, i);
            if (held != 0 && (held != tag || c[i + 1] != word)) return false;
        }
        if ((s1Filled & (1 << (level + 4))) == 0) s1Filled |= 1 << (level + 4);
        c[i + 1] = word;
        c[i + 2] = s1pte;
        c[i + 3] = s2pte;
        c[i + 4] = pa;
        return publish(c, i, tag, walkGeneration);
    }

    /** Stores the tag last (volatile) and withdraws it if an invalidation ran since the walk began. */
    private boolean publish(long[] a, int i, long tag, long walkGeneration) {
        LONGS.setVolatile(a, i, tag);
        if (generation() != walkGeneration) {
            LONGS.setVolatile(a, i, 0L);
            return false;
        }
        fills++;
        return true;
    }

    /** TLBI VMALLE1: every stage-1 and combined entry of {@code vmid}, all ASIDs and global. */
    public void invalidateStage1(int vmid) {
        bump();
        dropStage1(vmid, false);
    }

    /**
     * TLBI VAE1 / VALE1: stage-1 and combined entries of {@code vmid} translating {@code va} at a
     * level in {@code leafLevels} (bit {@code level + 1}) that are global or of {@code asid}, and
     * stage-1 walk-cache entries of {@code asid} for it at a level in {@code walkLevels}.
     */
    public void invalidateStage1Va(int vmid, int asid, long va, int leafLevels, int walkLevels) {
        bump();
        if ((s1Filled | s1WalkFilled) == 0) return;
        for (int level = Granule.FIRST_LEVEL; level < Granule.LAST_LEVEL && walkEntries > 0; level++) {
            if ((walkLevels & (1 << (level + 1))) == 0) continue;
            long[] w = s1walk[level + 1];
            int shift = shifts(level);
            int i = (int) ((va >>> shift) & wmask) * S1W_STRIDE;
            if (w[i + 1] == ((long) asid << 1 | 1)) LONGS.compareAndSet(w, i, tag(va, shift, vmid), 0L);
        }
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            if ((leafLevels & (1 << (level + 1))) == 0) continue;
            int sh = shifts[level];
            int slot = (int) ((va >>> sh) & (slots[level] - 1));
            long tag = tag(va, sh, vmid);
            if (asidMatches(s1[level][slot * S1_STRIDE + 1], asid)) LONGS.compareAndSet(s1[level], slot * S1_STRIDE, tag, 0L);
            if (asidMatches(comb[level][slot * COMB_STRIDE + 1], asid)) LONGS.compareAndSet(comb[level], slot * COMB_STRIDE, tag, 0L);
        }
    }

    /** Drops stage-1 and combined entries of {@code vmid} (every VMID if {@code all}). */
    private void dropStage1(int vmid, boolean all) {
        if ((s1Filled | s1WalkFilled) == 0) return; // never held a guest entry: nothing to scan
        // Walk-cache entries of every level before any leaf, for the reason given in invalidate.
        for (int pass = 0; pass < 2; pass++) {
            for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
                for (long[] a : pass == 0 ? new long[][] {s1walk[level]} : new long[][] {s1[level], comb[level]}) {
                    int stride = a == s1[level] ? S1_STRIDE : a == comb[level] ? COMB_STRIDE : S1W_STRIDE;
                    for (int i = 0; i < a.length; i += stride) {
                        long tag = (long) LONGS.getAcquire(a, i);
                        if (tag != 0 && (all || ((tag >>> 1) & 0xFFFF) == vmid)) LONGS.compareAndSet(a, i, tag, 0L);
                    }
                }
            }
        }
    }

    /** Visits combined entries (quiescent points). */
    @FunctionalInterface
    public interface CombinedEntryVisitor {
        /**
         * @param asid the entry's ASID, or -1 for a global entry
         * @param baseVa first VA the entry translates (it spans the level's size)
         * @param pa PA of that first byte
         */
        void entry(int vmid, int asid, int level, long baseVa, long s1pte, long s2pte, long pa);
    }

    public void forEachCombinedEntry(CombinedEntryVisitor visitor) {
        for (int level = 0; level <= Granule.LAST_LEVEL; level++) {
            long[] c = comb[level];
            for (int i = 0; i < c.length; i += COMB_STRIDE) {
                long tag = (long) LONGS.getAcquire(c, i);
                if (tag == 0) continue;
                long word = c[i + 1];
                // Arithmetic shift: a TTBR1 VA's top bits come back sign-extended.
                visitor.entry((int) ((tag >>> 1) & 0xFFFF), word == 0 ? -1 : (int) (word >>> 1), level,
                        (tag >> 17) << shifts[level], c[i + 2], c[i + 3], c[i + 4]);
            }
        }
    }

    /** Valid stage-1 (VA→IPA) entries. */
    public int stage1Size() {
        return count(s1, S1_STRIDE);
    }

    /** Valid combined (VA→PA) entries. */
    public int combinedSize() {
        return count(comb, COMB_STRIDE);
    }

    private static int count(long[][] arrays, int stride) {
        int n = 0;
        for (long[] a : arrays) {
            for (int i = 0; i < a.length; i += stride) if ((long) LONGS.getAcquire(a, i) != 0) n++;
        }
        return n;
    }
}
