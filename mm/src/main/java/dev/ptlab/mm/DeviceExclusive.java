package dev.ptlab.mm;

import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;

/**
 * Device-exclusive entries, 6.15 design (reference A.4, A.5): conversion of one page and the
 * restore a CPU fault (or GUP) performs.
 *
 * <p>The entry keeps the mapping's map count and reference: conversion and restore change no
 * count. Exclusivity lasts while the driver holds the folio lock it got back from
 * {@link #make}; after it unlocks, any CPU access may restore the entry, telling the device
 * through a CLEAR notifier with no owner. Since the 2025 series merged for 6.15 ("use
 * MMU_NOTIFY_CLEAR in remove_device_exclusive_entry()", unchanged through 7.1-rc4) EXCLUSIVE is
 * sent only by the conversion: the restore really clears the device-exclusive entry before it
 * installs the present one, which is what CLEAR says.
 */
final class DeviceExclusive {
    /** Attempts at splitting a THP source before {@link #make} reports EBUSY. */
    private static final int BUSY_RETRIES = 64;

    private DeviceExclusive() {}

    /**
     * The present entry a device-exclusive entry is restored to (restore_exclusive_pte, 6.15 to
     * 7.1-rc4), by the fault path and by fork alike: old (AF clear) with the VMA's base
     * protection and soft-dirty carried over; then, only when the VMA has VM_WRITE and the entry
     * may be made writable, writable and dirty if the folio is. Outside that branch the entry
     * stays clean whatever the folio says: after {@code mprotect(PROT_READ)} a read restores a
     * clean, read-only, old entry (the folio keeps its dirty flag, so nothing is lost).
     *
     * <p>can_change_pte_writable, for a private anonymous VMA, asks whether the page is
     * exclusively this mapping's (PageAnonExclusive) and whether soft-dirty or uffd-wp tracking
     * still needs a write fault. The page is exclusive: conversion required a writable entry,
     * and fork restores before it shares; ptlab models no soft-dirty clearing and no uffd-wp.
     * So the branch is VM_WRITE alone here.
     */
    static long restoredEntry(AddressSpace mm, Vma vma, Folio folio, long devx) {
        boolean writable = vma.writable();
        long pte = HostPte.present(mm.geometry, folio.pa(), Granule.LAST_LEVEL, vma.prot() != Mman.PROT_NONE, writable,
                vma.executable(), false, writable && folio.isDirty());
        if (HostPte.isSoftDirty(devx)) pte |= HostPte.SOFT_DIRTY;
        return pte;
    }

    /**
     * make_device_exclusive, steps 1-7 of reference A.4 (6.15).
     */
    static Folio make(AddressSpace mm, long addr, Object owner) {
        ProcessPageTable table = mm.table;
        GupResult gup = new GupResult();
        int busy = 0;
        mm.mmapLock.readLock();
        try {
            while (true) {
                // 1. GUP for write: COW is broken first, so the page is exclusively ours; a PMD-mapped
                //    THP is remapped by PTEs (and its folio split where possible).
                mm.faults.gup(addr, Mman.FOLL_WRITE | Mman.FOLL_SPLIT_PMD, gup);
                Folio folio = gup.folio;
                if (!folio.isAnon() || folio.isHugetlb()) {
                    folio.put();
                    throw new MmException(Errno.EOPNOTSUPP, addr, "device-exclusive needs anonymous non-hugetlb memory, not " + folio);
                }
                if (folio.isLarge()) {
                    // Its folio could not be split: another mapping or reference (often a GUP in
                    // flight) or its lock was taken. Try again a few times, then give up.
                    folio.put();
                    if (++busy > BUSY_RETRIES) {
                        throw new MmException(Errno.EBUSY, addr, "the THP " + folio + " is shared or pinned and could not be split");
                    }
                    Thread.yield();
                    continue;
                }
                // 2. Sleeps until the folio is ours (the kernel's folio_lock_killable); the driver
                //    holds the mmap read lock here, as in the kernel.
                folio.lock();
                // 3. Secondary MMUs drop the page; the owner lets the caller's own invalidate
                //    callback ignore this event (else its own read_retry would always fail).
                NotifierRange range = new NotifierRange(addr, addr + mm.pageSize, NotifierEvent.EXCLUSIVE, owner);
                mm.notifiers.invalidateRangeStart(range);
                boolean converted = false;
                try {
                    // 4-6. Still the same folio, at PTE level, writable (a writable anon page is
                    //      mapped by exactly this entry): then swap in the device-exclusive entry.
                    boolean[] done = {false};
                    table.atLeaf(addr, ctx -> {
                        long pte = ctx.old();
                        if (ctx.level() != Granule.LAST_LEVEL || !Pte.isValid(pte) || !HostPte.isWrite(pte)) return;
                        if (mm.geometry.outputAddress(pte) != folio.pa() || mm.memory.folioOf(folio.pa()) != folio) return;
                        if (HostPte.isDirty(pte)) folio.markDirty();
                        long devx = HostPte.deviceExclusive(folio.pa() >>> mm.pageShift);
                        if ((pte & HostPte.SOFT_DIRTY) != 0) devx |= HostPte.SWP_SOFT_DIRTY;
                        table.set(ctx, devx); // present -> non-present: flushed; still counted
                        done[0] = true;
                    });
                    converted = done[0];
                } finally {
                    mm.notifiers.invalidateRangeEnd(range);
                    if (!converted) {
                        folio.unlock();
                        folio.put();
                    }
                }
                if (converted) {
                    // 7. Counts unchanged: the entry is still a mapping. Locked, with GUP's reference.
                    mm.stats.add(MmEvent.EXCLUSIVE_CONVERSION);
                    return folio;
                }
                // The entry changed between GUP and the lock: start again.
            }
        } finally {
            mm.mmapLock.readUnlock();
        }
    }

