package dev.ptlab.core.hw;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.MemAttr;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage1Descriptor;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.FrameAccessException;
import dev.ptlab.core.mem.Frames;
import dev.ptlab.core.mem.PhysicalMemory;
import java.util.Objects;

/**
 * One CPU's MMU for a guest's EL1&amp;0 regime with stage 2 enabled: the two-stage translation
 * of {@code AArch64.FullTranslate} (Arm ARM D8, reference tlb-and-two-stage.md §F).
 *
 * <p><b>Registers.</b> {@link #loadEl1} takes SCTLR_EL1 (M), TCR_EL1 (T0SZ, EPD0, TG0, T1SZ,
 * A1, EPD1, TG1, IPS, AS), TTBR0_EL1, TTBR1_EL1 (ASID, BADDR) and MAIR_EL1. VA[55] selects the
 * TTBR; a VA whose bits above {@code 64 - TxSZ} are not all equal to VA[55], or a half with EPDx
 * set, is a stage-1 level-0 Translation fault without a walk. The start level is
 * {@code AArch64.S1StartLevel}'s {@code 3 - (ia - 1 - pgshift) / (pgshift - 3)}. Both stages and
 * the TLB must use one granule (the architecture allows TG0 ≠ VTCR_EL2.TG0; ptlab does not).
 *
 * <p><b>The nested walk.</b> The TTBR base and every next-table address are IPAs; before each
 * stage-1 descriptor read its IPA is translated by stage 2 (the stage-2 {@link Mmu}, access
 * type TTW, which needs stage-2 read permission), so a 4-level stage 1 over a 4-level stage 2
 * makes 4 × (4 + 1) + 4 = 24 descriptor reads with every cache cold. Stage-1 descriptors are read
 * from {@code guestTables}, the memory holding the guest's page tables (a stage-2 output outside
 * it would be an external abort on the walk, which ptlab does not model: it throws). The stage-1
 * output IPA is then translated by stage 2 for the access itself.
 *
 * <p><b>Faults</b> (encoded by {@link Translation}; architectural priority): stage-1
 * Translation / Address size (IPA ≥ 2^IPS) / Access flag / Permission with the stage-1 level;
 * a stage-2 fault on a descriptor's IPA is a stage-2 fault with S1PTW ({@code s2fs1walk}) and
 * that IPA ({@link #lastFaultIpa()}; HPFAR_EL2); a stage-2 fault on the output IPA is a stage-2
 * fault without S1PTW. A stage-1 permission fault wins over stage 2 (D8.4.3): stage 2 only
 * restricts. Stage 1 has no hardware AF update here (TCR_EL1.HA = 0, AF = 0 faults).
 *
 * <p><b>TLB.</b> A walk caches the stage-1 leaf (VA→IPA, effective permissions folded in from
 * APTable/PXNTable/UXNTable) and the combined VA→PA entry, both tagged with the VMID and, if nG,
 * the ASID, and each guest table descriptor it reads in the stage-1 walk cache (ASID-tagged; a
 * walk starts below the TTBR at the deepest one, translating its next-table IPA through stage 2); the stage-2 Mmu caches IPA→PA leaves for descriptor and output IPAs (D8.16 IYWBQX)
 * and its walk cache. A lookup tries the combined entry, then the stage-1 entry (then only the
 * output IPA goes through stage 2). IPAS2E1IS leaves combined entries alone; only VMALLE1IS,
 * VAE1IS or VMALLS12E1IS remove them.
 *
 * <p>Not thread-safe (one per CPU); allocation-free; no lock.
 */
public final class NestedMmu {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    /** TCR_EL1 fields. */
    public static final int T0SZ_SHIFT = 0, EPD0_SHIFT = 7, TG0_SHIFT = 14, T1SZ_SHIFT = 16, A1_SHIFT = 22, EPD1_SHIFT = 23,
            TG1_SHIFT = 30, IPS_SHIFT = 32, AS_SHIFT = 36;
    private static final int[] IPS_BITS = {32, 36, 40, 42, 44, 48, 52};

