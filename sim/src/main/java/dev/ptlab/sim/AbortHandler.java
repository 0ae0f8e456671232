package dev.ptlab.sim;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.GupResult;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.MmException;

/**
 * The guest-abort handler KVM/arm64 runs when a vCPU takes a stage-2 fault (the kernel's
 * {@code kvm_handle_guest_abort}, {@code user_mem_abort} and {@code handle_access_fault};
 * reference kvm-pgtable.md §9): find the memslot, pick the mapping size and protection, and map,
 * relax permissions or set the access flag.
 *
 * <p>For a memslot backed by a host address space it follows KVM's invalidation protocol
 * (reference mm-exclusive-rcu.md B.3, B.8): read the invalidation sequence before GUP, and map
 * only if, under the MMU lock, no invalidation of the address is in progress and the sequence is
 * unchanged; otherwise map nothing and report which ({@link AbortResult#INVALIDATED},
 * {@link AbortResult#INVALIDATING}).
 *
 * <p>Locks: {@link #handle} is called by the thread running the vCPU with no lock held; it
 * takes the MMU lock itself, for reading (shared walks) or writing as {@link FaultLocking} says,
 * and never holds it across GUP. Writes only the faulting vCPU's own state besides the table.
 */
final class AbortHandler {
    private final Geometry geometry;
    private final Granule granule;
    private final Stage2PageTable table;
    private final Memslots slots;
    private final MmuInvalidations invalidations;
    private final int faultFlags;
    private final boolean shared;
    /** One table per level below the root: enough for any single mapping (kvm_mmu_cache_min_pages). */
    private final int cacheMin;
    /** Test hook run by the fault path after GUP, before the MMU lock (set by the thread that runs the vCPU). */
    private Runnable faultHook;

    AbortHandler(Geometry geometry, Stage2PageTable table, Memslots slots, MmuInvalidations invalidations, FaultLocking locking) {
        this.geometry = geometry;
        this.granule = geometry.granule();
        this.table = table;
        this.slots = slots;
        this.invalidations = invalidations;
        this.shared = locking == FaultLocking.SHARED;
        this.faultFlags = WalkFlags.HANDLE_FAULT | (shared ? WalkFlags.SHARED : 0);
        this.cacheMin = geometry.levels() - 1;
    }

    /** See {@link Vm#setFaultHook(Runnable)}. */
    void setFaultHook(Runnable afterGup) {
        this.faultHook = afterGup;
    }

    /**
     * Handles a stage-2 fault of {@code vcpu} on {@code gpa}.
     *
     * @param observed the entry the MMU found (the invalid one for a translation fault)
     */
    AbortResult handle(Vcpu vcpu, long gpa, Access access, FaultType type, int level, long observed) {
        if (gpa < 0 || gpa >= geometry.iaLimit()) return AbortResult.EXIT_ADDRESS_SIZE;
        Memslot slot = slots.find(gpa);
        if (slot == null) return AbortResult.EXIT_MMIO;
        boolean write = access == Access.WRITE;
        if (write && slot.readOnly()) return AbortResult.EXIT_MMIO;
        if (type == FaultType.TRANSLATION && Pte.isLocked(observed)) vcpu.stats.spurious++;
        if (type == FaultType.ACCESS_FLAG) {
            Status s = table.mkyoung(gpa, faultFlags);
            if (s == Status.RACED) vcpu.stats.raced++;
            return AbortResult.RESUME;
        }
        if (slot.mm() != null) return userMemAbortMm(vcpu, slot, gpa, access, type, level, observed);
        return userMemAbort(vcpu, slot, gpa, access, type, level, observed);
    }

    /** The fault path for a fixed memslot: no host page table, nothing to race with but other vCPUs. */
    private AbortResult userMemAbort(Vcpu vcpu, Memslot slot, long gpa, Access access, FaultType type, int level, long observed) {
        boolean write = access == Access.WRITE;
        boolean perm = type == FaultType.PERMISSION;
        boolean logging = slot.logging();
        // The mapping size: the backing's page, forced to base pages while dirty logging, demoted
        // while the block would not be congruent in IPA and host PA or would leave the slot.
        long size = logging ? granule.pageSize() : slot.backing().mappingSize(granule);
        long pa = slot.hostPa(gpa & -granule.pageSize());
        while (size > granule.pageSize() && !blockFits(slot, gpa, pa, size)) size = smallerBlock(size);
        // Tables may be needed unless this is a pure permission relaxation.
        if (!perm || (logging && write)) vcpu.cache().topUp(cacheMin);
        Status s = mapOrRelax(vcpu, gpa, pa, size, faultProt(slot, access, perm, observed, true), perm, level);
        if (s == Status.RACED || s == Status.NOT_MAPPED) {
            vcpu.stats.raced++;
        } else if (write && logging) {
            slot.markDirty(gpa);
        }
        return AbortResult.RESUME;
    }

