package dev.ptlab.core.hw;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.FrameAccessException;
import dev.ptlab.core.mem.Frames;
import dev.ptlab.core.mem.PhysicalMemory;
import java.util.Objects;

/**
 * One CPU's MMU for one translation regime: it translates addresses through a stage-2 or hyp
 * table the way the architecture does, with a TLB in front.
 *
 * <p>The walk reads descriptors with acquire loads (pairing with the tables' store-release
 * publication), never takes a lock and never allocates. Checks in architectural order at each
 * level: an invalid descriptor (or a block where the level allows none, or a reserved level-3
 * encoding) is a translation fault at that level; an output address beyond the PA size is an
 * address-size fault; then, at the leaf, AF = 0 is an access-flag fault (or, with hardware AF
 * update, the MMU sets AF by compare-and-swap); then permissions. An input address at or beyond
 * the table's input size is a level-0 translation fault.
 *
 * <p>The physical-address size (VTCR_EL2.PS / TCR_EL2.PS) defaults to the output format's width;
 * a smaller one makes every table or leaf output address at or above {@code 2^paBits} an
 * address-size fault at the level of the descriptor holding it, and a root (VTTBR/TTBR base)
 * address at or above it an address-size fault at level 0 before any descriptor is read (the
 * pseudocode's {@code !IsZero(baseregister<47:outputsize>)}, which QEMU's walker reports at level
 * 0 too). Those are the addresses this MMU's memory holds: to check them where hardware would
 * see them, walk the exported layout ({@link #overImage}).
 *
 * <p>Stage-2 walks use the TLB's walk cache ({@link Tlb#walkLookup}): a walk starts below the root
 * at the deepest cached table descriptor for the address, and caches every table descriptor it
 * reads. In checking mode a walk that starts from a cached descriptor whose table frame has been
 * freed or reused since it was cached throws {@link FrameAccessException}: the table was removed
 * without a TLBI reaching the walk cache.
 *
 * <p>Not thread-safe: one Mmu per CPU, as on hardware. The table may change concurrently.
 */
public final class Mmu {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    private final Geometry geometry;
    private final PhysicalMemory memory;
    private final Tlb tlb;
    private final boolean stage2;
    private final boolean fwb;
    private final boolean hardwareAf;
    private final long paLimit;
    // Geometry facts the walk needs at every level, read once here.
    private final long iaLimit;
    private final int startLevel;
    private final long pageSize;
    private final int indexMask;
    /** levelShift(level) at index {@code level + 1}. */
    private final int[] shifts;
    /** Bit {@code level + 1} set if a leaf may sit at {@code level}. */
    private final int leafLevels;
    private final long afBit;
    private long rootPa;
    private int vmid;

    private long lastPte;
    private int lastLevel;
    private boolean lastTlbHit;
    private long walks;
    private long descriptorReads;
    private long hardwareAfUpdates;
    private final boolean checking;
    /** Stage-2 walks use the TLB's walk cache (hyp walks do not: stage-2 only for now). */
    private final boolean walkCache;
    private final long[] faults = new long[FaultType.values().length];

    /**
     * @param rootPa the table's root (VTTBR/TTBR base)
     * @param vmid the VMID tag for TLB entries (0 for hyp)
     * @param fwb whether HCR_EL2.FWB is set (changes how stage-2 MemAttr decodes)
     * @param hardwareAf whether VTCR/TCR.HA is set: AF = 0 is set by the MMU instead of faulting
     */
    public Mmu(Geometry geometry, PhysicalMemory memory, Tlb tlb, long rootPa, int vmid, boolean fwb, boolean hardwareAf) {
        this(geometry, memory, tlb, rootPa, vmid, fwb, hardwareAf, geometry == null ? 0 : geometry.paBits());
    }