    private final Mmu s2;
    private final Tlb tlb;
    private final PhysicalMemory guestTables;
    private final Granule granule;
    private final int pageShift;
    /** levelShift(level) at index {@code level + 1}, read once (the walk needs one per level). */
    private final int[] shifts = new int[Granule.LAST_LEVEL - Granule.FIRST_LEVEL + 1];
    private final int indexMask;
    private final long oaMask;
    private final int vmid;
    private final boolean fwb;
    /** Stage-1 walks use the TLB's stage-1 walk cache (when it has one). */
    private final boolean walkCache;

    // Decoded EL1 registers.
    private boolean mmuOn;
    private long mair;
    private int t0sz, t1sz;
    private boolean epd0, epd1;
    private long root0, root1;
    private int asid;
    private long ipaLimit;
    private boolean el0;
    /** Inside {@link #walk}: this CPU's walk is marked in flight, stage-2 lookups must not mark again. */
    private boolean inWalk;

    private long sctlrEl1, tcrEl1, ttbr0El1, ttbr1El1;

    private long lastIpa;
    private long lastFaultIpa;
    private long lastS1Pte;
    private long lastS2Pte;
    private int lastLevel;
    private boolean lastTlbHit;
    private long walks;
    private long stage1Reads;
    private final long stage2ReadsBase;
    private final long[] stage1Faults = new long[FaultType.values().length];
    private final long[] stage2Faults = new long[FaultType.values().length];
    private long s1ptwFaults;

    /**
     * @param stage2 the VM's stage-2 MMU on this CPU (its TLB, VMID and FWB are this regime's)
     * @param guestTables the memory the guest's stage-1 tables live in
     */
    public NestedMmu(Mmu stage2, PhysicalMemory guestTables) {
        if (stage2 == null) throw PageTableException.invalidArgument("stage2", null, "is null");
        if (guestTables == null) throw PageTableException.invalidArgument("guestTables", null, "is null");
        if (stage2.geometry().stage() != dev.ptlab.core.arch.Stage.STAGE2) {
            throw PageTableException.invalidArgument("stage2", stage2.geometry(), "is not a stage-2 MMU");
        }
        if (guestTables.granule() != stage2.geometry().granule()) {
            throw PageTableException.invalidArgument("guestTables", guestTables.granule().label() + " frames",
                    "has another granule than stage 2's " + stage2.geometry().granule().label());
        }
        this.s2 = stage2;
        this.tlb = stage2.tlb();
        this.guestTables = guestTables;
        this.granule = stage2.geometry().granule();
        this.pageShift = granule.shift();
        for (int level = Granule.FIRST_LEVEL; level <= Granule.LAST_LEVEL; level++) shifts[level + 1] = granule.levelShift(level);
        this.indexMask = granule.entriesPerTable() - 1;
        this.oaMask = ((1L << 48) - 1) & -granule.pageSize();
        this.vmid = stage2.vmid();
        this.fwb = stage2.fwb();
        this.walkCache = tlb.walkEntries() > 0;
        this.stage2ReadsBase = stage2.descriptorReads();
    }

