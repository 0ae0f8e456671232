package dev.ptlab.core.table;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.WalkFlags;

/**
 * A guest's stage-2 table (IPA to PA), with the operations KVM performs on it.
 *
 * <p>This class holds the table's state (VMID, flags, policies and hooks) and its public
 * operations; each operation is one walk with a small visitor in a file of its own:
 * {@link Stage2Map} (map and coalescing), {@link Stage2Annotate} (owner annotations),
 * {@link Stage2Unmap}, {@link Stage2Attrs} (wrprotect, mkyoung, relaxPerms, test-and-clear-young,
 * flush), {@link Stage2Split} (create-unlinked, eager split) and {@link GreedyIdmap}. What they
 * share stays here: the two halves of break-before-make ({@link #breakEntry}, {@link #make}).
 *
 * <p>Valid-to-valid changes of anything but permissions, the access flag or software bits go
 * through break-before-make: the entry is swapped to the LOCKED invalid marker, the TLB is
 * invalidated (by IPA for a leaf, over the table's whole span for a table), the table reference
 * is dropped, cache maintenance for the new target runs, and the new entry is published with a
 * store-release.
 *
 * <p>Reference counts: every table frame's count is 1 + its non-zero entries (LOCKED excepted),
 * so a count of 1 means "empty" and unmap frees tables bottom-up without scanning them.
 *
 * <p>Locking: see the package documentation; every operation takes the MMU lock itself.
 */
public final class Stage2PageTable extends PageTable {
    /** Table flag: FEAT_S2FWB in use (Normal-WB encoded as 0b0110; no D-cache maintenance needed). */
    public static final int FWB = 1;
    /** Table flag: identity map only; map requires ipa == pa. */
    public static final int IDMAP = 1 << 1;
    /**
     * Table flag: the CPU has range TLBI (FEAT_TLBIRANGE). With FWB, unmap then defers per-leaf
     * TLBIs to one range invalidation after the walk, and table breaks invalidate only the
     * table's span instead of the whole VMID.
     */
    public static final int RANGE_TLBI = 1 << 2;
    /**
     * Table flag: the CPU lacks FEAT_XNX (the kernel's {@code ARM64_HAS_XNX} capability is
     * absent), so privileged and unprivileged execute rights cannot differ: a prot with
     * {@code px != ux} is refused with EINVAL, as {@code stage2_set_xn_attr} does (Linux 7.1-rc4).
     * Absent by default: the model's CPU has FEAT_XNX.
     */
    public static final int NO_XNX = 1 << 3;

    private final int vmid;
    private final int tableFlags;
    private final boolean fwb;
    final CacheMaintenance cmo;
    private volatile CoalescePolicy coalescePolicy = CoalescePolicy.INSTALL_FIRST;
    volatile FreeUnlinkedHook freeUnlinkedHook = FreeUnlinkedHook.DEFAULT;
    volatile ForcePteCallback forcePteCallback;

    public Stage2PageTable(Geometry geometry, PhysicalMemory memory, TlbMaintenance tlbi, int vmid, int tableFlags) {
        super(requireStage(geometry, Stage.STAGE2, "stage-2"), memory, tlbi);
        if (vmid < 0 || vmid > 0xFFFF) {
            memory.freeContiguous(rootPa, geometry.rootPages());
            throw PageTableException.invalidArgument("vmid", (Object) vmid, "is outside 0..65535");
        }
        if ((tableFlags & ~(FWB | IDMAP | RANGE_TLBI | NO_XNX)) != 0) {
            memory.freeContiguous(rootPa, geometry.rootPages());
            throw PageTableException.invalidArgument("tableFlags", (Object) tableFlags, "has unknown bits");
        }
        this.vmid = vmid;
        this.tableFlags = tableFlags;
        this.fwb = (tableFlags & FWB) != 0;
        this.cmo = memory.cacheMaintenance();
    }

    public int vmid() { return vmid; }
    public boolean fwb() { return fwb; }
    public int tableFlags() { return tableFlags; }
    /** Whether the CPU has FEAT_XNX (no {@link #NO_XNX} flag): px and ux may then differ. */
    public boolean xnx() { return (tableFlags & NO_XNX) == 0; }

