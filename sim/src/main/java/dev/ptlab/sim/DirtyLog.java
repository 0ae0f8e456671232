package dev.ptlab.sim;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.core.table.Stage2PageTable;

/**
 * Dirty logging (KVM_MEM_LOG_DIRTY_PAGES, KVM_GET_DIRTY_LOG): write-protecting a slot, the
 * optional eager split of its blocks, and handing out and re-protecting its dirty bitmap. The
 * bitmap itself lives in the {@link Memslot}; the abort handler sets its bits on write faults.
 *
 * <p>Locks: every public operation takes the MMU write lock itself (callers hold no VM lock),
 * which also guards the eager-split cache.
 */
final class DirtyLog {
    private final Stage2PageTable table;
    private final long pageSize;
    private final long eagerSplitChunk;
    private final MemCache splitCache;
    private final long splitCacheCapacity;

    DirtyLog(Stage2PageTable table, long eagerSplitChunk, MemCache splitCache) {
        this.table = table;
        this.pageSize = table.geometry().granule().pageSize();
        this.eagerSplitChunk = eagerSplitChunk;
        this.splitCache = splitCache;
        this.splitCacheCapacity = splitCapacity(table.geometry(), eagerSplitChunk);
    }

    /** Frames one eager-split chunk may need: one table per block of each block level the chunk can contain. */
    static long splitCapacity(Geometry geometry, long chunk) {
        if (chunk == 0) return 0;
        long n = 0;
        for (int l = geometry.startLevel(); l < Granule.LAST_LEVEL; l++) {
            if (!geometry.leafAllowed(l)) continue;
            long span = geometry.granule().levelSize(l);
            n += (chunk + span - 1) / span;
        }
        return n;
    }

    /** See {@link Vm#enableDirtyLogging(Memslot)}. */
    void enable(Memslot slot) {
        MmuLock lock = table.mmuLock();
        lock.writeLock();
        try {
            slot.setLogging(true);
            table.wrprotect(slot.gpa(), slot.size());
            flushSlot(slot);
            long chunk = eagerSplitChunk;
            if (chunk != 0) {
                for (long a = slot.gpa(); a < slot.end(); ) {
                    long next = Math.min(slot.end(), (a & -chunk) + chunk);
                    // Best effort, as KVM: top the split cache up to one chunk's worth per chunk.
                    splitCache.topUp((int) splitCacheCapacity);
                    table.split(a, next - a, splitCache);
                    a = next;
                }
            }
        } finally {
            lock.writeUnlock();
        }
    }

    /**
     * The TLBI after write-protecting {@code slot}: {@code kvm_flush_remote_tlbs_memslot}, which
     * on arm64 is {@code kvm_tlb_flush_vmid_range} over the slot (Linux 7.1-rc4): a range
     * invalidation per at most MAX_TLBI_RANGE_PAGES pages with range TLBI, the whole VMID
     * without it ({@link Stage2PageTable#flushVmidRange}).
     */
    private void flushSlot(Memslot slot) {
        table.flushVmidRange(slot.gpa(), slot.size());
    }

    /** See {@link Vm#disableDirtyLogging(Memslot)}. */
    void disable(Memslot slot) {
        MmuLock lock = table.mmuLock();
        lock.writeLock();
        try {
            slot.setLogging(false);
            splitCache.release();
        } finally {
            lock.writeUnlock();
        }
    }

    /** See {@link Vm#getDirtyLog(Memslot, boolean)}. */
    long[] take(Memslot slot, boolean reprotect) {
        MmuLock lock = table.mmuLock();
        lock.writeLock();
        try {
            long[] bits = slot.takeDirty();
            if (reprotect && slot.logging()) {
                boolean any = false;
                for (int w = 0; w < bits.length; w++) {
                    long word = bits[w];
                    while (word != 0) {
                        int b = Long.numberOfTrailingZeros(word);
                        word &= word - 1;
                        table.wrprotect(slot.gpa() + ((long) w * 64 + b) * pageSize, pageSize);
                        any = true;
                    }
                }
                if (any) flushSlot(slot);
            }
            return bits;
        } finally {
            lock.writeUnlock();
        }
    }
}