    /**
     * Loads the EL1 translation registers (as the guest's writes plus a context synchronization).
     * Does not flush the TLB: entries are tagged, and stale ones are the guest's problem, as on
     * hardware.
     *
     * @throws PageTableException naming {@code tcr} if TG0/TG1 select another granule than stage
     *     2's, TxSZ is outside 16..39 (no LPA2), or IPS is reserved
     */
    public void loadEl1(long sctlr, long tcr, long ttbr0, long ttbr1, long mair) {
        int tg0 = (int) (tcr >>> TG0_SHIFT) & 3;
        int tg1 = (int) (tcr >>> TG1_SHIFT) & 3;
        int t0 = (int) (tcr >>> T0SZ_SHIFT) & 0x3F;
        int t1 = (int) (tcr >>> T1SZ_SHIFT) & 0x3F;
        boolean e0 = ((tcr >>> EPD0_SHIFT) & 1) != 0;
        boolean e1 = ((tcr >>> EPD1_SHIFT) & 1) != 0;
        if (!e0 && tg0 != granule.tg0()) throw badTcr(tcr, "TG0 " + tg0 + " is not the " + granule.label() + " granule stage 2 uses");
        if (!e1 && tg1 != granule.tg1()) throw badTcr(tcr, "TG1 " + tg1 + " is not the " + granule.label() + " granule stage 2 uses");
        if (!e0 && (t0 < 16 || t0 > 39)) throw badTcr(tcr, "T0SZ " + t0 + " is outside 16..39");
        if (!e1 && (t1 < 16 || t1 > 39)) throw badTcr(tcr, "T1SZ " + t1 + " is outside 16..39");
        int ips = (int) (tcr >>> IPS_SHIFT) & 7;
        if (ips >= IPS_BITS.length || (IPS_BITS[ips] == 52)) throw badTcr(tcr, "IPS " + ips + " is reserved or needs 52-bit descriptors");
        this.sctlrEl1 = sctlr;
        this.tcrEl1 = tcr;
        this.ttbr0El1 = ttbr0;
        this.ttbr1El1 = ttbr1;
        this.mmuOn = (sctlr & 1) != 0;
        this.t0sz = t0;
        this.t1sz = t1;
        this.epd0 = e0;
        this.epd1 = e1;
        this.ipaLimit = 1L << IPS_BITS[ips];
        this.root0 = ttbr0 & oaMask;
        this.root1 = ttbr1 & oaMask;
        long asidTtbr = ((tcr >>> A1_SHIFT) & 1) != 0 ? ttbr1 : ttbr0;
        this.asid = (int) (asidTtbr >>> 48) & (((tcr >>> AS_SHIFT) & 1) != 0 ? 0xFFFF : 0xFF);
        this.mair = mair;
    }

    private static PageTableException badTcr(long tcr, String why) {
        return PageTableException.invalidArgument("tcr", "0x" + Long.toHexString(tcr), why);
    }

    /**
     * A reference MMU for checks: the same stage-2 table and EL1 registers, with its own TLB
     * without walk cache, so every translation reads the tables as they are now. Allocates.
     */
    public NestedMmu reference() {
        Tlb fresh = new Tlb(tlb.name() + "-reference", granule, 1, 1, 0);
        Mmu s2ref = new Mmu(s2.geometry(), s2.memory(), fresh, s2.rootPa(), vmid, fwb, false, s2.paBits());
        NestedMmu ref = new NestedMmu(s2ref, guestTables);
        ref.loadEl1(sctlrEl1, tcrEl1, ttbr0El1, ttbr1El1, mair);
        return ref;
    }

    /** Whether a combined entry with these leaves grants {@code access} at EL1. */
    public static boolean combinedGrants(long s1pte, long s2pte, Access access) {
        if (access == Access.READ) return Stage2Descriptor.readable(s2pte);
        if (access == Access.WRITE) return Stage1Descriptor.writable(s1pte, false) && Stage2Descriptor.writable(s2pte);
        return Stage1Descriptor.executable(s1pte, false) && Stage2Descriptor.privExecutable(s2pte);
    }

    /** Translations from now on are EL0 accesses ({@code true}) or EL1 ones. */
    public void setEl0(boolean el0) { this.el0 = el0; }

