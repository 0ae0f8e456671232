package dev.ptlab.mm;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.walk.Status;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * fork: copy_page_range (reference A.7) with one ptlab choice. The kernel try-locks a
 * device-exclusive entry's folio while copying and fails the fork with ENOMEM if it cannot,
 * leaving what it already copied to be torn down. ptlab try-locks every device-exclusive folio
 * of the parent in a pre-pass instead, so a failure changes nothing at all (no child, no entry,
 * no count); then, per private (COW) area: PROTECTION_PAGE notifier over the area, each locked
 * device-exclusive entry restored in the parent (FORK_RESTORE), and every entry copied:
 * present entries write-protected on both sides (map count and reference taken for the child;
 * a PMD-mapped THP is copied as one block), swap entries with their slot's count raised.
 * Shared areas are not copied: the child faults their pages from the shared-memory object.
 */
final class Fork {
    private Fork() {}

    static AddressSpace fork(AddressSpace parent) {
        ProcessPageTable table = parent.table;
        parent.mmapLock.writeLock();
        try {
            parent.checkLive();
            Map<Folio, Boolean> locked = lockExclusiveFolios(parent);
            if (locked == null) {
                parent.stats.add(MmEvent.FORK_FAILED);
                throw new MmException(Errno.ENOMEM, 0, "fork: a device-exclusive folio is locked (a driver holds it)");
            }
            AddressSpace child = parent.host.newAddressSpace();
            boolean ok = false;
            child.mmapLock.writeLock();
            try {
                for (Vma v : new ArrayList<Vma>(listOf(parent.vmasLocked()))) {
                    child.insertVma(v);
                    if (v.shared()) continue;
                    NotifierRange range = new NotifierRange(v.start(), v.end(), NotifierEvent.PROTECTION_PAGE, null);
                    parent.notifiers.invalidateRangeStart(range);
                    try {
                        // Parent PTL, then the child's (taken by its walks): the kernel's src/dst order.
                        table.walkRange(v.start(), v.end(), (ctx, visit) -> {
                            long pte = ctx.old();
                            if (pte == 0) return Status.OK;
                            if (HostPte.isDeviceExclusive(pte)) {
                                pte = DeviceExclusive.restoreLocked(parent, v, ctx);
                                parent.stats.add(MmEvent.FORK_RESTORE);
                            }
                            copy(parent, child, ctx.entryBase(), ctx.level(), ctx.entrySpan(), pte, ctx);
                            return Status.OK;
                        }, false);
                    } finally {
                        parent.notifiers.invalidateRangeEnd(range);
                    }
                }
                ok = true;
            } catch (PageTableException e) {
                if (!AddressSpace.isOutOfMemory(e)) throw e;
                throw new MmException(Errno.ENOMEM, 0, "fork: table memory exhausted while copying");
            } finally {
                child.mmapLock.writeUnlock();
                for (Folio f : locked.keySet()) {
                    f.unlock();
                    f.put();
                }
                if (!ok) {
                    parent.stats.add(MmEvent.FORK_FAILED);
                    child.close();
                }
            }
            parent.stats.add(MmEvent.FORK);
            return child;
        } finally {
            parent.mmapLock.writeUnlock();
        }
    }

    private static List<Vma> listOf(Iterable<Vma> it) {
        List<Vma> out = new ArrayList<>();
        for (Vma v : it) out.add(v);
        return out;
    }

    /**
     * Try-locks (and references) the folio of every device-exclusive entry of the parent; on the
     * first failure releases what it took and returns null.
     */
    private static Map<Folio, Boolean> lockExclusiveFolios(AddressSpace parent) {
        Map<Folio, Boolean> locked = new IdentityHashMap<>();
        boolean[] failed = {false};
        for (Vma v : parent.vmasLocked()) {
            if (!v.anonymous()) continue;
            parent.table.forEachEntry(v.start(), v.end(), (base, level, pte) -> {
                if (failed[0] || !HostPte.isDeviceExclusive(pte)) return;
                Folio f = parent.memory.folioOf(HostPte.swapOffset(pte) << parent.pageShift);
                f.get(); // the entry's own reference keeps it alive while we hold the PTL
                if (f.tryLock()) {
                    locked.put(f, Boolean.TRUE);
                } else {
                    f.put();
                    failed[0] = true;
                }
            });
            if (failed[0]) break;
        }
        if (!failed[0]) return locked;
        for (Folio f : locked.keySet()) {
            f.unlock();
            f.put();
        }
        return null;
    }

    /**
     * Copies one non-zero, non-device-exclusive entry of the parent into the child. The child's
     * entry is installed first, so a table-memory failure leaves every count as it was.
     */
    private static void copy(AddressSpace parent, AddressSpace child, long base, int level, long span, long pte,
                             dev.ptlab.core.walk.VisitContext ctx) {
        boolean present = Pte.isValid(pte);
        if (!present && !HostPte.isSwap(pte)) {
            throw new IllegalStateException("fork met " + HostPte.describe(parent.geometry, pte) + " at 0x" + Long.toHexString(base));
        }
        // Both sides read-only: the first write on either side copies (or reuses) the page.
        long shared = present ? HostPte.wrprotect(pte) : pte;
        long childPte = present ? HostPte.mkOld(shared) : pte;
        if (!child.table.install(base, level, childPte)) {
            throw new IllegalStateException("fork: the child's entry at 0x" + Long.toHexString(base) + " is not empty");
        }
        if (present) {
            if (shared != pte) parent.table.set(ctx, shared);
            Folio f = parent.memory.folioOf(parent.geometry.outputAddress(pte));
            f.incMapcount();
            f.get();
            child.rss.addAndGet(span >>> parent.pageShift);
        } else {
            parent.host.swap().dup(HostPte.swapOffset(pte));
        }
    }
}