    /**
     * @param paBits the physical-address size VTCR_EL2.PS / TCR_EL2.PS selects: 32, 36, 40, 42,
     *     44 or 48 up to the output format's width, or 52 for a 52-bit format
     */
    public Mmu(Geometry geometry, PhysicalMemory memory, Tlb tlb, long rootPa, int vmid, boolean fwb, boolean hardwareAf,
               int paBits) {
        if (geometry == null) throw new IllegalArgumentException("geometry: null");
        dev.ptlab.core.arch.Registers.psField(paBits); // one of the PS encodings, or an argument error naming pa-bits
        if (paBits > geometry.paBits()) {
            throw dev.ptlab.core.PageTableException.invalidArgument("pa-bits", (Object) paBits, "exceeds the "
                    + geometry.paBits() + "-bit output format " + geometry.oaFormat());
        }
        if (memory == null) throw new IllegalArgumentException("memory: null");
        if (tlb == null) throw new IllegalArgumentException("tlb: null");
        // A TLB or memory of another granule would index and tag with the wrong level shifts:
        // translations come out wrong without any error.
        if (tlb.granule() != geometry.granule()) {
            throw dev.ptlab.core.PageTableException.invalidArgument("tlb", tlb.name() + " (" + tlb.granule().label() + ")",
                    "has another granule than the table's " + geometry.granule().label());
        }
        if (memory.granule() != geometry.granule()) {
            throw dev.ptlab.core.PageTableException.invalidArgument("memory", memory.granule().label() + " frames",
                    "has another granule than the table's " + geometry.granule().label());
        }
        if (vmid < 0 || vmid > 0xFFFF) {
            throw dev.ptlab.core.PageTableException.invalidArgument("vmid", (Object) vmid, "is outside 0..65535");
        }
        this.geometry = geometry;
        this.memory = memory;
        this.tlb = tlb;
        this.stage2 = geometry.stage() == Stage.STAGE2;
        this.fwb = fwb;
        this.hardwareAf = hardwareAf;
        this.paLimit = 1L << paBits;
        this.iaLimit = geometry.iaLimit();
        this.startLevel = geometry.startLevel();
        Granule g = geometry.granule();
        this.pageSize = g.pageSize();
        this.indexMask = g.entriesPerTable() - 1;
        this.shifts = new int[Granule.LAST_LEVEL - Granule.FIRST_LEVEL + 1];
        int leaves = 0;
        for (int level = Granule.FIRST_LEVEL; level <= Granule.LAST_LEVEL; level++) {
            shifts[level + 1] = g.levelShift(level);
            if (geometry.hardwareLeafAllowed(level)) leaves |= 1 << (level + 1);
        }
        this.leafLevels = leaves;
        this.afBit = stage2 ? Stage2Descriptor.AF : HypDescriptor.AF;
        this.rootPa = rootPa;
        this.vmid = vmid;
        this.checking = memory.checking();
        this.walkCache = stage2 && tlb.walkEntries() > 0;
        if (checking) tlb.setScanConflicts(true);
    }

    /**
     * An MMU walking {@code image} where hardware would: its tables at the image's addresses (a
     * private copy in fresh memory), the image's VMID, FWB choice and physical-address size. Root,
     * table and leaf addresses are then checked against {@code 2^paBits} exactly as hardware
     * walking the exported image checks them.
     */
    public static Mmu overImage(dev.ptlab.core.image.TableImage image, Tlb tlb) {
        if (image == null) throw dev.ptlab.core.PageTableException.invalidArgument("image", null, "is null");
        Geometry g = image.geometry();
        PhysicalMemory mem = new PhysicalMemory(image.base(), image.size(), g.granule(), false);
        int entries = g.granule().entriesPerTable();
        for (int f = 0; f < image.frames(); f++) {
            long pa = mem.allocate(); // a fresh memory hands out its frames in address order
            long[] frame = FRAMES.frame(mem, pa);
            for (int i = 0; i < entries; i++) frame[i] = image.read(pa + (long) i * Granule.BYTES_PER_ENTRY);
        }
        return new Mmu(g, mem, tlb, image.rootPa(), image.vmid(), image.fwb(), false, image.paBits());
    }

    public Tlb tlb() { return tlb; }
    public Geometry geometry() { return geometry; }
    public long walks() { return walks; }
    /** Descriptors read from memory by this MMU's walks (TLB and walk-cache hits read none). */
    public long descriptorReads() { return descriptorReads; }
    /** The table root this MMU walks from (VTTBR/TTBR base). */
    public long rootPa() { return rootPa; }
    public PhysicalMemory memory() { return memory; }
    /** The physical-address size (PS) output addresses are checked against. */
    public int paBits() { return Long.numberOfTrailingZeros(paLimit); }
    /** The VMID this MMU tags its entries with. */
    public int vmid() { return vmid; }
    /** Whether HCR_EL2.FWB is set for this MMU's stage-2 MemAttr decoding. */
    public boolean fwb() { return fwb; }
    /** Access flags this MMU set by hardware update (with {@code hardwareAf}). */
    public long hardwareAfUpdates() { return hardwareAfUpdates; }
    public long faults(FaultType type) { return faults[type.ordinal()]; }

    /** Points the MMU at another table (a VTTBR/TTBR write). Does not flush the TLB. */
    public void load(long rootPa, int vmid) {
        this.rootPa = rootPa;
        this.vmid = vmid;
    }