    public Mmu stage2() { return s2; }
    public Tlb tlb() { return tlb; }
    public int vmid() { return vmid; }
    /** The current ASID (from TTBR0 or TTBR1 as TCR_EL1.A1 selects). */
    public int asid() { return asid; }
    public long mair() { return mair; }
    /** Two-stage walks (misses in both the combined and the stage-1 entries). */
    public long walks() { return walks; }
    /** Stage-1 descriptors read from guest memory. */
    public long stage1Reads() { return stage1Reads; }
    /** Descriptor reads of every kind the translations made: stage 1 plus stage 2 (for descriptors and outputs). */
    public long walkReads() { return stage1Reads + s2.descriptorReads() - stage2ReadsBase; }
    public long stage1Faults(FaultType t) { return stage1Faults[t.ordinal()]; }
    public long stage2Faults(FaultType t) { return stage2Faults[t.ordinal()]; }
    /** Stage-2 faults taken on a stage-1 table walk. */
    public long s1ptwFaults() { return s1ptwFaults; }
    /** IPA of the last translation (the stage-1 output). */
    public long lastIpa() { return lastIpa; }
    /** IPA of the last stage-2 fault (HPFAR_EL2): a descriptor's IPA for S1PTW, else the output IPA. */
    public long lastFaultIpa() { return lastFaultIpa; }
    /** Effective stage-1 leaf of the last translation (or of a stage-1 permission/AF fault). */
    public long lastStage1Pte() { return lastS1Pte; }
    public long lastStage2Pte() { return lastS2Pte; }
    public int lastLevel() { return lastLevel; }
    public boolean lastTlbHit() { return lastTlbHit; }

    /**
     * Translates {@code va} for {@code access} at the current EL. Allocation-free.
     *
     * @return the PA, or a negative fault code: {@link Translation#faultType},
     *     {@link Translation#faultLevel}, {@link Translation#isStage2Fault}, {@link Translation#isS1ptw}
     */
    public long translate(long va, Access access) {
        Objects.requireNonNull(access, "access");
        lastTlbHit = false;
        if (!mmuOn) {
            // Stage 1 off: VA = IPA, beyond the IPA size an address-size fault at level 0.
            if (va < 0 || va >= ipaLimit) return s1Fault(FaultType.ADDRESS_SIZE, 0);
            lastIpa = va;
            return outputStage2(va, access);
        }
        boolean upper = (va >>> 55 & 1) != 0;
        int tsz = upper ? t1sz : t0sz;
        if (upper ? epd1 : epd0) return s1Fault(FaultType.TRANSLATION, 0);
        long topBits = va >> (64 - tsz);
        if (topBits != (upper ? -1L : 0L)) return s1Fault(FaultType.TRANSLATION, 0);
        int hit = tlb.lookupCombined(vmid, asid, va);
        if (hit >= 0) {
            lastTlbHit = true;
            long s1pte = tlb.cachedPte();
            long s2pte = tlb.cachedStage2Pte();
            lastS1Pte = s1pte;
            lastS2Pte = s2pte;
            lastLevel = hit;
            long span = 1L << shifts[hit + 1];
            if (!stage1Permits(s1pte, access)) return s1Fault(FaultType.PERMISSION, hit);
            if (!stage2Permits(s2pte, access)) {
                lastFaultIpa = outputIpa(s1pte, va, hit);
                return s2Fault(FaultType.PERMISSION, hit, false);
            }
            return tlb.cachedPa() + (va & (span - 1));
        }
        hit = tlb.lookupStage1(vmid, asid, va);
        if (hit >= 0) {
            long s1pte = tlb.cachedPte();
            lastS1Pte = s1pte;
            lastLevel = hit;
            if (!stage1Permits(s1pte, access)) return s1Fault(FaultType.PERMISSION, hit);
            return finish(va, access, hit, s1pte, tlb.generation());
        }
        walks++;
        tlb.beginWalk();
        inWalk = true;
        try {
            return walk(va, access, upper ? root1 : root0, 64 - tsz);
        } finally {
            inWalk = false;
            tlb.endWalk();
        }
    }

