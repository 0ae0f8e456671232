package dev.ptlab.mm;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The object behind a shared anonymous mapping (shmem, or a shared hugetlb file): its pages by
 * offset, so every address space that maps it (parent and child after fork) finds the same
 * folios. Its folios are not anonymous and never COW.
 *
 * <p>Counting: the object holds one reference on each of its folios (the page cache's); each
 * entry mapping one adds a reference and a map count as usual. The object lives while some VMA
 * uses it: every VMA naming it (in any address space, split pieces included) is one user, and
 * when the last user goes its references are dropped, which frees folios no longer mapped.
 *
 * <p>Thread-safe: faults of different address spaces look pages up concurrently.
 */
public final class SharedMemory {
    private final HostMemory memory;
    private final int order;
    private final int flags;
    private final Map<Long, Folio> folios = new HashMap<>();
    private int users;
    private boolean released;

    /**
     * @param order folio order of its pages (0, or a hugetlb page's order)
     * @param hugetlb whether its folios are hugetlb pages
     */
    SharedMemory(HostMemory memory, int order, boolean hugetlb) {
        this.memory = memory;
        this.order = order;
        this.flags = hugetlb ? Folio.HUGETLB : 0;
    }

    /** Bytes per folio of this object. */
    public long folioSize() {
        return memory.pageSize() << order;
    }

    public boolean hugetlb() {
        return flags != 0;
    }

    /** The folio holding byte {@code offset}, or null if that page was never touched. */
    public synchronized Folio folio(long offset) {
        return folios.get(offset & -folioSize());
    }

    /** Folios held, in no particular order. */
    public synchronized List<Folio> folios() {
        return new ArrayList<>(folios.values());
    }

    public synchronized int users() {
        return users;
    }

    /**
     * The folio at {@code offset} (aligned to {@link #folioSize()}), allocated zeroed if new, with
     * one reference taken for the caller's new mapping. Null if memory is exhausted.
     */
    synchronized Folio getForMapping(long offset) {
        if (released) throw new IllegalStateException("shared memory used after its last VMA went");
        long key = offset & -folioSize();
        Folio f = folios.get(key);
        if (f == null) {
            f = memory.allocate(order, flags);
            if (f == null) return null;
            folios.put(key, f);
        }
        f.get();
        return f;
    }

    /** A VMA naming this object was created (mmap, a split, fork). */
    synchronized void addUser() {
        if (released) throw new IllegalStateException("shared memory used after its last VMA went");
        users++;
    }

    /**
     * A VMA naming this object went; the last one drops the object's references (the caller has
     * already zapped its entries, so unmapped folios are freed here).
     */
    void removeUser() {
        List<Folio> drop = null;
        synchronized (this) {
            if (users <= 0) throw new IllegalStateException("shared memory has no users to remove");
            if (--users == 0) {
                released = true;
                drop = new ArrayList<>(folios.values());
                folios.clear();
            }
        }
        if (drop != null) {
            for (Folio f : drop) f.put();
        }
    }

    @Override
    public synchronized String toString() {
        return "shared memory (" + folios.size() + " folios of 0x" + Long.toHexString(folioSize()) + ", " + users + " users)";
    }
}