    /**
     * The fault path for a memslot backed by a host address space (KVM's user_mem_abort with
     * __kvm_faultin_pfn): snapshot the invalidation sequence, GUP the host page, then under the
     * MMU lock map it unless an invalidation got in between. On {@link AbortResult#INVALIDATING}
     * the sequence seen under the lock is left in {@code vcpu.invalidationSeq} for the wait.
     */
    private AbortResult userMemAbortMm(Vcpu vcpu, Memslot slot, long gpa, Access access, FaultType type, int level, long observed) {
        long page = granule.pageSize();
        boolean write = access == Access.WRITE;
        boolean perm = type == FaultType.PERMISSION;
        boolean logging = slot.logging();
        if (!perm || (logging && write)) vcpu.cache().topUp(cacheMin);
        // Read before GUP: an invalidation that changes the host entry after GUP looked at it
        // either is still in progress when we check under the lock, or has ended and bumped this.
        long seq = invalidations.seq();
        GupResult gup = vcpu.gup;
        AddressSpace mm = slot.mm();
        // The process has exited (its release notifier emptied the slot): as KVM's GUP on a dead
        // mm, no page. (GUP itself refuses a closed address space with IllegalStateException.)
        if (mm.closed()) return AbortResult.EXIT_EFAULT;
        try {
            mm.getUserPage(slot.hva(gpa), write ? Mman.FOLL_WRITE : 0, gup);
        } catch (MmException e) {
            if (e.errno() == Errno.EFAULT) return AbortResult.EXIT_EFAULT;
            throw new IllegalStateException("vcpu" + vcpu.id() + ": GUP of hva 0x" + Long.toHexString(slot.hva(gpa)) + " for gpa 0x"
                    + Long.toHexString(gpa) + " failed: " + e.getMessage(), e);
        }
        try {
            Runnable hook = faultHook;
            if (hook != null) hook.run();
            // The host's leaf size bounds the mapping (a THP or hugetlb page can be a block; a
            // base page cannot), forced to base pages while logging, demoted while the block
            // would not be congruent (GPA vs PA) or would leave the slot.
            long size = logging ? page : gup.mappingSize;
            while (size > page && (!isLeafSize(size) || !blockFits(slot, gpa, gup.pa, size))) size = smallerBlock(size);
            // Writable only if the host entry is (a read fault on a writable host page maps
            // writable unless logging, so the guest's first write does not fault again).
            Prot prot = faultProt(slot, access, perm, observed, gup.writable);
            MmuLock lock = table.mmuLock();
            // The check and the map must be one critical section: an invalidation takes the
            // write lock, so while we hold the read (or write) side none can start or end.
            if (shared) lock.readLock(); else lock.writeLock();
            Status s;
            try {
                int retry = invalidations.retry(seq, gpa);
                if (retry != MmuInvalidations.CLEAR) {
                    vcpu.stats.seqRetries++;
                    if (retry == MmuInvalidations.ENDED) return AbortResult.INVALIDATED;
                    vcpu.invalidationSeq = invalidations.seq();
                    return AbortResult.INVALIDATING;
                }
                s = mapOrRelax(vcpu, gpa, gup.pa, size, prot, perm, level);
            } finally {
                if (shared) lock.readUnlock(); else lock.writeUnlock();
            }
            if (s == Status.RACED || s == Status.NOT_MAPPED) {
                vcpu.stats.raced++;
            } else {
                if (write && logging) slot.markDirty(gpa);
                // As KVM's release of a page mapped writable: the guest may now write it without
                // the host page table seeing a dirty bit, so the folio is dirty.
                if (prot.writable() && !gup.folio.isDirty()) gup.folio.markDirty();
            }
            return AbortResult.RESUME;
        } finally {
            // Stage-2 entries hold no page reference: the notifiers keep them coherent instead.
            gup.folio.put();
            gup.clear();
        }
    }

    /** The stage-2 protection of a fault's mapping; constants rather than Prot.with (this runs once per fault). */
    private static Prot faultProt(Memslot slot, Access access, boolean perm, long observed, boolean hostWritable) {
        boolean w = !slot.readOnly() && hostWritable && (access == Access.WRITE || !slot.logging());
        boolean x = access == Access.EXEC || (perm && Stage2Descriptor.isExecutable(observed));
        return w ? (x ? Prot.RWX : Prot.RW) : (x ? Prot.RX : Prot.R);
    }

    /** Relaxes permissions in place if the fault was on a leaf of the mapping size, else maps {@code [gpa, pa)} rounded to {@code size}. */
    private Status mapOrRelax(Vcpu vcpu, long gpa, long pa, long size, Prot prot, boolean perm, int level) {
        if (perm && granule.levelSize(level) == size) return table.relaxPerms(gpa, prot, faultFlags, vcpu.tlb());
        long ipa = gpa & -size;
        try {
            return table.map(ipa, size, pa & -size, prot, vcpu.cache(), faultFlags);
        } catch (PageTableException e) {
            throw e.withContext("vcpu" + vcpu.id() + ": stage-2 map of 0x" + Long.toHexString(ipa) + " failed");
        }
    }

    /**
     * KVM's fault_supports_stage2_huge_mapping: the IPA and host PA ({@code pa}, of the page
     * containing {@code gpa}) are congruent modulo the block, and the block lies inside the slot.
     */
    private boolean blockFits(Memslot slot, long gpa, long pa, long size) {
        if ((((gpa & -granule.pageSize()) ^ pa) & (size - 1)) != 0) return false;
        long start = gpa & -size;
        return start >= slot.gpa() && start + size <= slot.end();
    }

    /** Whether stage-2 can map a leaf of {@code size} (a page, or a block of a level that allows blocks). */
    private boolean isLeafSize(long size) {
        return size == granule.pageSize() || Vm.isBlockSize(geometry, size);
    }

    /** The largest mapping size below {@code size}: the next block level down, or a page. */
    private long smallerBlock(long size) {
        for (int l = 0; l < Granule.LAST_LEVEL; l++) {
            long s = granule.levelSize(l);
            if (s < size && geometry.leafAllowed(l)) return s;
        }
        return granule.pageSize();
    }
}
