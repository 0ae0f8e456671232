package dev.ptlab.sim;

import dev.ptlab.mm.AddressSpace;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A range of guest-physical memory and what backs it, with the dirty-logging state KVM keeps per
 * slot: a flag and a bitmap of pages written while logging. Two kinds:
 * <ul>
 *   <li><b>fixed</b> ({@link Vm#addMemslot(long, long, Backing, long, boolean)}): a contiguous
 *       host-physical range; guest page {@code gpa} is host PA {@code hostPa + (gpa - start)},
 *       and {@link #backing()} bounds the mapping size. No host page table exists.</li>
 *   <li><b>address space</b> ({@link Vm#addMemslot(long, long, AddressSpace, long, boolean)}): a
 *       range of a host process's virtual memory, as KVM's memslots are ({@code userspace_addr});
 *       guest page {@code gpa} is host virtual address {@link #hva(long)}, whose physical page the
 *       fault path asks the address space for (GUP) each time, and the host's own mapping size
 *       (page, THP, hugetlb) bounds the stage-2 mapping. {@link #backing()} then only describes
 *       the VMA at the slot's start when it was added.</li>
 * </ul>
 */
public final class Memslot {
    private final int id;
    private final long gpa;
    private final long size;
    private final Backing backing;
    private final long hostPa;
    private final AddressSpace mm;
    private final long hva;
    private final boolean readOnly;
    private final int pageShift;
    private final AtomicLongArray dirty;
    private volatile boolean logging;

    /** A fixed slot ({@code mm} null, {@code hva} unused) or an address-space slot ({@code hostPa} -1). */
    Memslot(int id, long gpa, long size, Backing backing, long hostPa, AddressSpace mm, long hva, boolean readOnly, int pageShift) {
        this.id = id;
        this.gpa = gpa;
        this.size = size;
        this.backing = backing;
        this.hostPa = hostPa;
        this.mm = mm;
        this.hva = mm == null ? 0 : hva;
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
    /** Host PA of the slot's first byte; -1 for a slot backed by an address space. */
    public long hostPa() { return hostPa; }
    /** The host address space backing the slot, or null for a fixed host-physical range. */
    public AddressSpace mm() { return mm; }
    /** Host virtual address of the slot's first byte (0 for a fixed slot). */
    public long hva() { return hva; }
    public boolean readOnly() { return readOnly; }
    public boolean logging() { return logging; }
    public long pages() { return size >>> pageShift; }

    void setLogging(boolean on) {
        this.logging = on;
    }

    public boolean contains(long addr) {
        return addr >= gpa && addr - gpa < size;
    }

    /**
     * Host PA backing guest-physical {@code addr} (inside the slot).
     *
     * @throws IllegalStateException for a slot backed by an address space, whose pages have no
     *     fixed PA (ask the address space: {@code mm().pte(hva(addr))})
     */
    public long hostPa(long addr) {
        if (mm != null) {
            throw new IllegalStateException(this + " is backed by an address space: the PA of 0x" + Long.toHexString(addr)
                    + " is whatever the host page table maps at hva 0x" + Long.toHexString(hva(addr)));
        }
        return hostPa + (addr - gpa);
    }

    /** Host virtual address backing guest-physical {@code addr} (inside an address-space slot). */
    public long hva(long addr) {
        return hva + (addr - gpa);
    }

    /** Guest-physical address that host virtual address {@code va} (inside the slot's host range) backs. */
    long gpaOfHva(long va) {
        return gpa + (va - hva);
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
                + (mm == null ? " at host 0x" + Long.toHexString(hostPa) : " at hva 0x" + Long.toHexString(hva))
                + (readOnly ? " ro" : "") + (logging ? " logging" : "");
    }
}