    /** Leaf descriptor behind the last successful translation or permission/AF fault. */
    public long lastPte() { return lastPte; }
    /** Level of that leaf, or of the fault. */
    public int lastLevel() { return lastLevel; }
    public boolean lastTlbHit() { return lastTlbHit; }

    /**
     * Translates {@code addr} for {@code access}. Allocation-free.
     *
     * @return the output PA (non-negative), or a negative fault code decoded by
     *     {@link Translation#faultType} and {@link Translation#faultLevel}
     */
    public long translate(long addr, Access access) {
        return translate(addr, access, true);
    }

    /**
     * {@link #translate}; {@code markWalk} false when the caller ({@link NestedMmu}) already
     * marks a walk in flight on this TLB (its stage-2 lookups for stage-1 descriptors run inside
     * its own walk).
     */
    long translate(long addr, Access access, boolean markWalk) {
        if (addr < 0 || addr >= iaLimit) {
            return fault(FaultType.TRANSLATION, 0);
        }
        int hitLevel = tlb.lookup(vmid, addr);
        if (hitLevel >= 0) {
            long pte = tlb.cachedPte();
            lastTlbHit = true;
            lastPte = pte;
            lastLevel = hitLevel;
            if (!permitted(pte, access)) return fault(FaultType.PERMISSION, hitLevel);
            long span = 1L << shifts[hitLevel + 1];
            return geometry.outputAddress(pte) + (addr & (span - 1));
        }
        lastTlbHit = false;
        if (!markWalk) {
            walks++;
            for (;;) {
                long r = walkOnce(addr, access);
                if (r != RETRY) return r;
            }
        }
        return walk(addr, access);
    }

    private long walk(long addr, Access access) {
        walks++;
        Tlb t = tlb;
        t.beginWalk();
        try {
            for (;;) {
                long r = walkOnce(addr, access);
                if (r != RETRY) return r;
            }
        } finally {
            t.endWalk();
        }
    }

    /** {@link #walkOnce}'s answer when a hardware AF update lost its race: walk again from the root. */
    private static final long RETRY = Long.MIN_VALUE;

    private long walkOnce(long addr, Access access) {
        long generation = tlb.generation();
        int level = startLevel;
        if (rootPa >= paLimit) return fault(FaultType.ADDRESS_SIZE, 0);
        long table = rootPa + (long) geometry.rootPageIndex(addr) * pageSize;
        Tlb t = tlb;
        int hit = -2;
        if (walkCache) {
            hit = t.walkLookup(vmid, addr, startLevel);
            if (hit >= 0) {
                // Start below the root, at the table the cached descriptor names (RRVJDB).
                table = geometry.outputAddress(t.cachedWalkPte());
                level = hit + 1;
                if (checking) checkCachedTable(table, t.cachedWalkGeneration(), addr, hit, t.cachedWalkPte());
            }
        }
        for (;;) {
            // Checking mode: the frame must not be freed or reused while this walk reads it.
            int gen = checking ? FRAMES.generation(memory, table) : 0;
            long[] frame = FRAMES.frame(memory, table);
            int idx = (int) ((addr >>> shifts[level + 1]) & indexMask);
            long pte = Frames.getAcquire(frame, idx);
            descriptorReads++;
            if (checking) checkFrame(table, gen, addr, level);
            lastPte = pte;
            lastLevel = level;
            if (!Pte.isValid(pte)) return fault(FaultType.TRANSLATION, level);
            if (Pte.isTable(pte, level)) {
                long next = geometry.outputAddress(pte);
                if (next >= paLimit) return fault(FaultType.ADDRESS_SIZE, level);
                if (walkCache && t.fillWalk(vmid, addr, level, pte, checking ? FRAMES.generation(memory, next) : 0, generation)
                        && hit >= 0 && !t.walkEntryStillHeld(vmid, addr, hit)) {
                    // Found through a cached descriptor an invalidation has since dropped: what
                    // lies below it may be gone. Undo and walk again from the root (Tlb.invalidate).
                    t.unfillWalk(vmid, addr, level);
                    return RETRY;
                }
                table = next;
                level++;
                continue;
            }
            if (level == 3 ? (pte & Pte.TYPE) == 0 : (leafLevels & (1 << (level + 1))) == 0) {
                // Reserved page encoding, or a block where this granule allows none.
                return fault(FaultType.TRANSLATION, level);
            }
            long oa = geometry.outputAddress(pte);
            if (oa >= paLimit) return fault(FaultType.ADDRESS_SIZE, level);
            long af = afBit;
            if ((pte & af) == 0) {
                if (!hardwareAf) return fault(FaultType.ACCESS_FLAG, level);
                // Hardware AF update: a compare-and-swap, racing software updates (mkyoung, mkold,
                // BBM). Losing means the entry changed: start over, as hardware re-walks. Each
                // loss is someone else's progress, so this terminates.
                long witness = Frames.compareAndExchange(frame, idx, pte, pte | af);
                if (witness != pte) return RETRY;
                pte |= af;
                lastPte = pte;
                hardwareAfUpdates++;
            }
            if (t.fill(vmid, addr, level, pte, generation) && hit >= 0 && !t.walkEntryStillHeld(vmid, addr, hit)) {
                t.unfill(vmid, addr, level); // as for the walk-cache fill above
                return RETRY;
            }
            if (!permitted(pte, access)) return fault(FaultType.PERMISSION, level);
            long span = 1L << shifts[level + 1];
            return oa + (addr & (span - 1));
        }
    }