    private long walk(long va, Access access, long root, int iaBits) {
        long generation = tlb.generation();
        int level = 3 - (iaBits - 1 - pageShift) / (pageShift - 3);
        if (root >= ipaLimit) return s1Fault(FaultType.ADDRESS_SIZE, level);
        long addr = va & ((1L << iaBits) - 1);
        long table = root;
        long tableBits = 0;
        Tlb t = tlb;
        if (walkCache) {
            int hit = t.stage1WalkLookup(vmid, asid, va, level);
            if (hit >= 0) {
                // Continue below the cached guest table descriptor: its next table is an IPA,
                // still translated by stage 2 below, so stage-2 changes are seen (RRVJDB, IYWBQX).
                table = t.cachedWalkPte() & oaMask;
                tableBits = t.cachedStage1TableBits();
                level = hit + 1;
            }
        }
        for (;;) {
            int idx = (int) (addr >>> shifts[level + 1]) & indexMask;
            long descIpa = table + ((long) idx << 3);
            long descPa = s2.translate(descIpa, Access.READ, false);
            if (Translation.isFault(descPa)) {
                lastFaultIpa = descIpa;
                return s2Fault(Translation.faultType(descPa), Translation.faultLevel(descPa), true);
            }
            if (!guestTables.contains(descPa)) {
                throw new FrameAccessException("stage 2 maps the level-" + level + " stage-1 table IPA 0x" + Long.toHexString(table)
                        + " to PA 0x" + Long.toHexString(descPa & -granule.pageSize()) + ", outside the guest table memory:"
                        + " an external abort on the walk, which ptlab does not model");
            }
            long[] frame = FRAMES.frame(guestTables, descPa & -granule.pageSize());
            long pte = Frames.getAcquire(frame, (int) ((descPa & (granule.pageSize() - 1)) >>> 3));
            stage1Reads++;
            lastS1Pte = pte;
            lastLevel = level;
            if (!Pte.isValid(pte)) return s1Fault(FaultType.TRANSLATION, level);
            long oa = pte & oaMask;
            if (Pte.isTable(pte, level)) {
                if (oa >= ipaLimit) return s1Fault(FaultType.ADDRESS_SIZE, level);
                tableBits |= pte & Stage1Descriptor.TABLE_CONTROLS;
                if (walkCache) t.fillStage1Walk(vmid, asid, va, level, pte, tableBits, generation);
                table = oa;
                level++;
                continue;
            }
            if (level == 3 ? (pte & Pte.TYPE) == 0 : !granule.leafAllowed(level)) return s1Fault(FaultType.TRANSLATION, level);
            if (oa >= ipaLimit) return s1Fault(FaultType.ADDRESS_SIZE, level);
            if ((pte & Stage1Descriptor.AF) == 0) return s1Fault(FaultType.ACCESS_FLAG, level);
            long eff = Stage1Descriptor.effective(pte, tableBits);
            lastS1Pte = eff;
            tlb.fillStage1(vmid, asid, va, level, eff, generation);
            if (!stage1Permits(eff, access)) return s1Fault(FaultType.PERMISSION, level);
            return finish(va, access, level, eff, generation);
        }
    }

    /** Stage 2 for the output IPA of stage-1 leaf {@code s1pte} at {@code level}, then the combined fill. */
    private long finish(long va, Access access, int level, long s1pte, long generation) {
        long ipa = outputIpa(s1pte, va, level);
        lastIpa = ipa;
        long pa = outputStage2(ipa, access);
        if (Translation.isFault(pa)) return pa;
        // The combined entry spans the smaller leaf: index it at the deeper level.
        int clevel = Math.max(level, s2.lastLevel());
        long span = 1L << shifts[clevel + 1];
        tlb.fillCombined(vmid, asid, va, clevel, s1pte, lastS2Pte, pa & -span, generation);
        lastLevel = clevel;
        return pa;
    }

    private long outputIpa(long s1pte, long va, int level) {
        long span = 1L << shifts[level + 1];
        return (s1pte & oaMask & -span) + (va & (span - 1));
    }