    /**
     * Leaf attributes for {@code prot} under this table's FWB and FEAT_XNX (the kernel's
     * {@code stage2_set_prot_attr}); what map, create-unlinked, split and idmapGreedy install.
     */
    long leafAttributes(Prot prot) {
        return Stage2Descriptor.attributes(prot, fwb, geometry.oaFormat(), xnx());
    }

    public CoalescePolicy coalescePolicy() { return coalescePolicy; }

    /** Chooses the order in which map replaces a table by a block (see {@link CoalescePolicy}). */
    public void setCoalescePolicy(CoalescePolicy policy) {
        if (policy == null) throw new IllegalArgumentException("policy: null");
        this.coalescePolicy = policy;
    }

    /** Where subtrees detached by map's coalescing go; {@link FreeUnlinkedHook#DEFAULT} by default. */
    public void setFreeUnlinkedHook(FreeUnlinkedHook hook) {
        if (hook == null) throw new IllegalArgumentException("hook: null");
        this.freeUnlinkedHook = hook;
    }

    /** Installs (or removes, with null) the callback that can force page-sized leaves for a map. */
    public void setForcePteCallback(ForcePteCallback callback) {
        this.forcePteCallback = callback;
    }

    @Override
    protected boolean counted(long pte) {
        return Pte.isCountedStage2(pte);
    }

    /** VTCR_EL2 value for this table. */
    public long vtcr(boolean hardwareAf) {
        return Registers.vtcr(geometry, hardwareAf);
    }

    /** VTTBR_EL2 value for this table (VMID and root address); IllegalStateException once destroyed. */
    public long vttbr() {
        checkLive();
        return Registers.vttbr(geometry, rootPa, vmid);
    }

    // ------------------------------------------------------------------------------------------
    // map and annotations: Stage2Map, Stage2Annotate

    /**
     * Maps {@code [ipa, ipa + size)} to {@code [pa, pa + size)} with the largest leaves that fit
     * (blocks where both addresses are aligned and the level allows them), replacing existing
     * mappings with break-before-make. An exclusive range walk: raced entries are skipped.
     *
     * @throws PageTableException EINVAL for bad arguments, ERANGE outside the IPA space, ENOMEM
     *     when a table is needed and {@code cache} is empty (the table stays consistent)
     */
    public Status map(long ipa, long size, long pa, Prot prot, MemCache cache) {
        return map(ipa, size, pa, prot, cache, 0);
    }

    /**
     * {@link #map} with walk flags: {@link WalkFlags#SHARED} and {@link WalkFlags#HANDLE_FAULT}
     * (the fault path), {@link WalkFlags#SKIP_CMO}; any other bit is refused (EINVAL, "flags").
     */
    public Status map(long ipa, long size, long pa, Prot prot, MemCache cache, int flags) {
        return Stage2Map.map(this, ipa, size, pa, prot, cache, flags);
    }

    /**
     * Marks every page of the range as owned by {@code ownerId} with an invalid, counted entry
     * (owner 0, the table's owner, is the zero entry). Blocks in the range are replaced by tables
     * with break-before-make; the rest of such a block is lost and refaults.
     */
    public void setOwner(long ipa, long size, MemCache cache, int ownerId) {
        Stage2Annotate.setOwner(this, ipa, size, cache, ownerId);
    }

    /**
     * Writes the invalid entry {@code annotation} into every page of the range (the typed form of
     * {@link #setOwner}). It must be invalid (bit 0 clear) and must not use the LOCKED bit.
     */
    public void annotate(long ipa, long size, MemCache cache, long annotation) {
        Stage2Annotate.annotate(this, ipa, size, cache, annotation);
    }

    // ------------------------------------------------------------------------------------------
    // unmap: Stage2Unmap

