package dev.ptlab.mm;

import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;

/**
 * mprotect's entry update (change_pte_range, 6.15, reference A.9): present entries take the new
 * protection's user access and exec, and lose write if it is gone; write is never added (the
 * next write fault reuses or copies the page, so a COW-shared page is never made writable here).
 * Swap and device-exclusive entries are left as they are: a device-exclusive entry's writability
 * is decided from the VMA when it is restored. A THP block the range covers only partly is split
 * to PTEs first. The caller holds the mmap write lock and sends PROTECTION_VMA around it.
 */
final class Protect implements Visitor {
    private final AddressSpace mm;
    private final int prot;

    private Protect(AddressSpace mm, int prot) {
        this.mm = mm;
        this.prot = prot;
    }

    static void protect(AddressSpace mm, long start, long end, int prot) {
        mm.table.walkRange(start, end, new Protect(mm, prot), false);
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        long pte = ctx.old();
        if (!Pte.isValid(pte)) return Status.OK;
        long base = ctx.entryBase();
        if (base < ctx.start() || base + ctx.entrySpan() > ctx.end()) {
            // Only a THP block can be cut (hugetlb ranges were checked): PTEs, then each one.
            mm.table.splitBlock(ctx);
            mm.stats.add(MmEvent.THP_SPLIT);
            return Status.OK;
        }
        long np = prot == Mman.PROT_NONE ? pte & ~HostPte.USER : pte | HostPte.USER;
        if ((prot & Mman.PROT_WRITE) == 0) np = HostPte.wrprotect(np);
        np = (prot & Mman.PROT_EXEC) != 0 ? np & ~HostPte.UXN : np | HostPte.UXN;
        mm.table.set(ctx, np);
        return Status.OK;
    }
}