    /**
     * Checking mode, after each descriptor read: the frame read from is still the live frame the
     * walk reached. A broadcast TLBI waits for in-flight walks before a table may be freed, so this
     * fails only when a table was freed without one (or a TLBI was skipped).
     */
    private void checkFrame(long table, int gen, long addr, int level) {
        if (!memory.isLive(table) || FRAMES.generation(memory, table) != gen) {
            throw new FrameAccessException("MMU walk for 0x" + Long.toHexString(addr) + " read level-" + level + " table frame 0x"
                    + Long.toHexString(table) + " while it was freed" + (memory.isLive(table) ? " and reused" : "")
                    + ": a table was freed without a completed TLBI");
        }
    }

    /**
     * Checking mode, before a walk continues from a walk-cache entry: the table frame the cached
     * descriptor points to is still the one it pointed to when cached. Otherwise the table was
     * freed (and maybe reused) while this CPU still cached a descriptor naming it: a use after
     * free by the walker, which only a TLBI reaching the walk cache would have prevented.
     */
    private void checkCachedTable(long table, int cachedGen, long addr, int level, long pte) {
        boolean live = memory.contains(table) && memory.isLive(table);
        if (live && FRAMES.generation(memory, table) == cachedGen) return;
        throw new FrameAccessException(tlb.name() + ": MMU walk for 0x" + Long.toHexString(addr) + " (vmid " + vmid
                + ") used its walk-cache entry for the level-" + level + " table descriptor 0x" + Long.toHexString(pte)
                + ", whose level-" + (level + 1) + " table frame 0x" + Long.toHexString(table) + " was freed"
                + (live ? " and reused" : "") + " after it was cached: the table was removed without a completed TLBI reaching"
                + " the walk cache (" + TlbSystem.walkInvalidations(addr, level) + ")");
    }

    private boolean permitted(long pte, Access access) {
        // An if-chain on the constants: a switch on an enum goes through a lookup table per call.
        if (stage2) {
            if (access == Access.READ) return Stage2Descriptor.readable(pte);
            if (access == Access.WRITE) return Stage2Descriptor.writable(pte);
            Objects.requireNonNull(access, "access"); // a null access fails as the switch did
            return Stage2Descriptor.privExecutable(pte);
        }
        if (access == Access.READ) return true;
        if (access == Access.WRITE) return HypDescriptor.writable(pte);
        Objects.requireNonNull(access, "access");
        return HypDescriptor.executable(pte);
    }

    private long fault(FaultType type, int level) {
        faults[type.ordinal()]++;
        lastLevel = level;
        return Translation.encodeFault(type, level);
    }

    /** Readable form of {@link #translate}: allocates a record. */
    public Translation translateDetailed(long addr, Access access) {
        long r = translate(addr, access);
        if (Translation.isFault(r)) {
            FaultType t = Translation.faultType(r);
            int level = Translation.faultLevel(r);
            return new Translation(addr, access, -1, t, level, lastPte, null, false, false, false, lastTlbHit);
        }
        long pte = lastPte;
        boolean w, x;
        dev.ptlab.core.arch.MemAttr attr;
        boolean rd;
        if (stage2) {
            rd = Stage2Descriptor.readable(pte);
            w = Stage2Descriptor.writable(pte);
            x = Stage2Descriptor.privExecutable(pte);
            attr = Stage2Descriptor.memAttr(pte, fwb);
        } else {
            rd = true;
            w = HypDescriptor.writable(pte);
            x = HypDescriptor.executable(pte);
            attr = HypDescriptor.memAttr(pte);
        }
        return new Translation(addr, access, r, null, lastLevel, pte, attr, rd, w, x, lastTlbHit);
    }
}
