package dev.ptlab.mm;

import dev.ptlab.core.InvariantViolation;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.mem.PhysicalMemory;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * One host machine: the page allocator for data pages ({@link HostMemory}), the physical memory
 * page tables are built in, a swap device, and the address spaces living on it. Address spaces
 * of one host share pages (fork, shared memory), so the cross-space invariants (a folio's map
 * count equals the entries mapping it in every space) are checked here.
 *
 * <p>Data memory hands out folios up to the largest block the host maps at levels 1..2: 1 GiB
 * with 4K pages (order 18), 32 MiB with 16K (order 11), 512 MiB with 64K (order 13); its size is
 * rounded up to a multiple of that. Table memory is sized {@code memory / 64 + 64 MiB}.
 */
public final class Host {
    /** Where data pages start in the host's physical address space. */
    public static final long MEMORY_BASE = 1L << 40;
    /** Where page-table frames of process page tables live. */
    public static final long TABLE_MEMORY_BASE = 0x7E00_0000_0000L;
    private static final long TABLE_SLACK = 64L << 20;

    private final Granule granule;
    private final int vaBits;
    private final boolean checking;
    private final Geometry geometry;
    private final HostMemory memory;
    private final PhysicalMemory tableMemory;
    private final SwapSpace swap = new SwapSpace();
    private final List<AddressSpace> spaces = new CopyOnWriteArrayList<>();

    /**
     * @param memoryBytes data memory, rounded up to the largest folio size
     * @param vaBits process virtual-address size (48 is Linux's arm64 default)
     * @param checking checking mode for the table memory: freed frames poisoned, the walker
     *        checks break-before-make on every store and use-after-free on every read
     */
    public Host(Granule granule, long memoryBytes, int vaBits, boolean checking) {
        if (granule == null) throw new IllegalArgumentException("granule: null");
        if (memoryBytes <= 0) throw new IllegalArgumentException("memoryBytes: " + memoryBytes + " is not positive");
        this.granule = granule;
        this.vaBits = vaBits;
        this.checking = checking;
        this.geometry = Geometry.process(granule, vaBits);
        int maxOrder = maxOrder(granule);
        long unit = granule.pageSize() << maxOrder;
        long size = AddressSpace.alignUp(memoryBytes, unit);
        if (size <= 0 || size > (1L << 46)) {
            throw new IllegalArgumentException("memoryBytes: 0x" + Long.toHexString(memoryBytes) + " is too large");
        }
        this.memory = new HostMemory(MEMORY_BASE, size, granule, maxOrder);
        long tables = AddressSpace.alignUp(size / 64 + TABLE_SLACK, granule.pageSize());
        this.tableMemory = new PhysicalMemory(TABLE_MEMORY_BASE, tables, granule, checking);
    }

    /** The order of the largest block at levels 1..2 of {@code granule}: 18 (4K), 11 (16K), 13 (64K). */
    static int maxOrder(Granule granule) {
        int level = Math.max(1, granule.minBlockLevel());
        return granule.levelShift(level) - granule.shift();
    }

    public Granule granule() { return granule; }
    public int vaBits() { return vaBits; }
    /** The geometry of every process table of this host. */
    public Geometry geometry() { return geometry; }
    public HostMemory memory() { return memory; }
    public PhysicalMemory tableMemory() { return tableMemory; }
    public boolean checking() { return checking; }
    /** Swap slots in use. */
    public long swapSlotsInUse() { return swap.slotsInUse(); }
    /** Entries naming swap slot {@code slot} (0 if the slot is free). */
    public int swapCount(long slot) { return swap.count(slot); }

    SwapSpace swap() { return swap; }

    public AddressSpace newAddressSpace() {
        AddressSpace mm = new AddressSpace(this);
        spaces.add(mm);
        return mm;
    }

    /** Live (not closed) address spaces. */
    public List<AddressSpace> addressSpaces() { return List.copyOf(spaces); }

    void remove(AddressSpace mm) {
        spaces.remove(mm);
    }

    /**
     * Quiescent check across every live address space: each one's own invariants, every folio's
     * map count equals the entries mapping it (present and device-exclusive, in every space), its
     * reference count is at least that plus one for a shared-memory object holding it (more only
     * while GUP references are held; exactly that with {@code noExtraRefs}), swap slot counts
     * equal the entries naming them, and with {@code noExtraRefs} no page is leaked: the pages in
     * use are exactly those of the folios found.
     *
     * @throws InvariantViolation on the first violation
     */
    public void checkInvariants(boolean noExtraRefs) {
        Map<Folio, int[]> entries = new IdentityHashMap<>();
        Map<Long, int[]> slots = new java.util.HashMap<>();
        Map<SharedMemory, Boolean> shmems = new IdentityHashMap<>();
        int shift = granule.shift();
        for (AddressSpace mm : spaces) {
            mm.checkInvariants();
            for (Vma v : mm.vmas()) if (v.sharedMemory() != null) shmems.put(v.sharedMemory(), Boolean.TRUE);
            mm.table.forEachEntry(0, geometry.iaLimit(), (base, level, pte) -> {
                if (Pte.isValid(pte)) {
                    entries.computeIfAbsent(memory.folioOf(geometry.outputAddress(pte)), f -> new int[2])[0]++;
                } else if (HostPte.isDeviceExclusive(pte)) {
                    entries.computeIfAbsent(memory.folioOf(HostPte.swapOffset(pte) << shift), f -> new int[2])[0]++;
                } else if (HostPte.isSwap(pte)) {
                    slots.computeIfAbsent(HostPte.swapOffset(pte), s -> new int[1])[0]++;
                }
            });
        }
        for (SharedMemory s : shmems.keySet()) {
            for (Folio f : s.folios()) entries.computeIfAbsent(f, x -> new int[2])[1]++;
        }
        long pages = 0;
        for (Map.Entry<Folio, int[]> e : entries.entrySet()) {
            Folio f = e.getKey();
            int maps = e.getValue()[0];
            int held = maps + e.getValue()[1];
            pages += f.pages();
            if (f.isFree()) throw new InvariantViolation(f + " is free but still mapped or held");
            if (f.mapcount() != maps) throw new InvariantViolation(f + " has map count " + f.mapcount() + " but " + maps + " entries map it");
            if (noExtraRefs ? f.refcount() != held : f.refcount() < held) {
                throw new InvariantViolation(f + " has " + f.refcount() + " references for " + maps + " entries"
                        + (held > maps ? " and its shared memory" : "") + (noExtraRefs ? " (no other references expected)" : ""));
            }
        }
        long[] used = swap.snapshot();
        for (int i = 0; i < used.length; i += 2) {
            int[] n = slots.remove(used[i]);
            int named = n == null ? 0 : n[0];
            if (named != used[i + 1]) {
                throw new InvariantViolation("swap slot " + used[i] + " has count " + used[i + 1] + " but " + named + " entries name it");
            }
        }
        if (!slots.isEmpty()) throw new InvariantViolation("entries name free swap slots " + slots.keySet());
        if (noExtraRefs && memory.pagesInUse() != pages) {
            throw new InvariantViolation(memory.pagesInUse() + " pages are in use but the folios found hold " + pages + " (leaked pages)");
        }
    }

    @Override
    public String toString() {
        return "host (" + granule.label() + ", " + memory + ", " + spaces.size() + " address spaces, " + swap.slotsInUse() + " swap slots)";
    }
}
