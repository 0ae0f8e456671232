package dev.ptlab.mm.device;

import java.util.Arrays;

/**
 * The device's page table: a flat map from page number (virtual address >>> page shift) to a
 * mirror entry (page PA | {@link MirrorDevice} permission bits), open addressing with linear
 * probing over two {@code long[]} arrays, so a mirrored page costs no object. Not thread-safe:
 * the device's mutex guards it.
 *
 * <p>Deletion shifts the following run back into the hole (no tombstones), so a lookup stops at
 * the first empty slot and the table never degrades after many map/unmap cycles.
 */
final class MirrorTable {
    /** Page numbers are non-negative (a VA shifted right), so -1 marks an empty slot. */
    private static final long EMPTY = -1;
    private static final int MIN_CAPACITY = 16;

    private long[] keys;
    private long[] values;
    private int size;
    /** Scratch for {@link #removeRange} over a sparse table (reused). */
    private long[] doomed = new long[MIN_CAPACITY];

    MirrorTable() {
        allocate(MIN_CAPACITY);
    }

    private void allocate(int capacity) {
        keys = new long[capacity];
        Arrays.fill(keys, EMPTY);
        values = new long[capacity];
    }

    int size() {
        return size;
    }

    private int home(long key) {
        long h = key * 0x9E37_79B9_7F4A_7C15L;
        return (int) (h >>> 32) & (keys.length - 1);
    }

    private int slotOf(long key) {
        int mask = keys.length - 1;
        for (int i = home(key); ; i = (i + 1) & mask) {
            long k = keys[i];
            if (k == key) return i;
            if (k == EMPTY) return -1;
        }
    }

    /** The entry of page {@code key}, or 0 if the page is not mirrored. */
    long get(long key) {
        int i = slotOf(key);
        return i < 0 ? 0 : values[i];
    }

    /** Maps page {@code key} to {@code value} (non-zero); returns the previous entry or 0. */
    long put(long key, long value) {
        if (key < 0) throw new IllegalArgumentException("key: " + key + " is negative");
        if (value == 0) throw new IllegalArgumentException("value: 0 is not an entry (use remove)");
        if ((size + 1) * 2 > keys.length) grow();
        int mask = keys.length - 1;
        for (int i = home(key); ; i = (i + 1) & mask) {
            long k = keys[i];
            if (k == key) {
                long old = values[i];
                values[i] = value;
                return old;
            }
            if (k == EMPTY) {
                keys[i] = key;
                values[i] = value;
                size++;
                return 0;
            }
        }
    }

    private void grow() {
        long[] oldKeys = keys;
        long[] oldValues = values;
        allocate(oldKeys.length * 2);
        size = 0;
        for (int i = 0; i < oldKeys.length; i++) if (oldKeys[i] != EMPTY) put(oldKeys[i], oldValues[i]);
    }

    /** Unmaps page {@code key}; returns the entry it had, or 0. */
    long remove(long key) {
        int i = slotOf(key);
        if (i < 0) return 0;
        long old = values[i];
        deleteAt(i);
        return old;
    }

    /** Backward-shift deletion: move later members of the probe run into the hole while their home allows it. */
    private void deleteAt(int hole) {
        int mask = keys.length - 1;
        int j = hole;
        while (true) {
            j = (j + 1) & mask;
            long k = keys[j];
            if (k == EMPTY) break;
            int h = home(k);
            // The entry at j may fill the hole only if its home is not cyclically inside (hole, j].
            boolean homeBetween = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
            if (!homeBetween) {
                keys[hole] = k;
                values[hole] = values[j];
                hole = j;
            }
        }
        keys[hole] = EMPTY;
        values[hole] = 0;
        size--;
    }

    /**
     * Unmaps every page with a number in {@code [from, to)}. Returns how many entries were
     * removed in the high 32 bits and how many of those had any bit of {@code flags} in the low
     * 32 bits (read them with {@link #removed} and {@link #flagged}), so an invalidation can count
     * the atomic mappings it revoked without a second pass.
     */
    long removeRange(long from, long to, long flags) {
        if (to <= from || size == 0) return 0;
        long removed = 0;
        long flagged = 0;
        if (to - from <= keys.length) {
            // Small range: probe each page.
            for (long key = from; key < to; key++) {
                long v = remove(key);
                if (v != 0) {
                    removed++;
                    if ((v & flags) != 0) flagged++;
                }
            }
        } else {
            // Large range (munmap of a whole area, release): scan the slots once, then delete,
            // since deleting while scanning would move unvisited entries into visited slots.
            int n = 0;
            for (int i = 0; i < keys.length; i++) {
                long k = keys[i];
                if (k != EMPTY && k >= from && k < to) {
                    if (n == doomed.length) doomed = Arrays.copyOf(doomed, n * 2);
                    doomed[n++] = k;
                }
            }
            for (int i = 0; i < n; i++) {
                long v = remove(doomed[i]);
                removed++;
                if ((v & flags) != 0) flagged++;
            }
        }
        return (removed << 32) | flagged;
    }

    static int removed(long result) {
        return (int) (result >>> 32);
    }

    static int flagged(long result) {
        return (int) result;
    }

    /** Whether any page with a number in {@code [from, to)} has an entry with a bit of {@code flags}. */
    boolean anyInRange(long from, long to, long flags) {
        if (to <= from || size == 0) return false;
        if (to - from <= keys.length) {
            for (long key = from; key < to; key++) if ((get(key) & flags) != 0) return true;
            return false;
        }
        for (int i = 0; i < keys.length; i++) {
            long k = keys[i];
            if (k != EMPTY && k >= from && k < to && (values[i] & flags) != 0) return true;
        }
        return false;
    }

    /** Entries with any bit of {@code flags}. */
    int count(long flags) {
        int n = 0;
        for (int i = 0; i < keys.length; i++) if (keys[i] != EMPTY && (values[i] & flags) != 0) n++;
        return n;
    }

    void clear() {
        allocate(MIN_CAPACITY);
        size = 0;
        doomed = new long[MIN_CAPACITY];
    }
}