    /** The access's own stage-2 translation: faults are stage-2 faults without S1PTW, at this IPA. */
    private long outputStage2(long ipa, Access access) {
        // Stage 2 has no EL distinction but for execute (XN[1:0] with FEAT_XNX): an EL0 fetch
        // is looked up as a read and checked against the EL0 execute permission here.
        boolean el0Exec = el0 && access == Access.EXEC;
        long pa = s2.translate(ipa, el0Exec ? Access.READ : access, !inWalk);
        lastS2Pte = s2.lastPte();
        if (Translation.isFault(pa)) {
            lastFaultIpa = ipa;
            return s2Fault(Translation.faultType(pa), Translation.faultLevel(pa), false);
        }
        if (el0Exec && !Stage2Descriptor.userExecutable(lastS2Pte)) {
            lastFaultIpa = ipa;
            return s2Fault(FaultType.PERMISSION, s2.lastLevel(), false);
        }
        return pa;
    }

    private boolean stage1Permits(long s1pte, Access access) {
        if (access == Access.READ) return Stage1Descriptor.readable(s1pte, el0);
        if (access == Access.WRITE) return Stage1Descriptor.writable(s1pte, el0);
        return Stage1Descriptor.executable(s1pte, el0);
    }

    private boolean stage2Permits(long s2pte, Access access) {
        if (access == Access.READ) return Stage2Descriptor.readable(s2pte);
        if (access == Access.WRITE) return Stage2Descriptor.writable(s2pte);
        return el0 ? Stage2Descriptor.userExecutable(s2pte) : Stage2Descriptor.privExecutable(s2pte);
    }

    private long s1Fault(FaultType type, int level) {
        stage1Faults[type.ordinal()]++;
        lastLevel = level;
        return Translation.encodeFault(type, level);
    }

    private long s2Fault(FaultType type, int level, boolean s1ptw) {
        stage2Faults[type.ordinal()]++;
        if (s1ptw) s1ptwFaults++;
        lastLevel = level;
        return Translation.encodeStage2Fault(type, level, s1ptw);
    }

    /**
     * Readable form of {@link #translate}: allocates a record. Memory attributes are the
     * combination of stage 1 (MAIR_EL1) and stage 2 ({@link Stage1Descriptor#combine}).
     */
    public NestedTranslation translateDetailed(long va, Access access) {
        long r = translate(va, access);
        if (Translation.isFault(r)) {
            boolean s2f = Translation.isStage2Fault(r);
            return new NestedTranslation(va, access, -1, s2f || !mmuOn ? lastFaultIpa : -1, Translation.faultType(r),
                    Translation.faultLevel(r), s2f ? 2 : 1, Translation.isS1ptw(r), null, lastTlbHit);
        }
        MemAttr s1 = mmuOn ? Stage1Descriptor.memAttr(lastS1Pte, mair) : MemAttr.DEVICE_nGnRnE;
        return new NestedTranslation(va, access, r, lastIpa, null, lastLevel, 0, false,
                Stage1Descriptor.combine(s1, lastS2Pte, fwb), lastTlbHit);
    }

    /**
     * One two-stage translation, readable: on success {@code pa}, the stage-1 output {@code ipa}
     * and the combined attribute; on a fault its type, level, stage (1 or 2), S1PTW and, for a
     * stage-2 fault, the faulting IPA.
     */
    public record NestedTranslation(long va, Access access, long pa, long ipa, FaultType fault, int level, int stage,
                                    boolean s1ptw, MemAttr memAttr, boolean tlbHit) {
        public boolean isFault() { return fault != null; }

        @Override
        public String toString() {
            if (fault != null) {
                return String.format("0x%x %s -> stage-%d fault %s level %d%s", va, access.label(), stage, fault.label(), level,
                        stage == 2 ? String.format(" ipa 0x%x%s", ipa, s1ptw ? " s1ptw" : "") : "");
            }
            return String.format("0x%x %s -> ipa 0x%x -> 0x%x (%s)", va, access.label(), ipa, pa, memAttr);
        }
    }
}