    /**
     * Removes every mapping and annotation in {@code [ipa, ipa + size)}; blocks that overlap the
     * range are removed whole (the rest refaults). Tables that become empty are freed. Each leaf
     * is invalidated by IPA (or, with FWB and RANGE_TLBI, by one range TLBI after the walk), and
     * cacheable leaves get D-cache maintenance after their TLBI when FWB is off.
     */
    public void unmap(long ipa, long size) {
        Stage2Unmap.unmap(this, ipa, size);
    }

    // ------------------------------------------------------------------------------------------
    // leaf attribute updates and cache maintenance: Stage2Attrs

    /**
     * Removes write permission from every valid leaf in the range (dirty logging). No TLBI: the
     * caller must invalidate afterwards (KVM flushes the memslot's range once), or a vCPU may keep
     * writing through a cached writable entry. Invalid entries are skipped.
     */
    public void wrprotect(long ipa, long size) {
        Stage2Attrs.wrprotect(this, ipa, size);
    }

    /** {@link #mkyoung(long, int)} outside a fault walk. */
    public Status mkyoung(long ipa) {
        return mkyoung(ipa, 0);
    }

    /**
     * Sets the access flag of the leaf translating {@code ipa} (the access-flag fault handler).
     * No TLBI: an entry with AF = 0 is never cached, so nothing stale can exist.
     *
     * @param flags walk flags: {@code SHARED} and {@code HANDLE_FAULT} ({@link WalkFlags#FAULT},
     *     the fault path), nothing else (EINVAL, "flags")
     * @return OK, NOT_MAPPED if no valid leaf translates {@code ipa}, RACED if it changed under us
     */
    public Status mkyoung(long ipa, int flags) {
        return Stage2Attrs.mkyoung(this, ipa, flags);
    }

    /**
     * Whether any valid leaf in the range has its access flag set; with {@code mkold}, clears it
     * (a lost race is ignored). No TLBI: the MMU-notifier path that ages pages flushes.
     */
    public boolean testClearYoung(long ipa, long size, boolean mkold) {
        return Stage2Attrs.testClearYoung(this, ipa, size, mkold);
    }

    /** {@link #relaxPerms(long, Prot, int, Tlb)} outside a fault walk, with no local TLB. */
    public Status relaxPerms(long ipa, Prot prot) {
        return relaxPerms(ipa, prot, 0, null);
    }

    /**
     * The kernel's {@code kvm_pgtable_stage2_relax_perms} (Linux 7.1-rc4): adds the read/write
     * rights in {@code prot} to the leaf translating {@code ipa} (never removes them) and sets its
     * execute field to exactly the execute rights in {@code prot}, so {@code rw} on an executable
     * leaf makes it non-executable. Then a local TLBI on {@code local}: only the faulting CPU can
     * hold the stale, more restrictive entry that made it fault; other CPUs fault and fix
     * themselves. The local TLBI is also issued for NOT_MAPPED and RACED (level unknown), as the
     * kernel does on -EAGAIN.
     *
     * <p>Deliberate difference: when the rewrite takes an execute right away, ptlab invalidates
     * by IPA with a broadcast TLBI at the leaf's level instead (the kernel keeps the local one),
     * so no CPU keeps a right the entry no longer grants.
     *
     * @param flags walk flags: {@code SHARED} and {@code HANDLE_FAULT} ({@link WalkFlags#FAULT},
     *     the fault path), nothing else (EINVAL, "flags")
     * @param local the faulting CPU's TLB (null: none to invalidate)
     * @return OK, NOT_MAPPED (no valid leaf), or RACED (changed or locked by another walker)
     * @throws PageTableException EINVAL if {@code prot} carries anything but R/W/X rights, has
     *     {@code px != ux} on a {@link #NO_XNX} table, or has execute rights and the leaf is
     *     device or non-cacheable memory (the kernel's fault path refuses that with -ENOEXEC);
     *     the entry is then unchanged and no TLBI is issued
     */
    public Status relaxPerms(long ipa, Prot prot, int flags, Tlb local) {
        return Stage2Attrs.relaxPerms(this, ipa, prot, flags, local);
    }