    /**
     * A CPU or GUP fault on a device-exclusive entry (remove_device_exclusive_entry, reference
     * A.5): mmap read lock held; returns DONE (the access replays) or RETRY having given up the
     * mmap lock to wait for the folio lock. Every restore but fork's comes here (GUP, and so a
     * device's hmm_range_fault or a second device's conversion, faults through handle_mm_fault
     * as the CPU does), so this is the one place that sends the restore's CLEAR.
     */
    static FaultResult restoreOnFault(AddressSpace mm, Vma vma, long addr, long devx) {
        long pa = HostPte.swapOffset(devx) << mm.pageShift;
        Folio folio = mm.memory.folioOf(pa);
        // A reference before the lock (fix 7c7b962938dd): never lock a folio that may be freed.
        // If it was freed meanwhile, the entry is gone too: replay the access.
        if (folio == null || !folio.tryGet()) return FaultResult.DONE;
        if (!folio.tryLock()) {
            // The driver still holds it. Never sleep on it with the mmap lock held.
            mm.stats.add(MmEvent.FAULT_RETRY);
            mm.mmapLock.readUnlock();
            folio.waitUnlocked();
            folio.put();
            return FaultResult.RETRY;
        }
        long page = addr & -mm.pageSize;
        // CLEAR, not EXCLUSIVE, since 6.15 (see the class comment): a driver filtering EXCLUSIVE
        // by owner never mistakes a CPU taking the page back for its own conversion.
        NotifierRange range = new NotifierRange(page, page + mm.pageSize, NotifierEvent.CLEAR, null);
        boolean restored = false;
        mm.notifiers.invalidateRangeStart(range);
        try {
            // The folio we locked may be an unrelated one reusing the page: the entry compare decides.
            restored = mm.table.replace(page, Granule.LAST_LEVEL, devx, restoredEntry(mm, vma, folio, devx));
        } finally {
            folio.unlock();
            folio.put();
            mm.notifiers.invalidateRangeEnd(range);
        }
        if (restored) mm.stats.add(MmEvent.EXCLUSIVE_RESTORE);
        return FaultResult.DONE;
    }

    /**
     * Restores a device-exclusive entry being visited (fork's copy_nonpresent_pte, through
     * try_restore_exclusive_pte into the same restore_exclusive_pte as a fault: hence the same
     * {@link #restoredEntry}), with the folio locked by the caller and fork's PROTECTION_PAGE
     * notifier already sent. Returns the new present entry.
     */
    static long restoreLocked(AddressSpace mm, Vma vma, dev.ptlab.core.walk.VisitContext ctx) {
        long devx = ctx.old();
        Folio folio = mm.memory.folioOf(HostPte.swapOffset(devx) << mm.pageShift);
        long pte = restoredEntry(mm, vma, folio, devx);
        mm.table.set(ctx, pte);
        return pte;
    }
}
