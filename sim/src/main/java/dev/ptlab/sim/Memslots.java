package dev.ptlab.sim;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Vma;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.function.Consumer;

/**
 * A VM's memslots (KVM_SET_USER_MEMORY_REGION): validates new slots and keeps them sorted by
 * guest-physical address for the fault path's lookup.
 *
 * <p>Locks: adding is serialised by this object's monitor; the slots are published as one
 * immutable, volatile array, so {@link #find}, {@link #all()} and {@link #check} take no lock
 * (the fault path calls {@link #find} on every fault) and see either the slots before an add or
 * after it. Slots are never removed.
 */
final class Memslots {
    private final Geometry geometry;
    private volatile Memslot[] slots = new Memslot[0];

    Memslots(Geometry geometry) {
        this.geometry = geometry;
    }

    /** See {@link Vm#addMemslot(long, long, Backing, long, boolean)}. */
    synchronized Memslot addFixed(long gpa, long size, Backing backing, long hostPa, boolean readOnly) {
        if (backing == null) throw new IllegalArgumentException("backing: null");
        Granule g = geometry.granule();
        long unit = backing.size(g);
        if (size <= 0 || size % unit != 0) {
            throw new IllegalArgumentException("memory: 0x" + Long.toHexString(size) + " is not a positive multiple of the "
                    + backing + " backing's page size 0x" + Long.toHexString(unit));
        }
        checkGuestRange(gpa, size);
        if (hostPa < 0 || hostPa % unit != 0) {
            throw new IllegalArgumentException("hostPa: 0x" + Long.toHexString(hostPa) + " is not aligned to the " + backing
                    + " backing's page size 0x" + Long.toHexString(unit));
        }
        long paLimit = 1L << geometry.paBits();
        if (hostPa + size > paLimit || hostPa + size < hostPa) {
            throw new IllegalArgumentException("hostPa: 0x" + Long.toHexString(hostPa) + " + size leaves the " + geometry.paBits()
                    + "-bit physical address space");
        }
        checkNoOverlap(gpa, size);
        return insert(new Memslot(slots.length, gpa, size, backing, hostPa, null, 0, readOnly, g.shift()));
    }

    /**
     * See {@link Vm#addMemslot(long, long, AddressSpace, long, boolean)}; {@code subscribe} runs
     * once the slot is valid and before it is visible to faults (so no host change can fall
     * between), still under this object's monitor.
     */
    synchronized Memslot addAddressSpace(long gpa, long size, AddressSpace mm, long hva, boolean readOnly,
            Consumer<AddressSpace> subscribe) {
        if (mm == null) throw new IllegalArgumentException("mm: null");
        if (mm.closed()) throw new IllegalArgumentException("mm: " + mm + " is closed");
        Granule g = geometry.granule();
        if (mm.geometry().granule() != g) {
            throw new IllegalArgumentException("mm: its " + mm.geometry().granule().label() + " granule differs from the VM's "
                    + g.label() + " granule");
        }
        long page = g.pageSize();
        if (size <= 0 || size % page != 0) {
            throw new IllegalArgumentException("memory: 0x" + Long.toHexString(size) + " is not a positive multiple of the "
                    + g.label() + " page size");
        }
        checkGuestRange(gpa, size);
        if (hva < 0 || (hva & g.pageMask()) != 0) {
            throw new IllegalArgumentException("hva: 0x" + Long.toHexString(hva) + " is not aligned to the " + g.label() + " granule");
        }
        if (hva + size < hva) {
            throw new IllegalArgumentException("hva: 0x" + Long.toHexString(hva) + " + size 0x" + Long.toHexString(size) + " overflows");
        }
        Vma first = null;
        for (long a = hva; a < hva + size; ) {
            Vma v = mm.findVma(a);
            if (v == null) {
                throw new IllegalArgumentException("hva: [0x" + Long.toHexString(hva) + ", 0x" + Long.toHexString(hva + size)
                        + ") is not all mapped in the address space: no VMA at 0x" + Long.toHexString(a));
            }
            if (first == null) first = v;
            a = v.end();
        }
        checkNoOverlap(gpa, size);
        Backing described = first.hugetlb() ? (first.shared() ? Backing.shared(true) : Backing.hugetlb(first.hugePageSize()))
                : first.shared() ? Backing.shared(false) : first.thp() ? Backing.THP : Backing.PAGE;
        subscribe.accept(mm);
        return insert(new Memslot(slots.length, gpa, size, described, -1, mm, hva, readOnly, g.shift()));
    }

    private void checkGuestRange(long gpa, long size) {
        Granule g = geometry.granule();
        long limit = geometry.iaLimit();
        if (gpa < 0 || (gpa & g.pageMask()) != 0) {
            throw new IllegalArgumentException("gpa: 0x" + Long.toHexString(gpa) + " is not aligned to the " + g.label() + " granule");
        }
        if (gpa + size > limit || gpa + size < gpa) {
            throw new IllegalArgumentException("memory: [0x" + Long.toHexString(gpa) + ", 0x" + Long.toHexString(gpa + size)
                    + ") does not fit the " + geometry.iaBits() + "-bit IPA space (limit 0x" + Long.toHexString(limit) + ")");
        }
    }

    private void checkNoOverlap(long gpa, long size) {
        for (Memslot s : slots) {
            if (gpa < s.end() && s.gpa() < gpa + size) {
                throw new IllegalArgumentException("gpa: [0x" + Long.toHexString(gpa) + ", 0x" + Long.toHexString(gpa + size)
                        + ") overlaps " + s);
            }
        }
    }

    private Memslot insert(Memslot m) {
        Memslot[] n = Arrays.copyOf(slots, slots.length + 1);
        n[slots.length] = m;
        Arrays.sort(n, Comparator.comparingLong(Memslot::gpa));
        slots = n;
        return m;
    }

    /** The slots by guest-physical address. */
    List<Memslot> all() {
        return List.of(slots);
    }

    /** The current slots by guest-physical address, for iteration on hot paths (do not modify). */
    Memslot[] snapshot() {
        return slots;
    }

    /** The memslot containing {@code gpa}, or null. */
    Memslot find(long gpa) {
        Memslot[] s = slots;
        int lo = 0, hi = s.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            Memslot m = s[mid];
            if (gpa < m.gpa()) hi = mid - 1;
            else if (gpa >= m.end()) lo = mid + 1;
            else return m;
        }
        return null;
    }

    /** @throws IllegalArgumentException if {@code slot} is not one of these */
    void check(Memslot slot) {
        if (slot == null || find(slot.gpa()) != slot) throw new IllegalArgumentException("slot: " + slot + " is not a memslot of this VM");
    }
}