    /**
     * D-cache clean+invalidate of the target of every cacheable leaf in the range (set/way
     * emulation, caches being turned on or off). Nothing to do with FWB.
     */
    public void flush(long ipa, long size) {
        Stage2Attrs.flush(this, ipa, size);
    }

    // ------------------------------------------------------------------------------------------
    // unlinked subtrees and eager split: Stage2Split

    /**
     * Builds, off the table, a subtree mapping what one level-{@code level} block at {@code pa}
     * would map: fully down to pages with {@code forcePte}, else one level of next-size blocks.
     * Nothing can see it yet, so neither TLBI nor cache maintenance is done. On failure the
     * partial subtree is freed and the error rethrown.
     */
    public UnlinkedTable createUnlinked(long pa, int level, Prot prot, MemCache cache, boolean forcePte) {
        return Stage2Split.createUnlinked(this, pa, level, prot, cache, forcePte);
    }

    /**
     * Frees a subtree no walker can reach any more (never installed, or detached after a grace
     * period). Only this table's own subtrees (EINVAL, "subtree", for another table's).
     */
    public void freeUnlinked(UnlinkedTable subtree) {
        if (subtree == null) throw new IllegalArgumentException("subtree: null");
        if (subtree.owner != this) {
            // Another table's geometry walks the frames with the wrong levels and leaks them.
            throw PageTableException.invalidArgument("subtree", subtree, "was built by another table; only that table can free it");
        }
        synchronized (subtree) {
            if (subtree.freed) throw new IllegalStateException(subtree + " was already freed");
            subtree.freed = true;
        }
        freeSubtree(subtree.pa, subtree.level, subtree.base);
    }

    /**
     * Frames a full split of one level-{@code level} block to pages needs (513 for a 4K L1 block,
     * 0 at level 3); EINVAL ("level") outside this table's levels.
     */
    public int framesForFullSplit(int level) {
        return Stage2Split.framesForFullSplit(this, level);
    }

    /**
     * Eager split: every block in the range becomes a subtree mapping the same output addresses,
     * built off-table and swapped in with break-before-make. As the kernel's split walker, the
     * pages are rebuilt from the block's prot ({@link Stage2Descriptor#prot}: R/W, PX/UX and
     * software bits), so they are Normal memory with AF set whatever the block's memory type and
     * AF were (the kernel only splits dirty-logged RAM, mapped Normal). A block is split fully to pages when {@code cache} holds enough frames
     * ({@link #framesForFullSplit}), otherwise into one level of smaller blocks, which the walk
     * then visits and splits further while frames last.
     *
     * @throws PageTableException ENOMEM when not even one table can be built; EINVAL (prot) for a
     *     block whose execute rights differ on a table flagged {@link #NO_XNX}; either way the
     *     table stays valid (blocks split so far stay split)
     */
    public void split(long ipa, long size, MemCache cache) {
        Stage2Split.split(this, ipa, size, cache);
    }

    // ------------------------------------------------------------------------------------------
    // greedy identity map: GreedyIdmap

    /**
     * Identity-maps the largest single leaf around {@code addr} that lies inside {@code range} and
     * covers no incompatible existing mapping (other permissions, memory type or software bits)
     * and no annotation; compatible mappings under it are coalesced into it. pKVM's greedy host
     * idmap (kvm-pgtable.md §9.4). Exclusive; only for {@link #IDMAP} tables. A compatible block
     * larger than the result is shrunk by {@link #map} as usual (the rest of it refaults).
     *
     * @param addr the address to cover (need not be page-aligned)
     * @param range the most that may be mapped; when it holds less than the page around
     *     {@code addr}, that page is mapped anyway (the Linux 7.1-rc4 fallback to level 3)
     * @return the range actually mapped: one aligned block (or page) containing {@code addr}
     * @throws PageTableException EINVAL for bad arguments, ERANGE if {@code range} leaves the IPA
     *     space, EPERM if {@code addr}'s own page is covered by an incompatible mapping or an
     *     annotation, ENOMEM if a table is needed and {@code cache} is empty
     */
    public AddressRange idmapGreedy(long addr, Prot prot, AddressRange range, MemCache cache) {
        checkUsable("idmapGreedy");
        checkCache(cache);
        mmuLock.writeLock();
        try {
            return GreedyIdmap.map(this, addr, prot, range, cache);
        } finally {
            mmuLock.writeUnlock();
        }
    }

