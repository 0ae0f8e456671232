package dev.ptlab.sim;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A range of guest-physical memory backed by a contiguous host-physical range, with the
 * dirty-logging state KVM keeps per slot: a flag and a bitmap of pages written while logging.
 */
public final class Memslot {
    private final int id;
    private final long gpa;
    private final long size;
    private final Backing backing;
    private final long hostPa;
    private final boolean readOnly;
    private final int pageShift;
    private final AtomicLongArray dirty;
    private volatile boolean logging;

    Memslot(int id, long gpa, long size, Backing backing, long hostPa, boolean readOnly, int pageShift) {
        this.id = id;
        this.gpa = gpa;
        this.size = size;
        this.backing = backing;
        this.hostPa = hostPa;
        this.readOnly = readOnly;
        this.pageShift = pageShift;
        long pages = size >>> pageShift;
        this.dirty = new AtomicLongArray((int) ((pages + 63) >>> 6));
    }

    public int id() { return id; }
    public long gpa() { return gpa; }
    public long size() { return size; }
    public long end() { return gpa + size; }
    public Backing backing() { return backing; }
    public long hostPa() { return hostPa; }
    public boolean readOnly() { return readOnly; }
    public boolean logging() { return logging; }
    public long pages() { return size >>> pageShift; }

    void setLogging(boolean on) {
        this.logging = on;
    }

    public boolean contains(long addr) {
        return addr >= gpa && addr - gpa < size;
    }

    /** Host PA backing guest-physical {@code addr} (inside the slot). */
    public long hostPa(long addr) {
        return hostPa + (addr - gpa);
    }

    /** Records a write to the page containing {@code addr} (a successful write fault while logging). */
    void markDirty(long addr) {
        long page = (addr - gpa) >>> pageShift;
        int word = (int) (page >>> 6);
        long bit = 1L << (page & 63);
        if ((dirty.get(word) & bit) == 0) dirty.getAndUpdate(word, w -> w | bit);
    }

    /** Takes the dirty bitmap (one bit per page, page 0 = bit 0 of word 0) and clears it. */
    long[] takeDirty() {
        long[] out = new long[dirty.length()];
        for (int i = 0; i < out.length; i++) out[i] = dirty.getAndSet(i, 0);
        return out;
    }

    @Override
    public String toString() {
        return "memslot " + id + " [0x" + Long.toHexString(gpa) + ", 0x" + Long.toHexString(gpa + size) + ") " + backing
                + " at host 0x" + Long.toHexString(hostPa) + (readOnly ? " ro" : "") + (logging ? " logging" : "");
    }
}