    // ------------------------------------------------------------------------------------------
    // break-before-make, shared by the operations

    /**
     * The break half of break-before-make: swap {@code old} for LOCKED (CAS in a shared walk),
     * invalidate what the old entry may have put in TLBs, and drop its table reference.
     *
     * <p>If the TLB maintenance throws, the old entry is restored (reference untouched) and the
     * exception rethrown: a failed break leaves the table as it was, never a LOCKED entry.
     *
     * @return false if another walker owns the entry (LOCKED) or changed it first
     */
    boolean breakEntry(VisitContext ctx) {
        long old = ctx.old();
        if (Pte.isLocked(old)) {
            if (!ctx.shared()) throw new IllegalStateException("exclusive walk met a LOCKED entry: " + ctx);
            return false;
        }
        if (!ctx.trySet(Pte.LOCKED)) return false;
        if ((ctx.flags() & WalkFlags.SKIP_BBM_TLBI) == 0) {
            try {
                invalidateFor(ctx, old);
            } catch (Throwable e) {
                // The TLBI failed: put the old entry back (its reference was not dropped yet), so
                // the table stays as it was and usable; the caller sees the failure.
                ctx.publish(old);
                throw e;
            }
        }
        if (counted(old)) ctx.putRef();
        return true;
    }

    /** The TLBI for breaking {@code old}: its whole span for a table, by IPA for a valid leaf. */
    private void invalidateFor(VisitContext ctx, long old) {
        int level = ctx.level();
        if (Pte.isTable(old, level)) {
            // Every leaf under the table may be cached: invalidate its whole span.
            flushVmidRange(ctx.entryBase(), ctx.entrySpan());
        } else if (Pte.isValid(old)) {
            tlbi.flushVmidIpa(vmid, ctx.entryBase(), level);
        }
    }

    /**
     * The kernel's {@code MAX_TLBI_RANGE_PAGES} ({@code __TLBI_RANGE_PAGES(31, 3)} = 32 * 2^16,
     * arch/arm64/include/asm/tlbflush.h): the most pages one range-TLBI call may cover.
     */
    public static final long MAX_TLBI_RANGE_PAGES = 1L << 21;

    /**
     * Invalidates every stage-2 translation of this VMID in {@code [ipa, ipa + size)}, as the
     * kernel's {@code kvm_tlb_flush_vmid_range} (Linux 7.1-rc4) does: without {@link #RANGE_TLBI}
     * one VMID-wide invalidation; with it, range invalidations of at most
     * {@link #MAX_TLBI_RANGE_PAGES} pages each, in address order (so 16 GiB at 4K is two). Used
     * by unmap's deferred flush and by table breaks; callers outside (dirty-log enable) use it for
     * the same rule. Takes no lock: a TLBI changes no table entry.
     *
     * @throws PageTableException EINVAL for an unaligned or empty range (it is not checked against
     *     the IPA space: invalidating addresses nothing maps is harmless)
     */
    public void flushVmidRange(long ipa, long size) {
        checkRange("ipa", ipa, size);
        if ((tableFlags & RANGE_TLBI) == 0) {
            tlbi.flushVmid(vmid);
            return;
        }
        int shift = Long.numberOfTrailingZeros(geometry.granule().pageSize());
        long pages = size >>> shift;
        long addr = ipa;
        while (pages > 0) {
            long n = Math.min(pages, MAX_TLBI_RANGE_PAGES);
            tlbi.flushVmidRange(vmid, addr, n << shift);
            addr += n << shift;
            pages -= n;
        }
    }

    /** The make half: take the reference the new entry holds, then publish it with release order. */
    void make(VisitContext ctx, long pte) {
        if (counted(pte)) ctx.getRef();
        ctx.publish(pte);
    }
}
