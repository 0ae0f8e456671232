package dev.ptlab.sim;

import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.notify.MmuNotifier;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The VM's side of the host's MMU notifiers (KVM's kvm_mmu_notifier_ops): one subscription per
 * host address space backing a memslot; each callback translates the host range into the
 * guest-physical ranges of that address space's memslots and acts on stage-2 there: an
 * invalidation unmaps them and is tracked in {@link MmuInvalidations} until it ends, aging tests
 * and clears the access flag, release unmaps every slot of the address space. Stage-2 entries
 * hold no page references: these callbacks are what keeps them from outliving the host mapping.
 *
 * <p>Locks: {@link #subscribe} and {@link #unsubscribeAll} use this object's monitor (the
 * subscriptions map); the callbacks are called by the host with no VM lock held and take the MMU
 * write lock themselves for invalidations and release. Aging takes no VM lock: it clears access
 * flags by compare-and-set, which loses harmlessly to any concurrent change of the entry.
 */
final class NotifierBridge {
    private final Stage2PageTable table;
    private final TlbSystem tlbs;
    private final int vmid;
    private final long pageSize;
    private final Memslots slots;
    private final MmuInvalidations invalidations;
    /** One notifier per distinct address space backing a memslot; guarded by this. */
    private final Map<AddressSpace, SlotNotifier> notifiers = new LinkedHashMap<>();
    private final AtomicLongArray events = new AtomicLongArray(NotifierEvent.values().length);
    private final AtomicLong unmapped = new AtomicLong();
    private final AtomicLong young = new AtomicLong();

    NotifierBridge(Stage2PageTable table, TlbSystem tlbs, int vmid, long pageSize, Memslots slots, MmuInvalidations invalidations) {
        this.table = table;
        this.tlbs = tlbs;
        this.vmid = vmid;
        this.pageSize = pageSize;
        this.slots = slots;
        this.invalidations = invalidations;
    }

    /** Registers the VM's notifier with {@code mm} unless it already is (before a slot of mm becomes visible). */
    synchronized void subscribe(AddressSpace mm) {
        if (notifiers.containsKey(mm)) return;
        SlotNotifier n = new SlotNotifier(mm);
        notifiers.put(mm, n);
        mm.notifiers().register(n);
    }

    /** The subscribed address spaces, each once, in subscription order. */
    synchronized List<AddressSpace> addressSpaces() {
        return List.copyOf(notifiers.keySet());
    }

    /** Unregisters every subscription (VM destruction). */
    void unsubscribeAll() {
        List<SlotNotifier> ns;
        synchronized (this) {
            ns = new ArrayList<>(notifiers.values());
            notifiers.clear();
        }
        for (SlotNotifier n : ns) n.mm.notifiers().unregister(n);
    }

    /** See {@link Vm#notifierInvalidations(NotifierEvent)}. */
    long invalidations(NotifierEvent event) {
        return events.get(event.ordinal());
    }

    /** See {@link Vm#notifierUnmappedLeaves()}. */
    long unmappedLeaves() {
        return unmapped.get();
    }

    /** See {@link Vm#notifierYoung()}. */
    long young() {
        return young.get();
    }

    /** The subscription to one host address space. */
    private final class SlotNotifier implements MmuNotifier {
        final AddressSpace mm;

        SlotNotifier(AddressSpace mm) {
            this.mm = mm;
        }

        @Override
        public void invalidateRangeStart(NotifierRange range) {
            events.incrementAndGet(range.event().ordinal());
            if (!intersectsSlot(mm, range.start(), range.end())) return;
            MmuLock lock = table.mmuLock();
            lock.writeLock();
            try {
                if (table.destroyed()) return;
                // In progress first: a fault that GUPs after this point may still see the old
                // host entry, and must find this invalidation when it checks under the lock.
                invalidations.begin(range);
                long removed = table.counters().leavesRemoved();
                forEachGuestRange(mm, range.start(), range.end(), (gs, ge) -> {
                    invalidations.cover(gs, ge);
                    // Blocks overlapping the range go whole (the rest refaults); the unmap
                    // invalidates the TLBs before the write lock is dropped.
                    table.unmap(gs, ge - gs);
                });
                unmapped.addAndGet(table.counters().leavesRemoved() - removed);
            } finally {
                lock.writeUnlock();
            }
        }

        @Override
        public void invalidateRangeEnd(NotifierRange range) {
            if (!invalidations.uncount(range)) return;
            MmuLock lock = table.mmuLock();
            lock.writeLock();
            try {
                invalidations.end();
            } finally {
                lock.writeUnlock();
            }
            invalidations.wakeWaiters();
        }

        @Override
        public boolean clearFlushYoung(long start, long end) {
            return age(mm, start, end, true, true);
        }

        @Override
        public boolean clearYoung(long start, long end) {
            return age(mm, start, end, true, false);
        }

        @Override
        public boolean testYoung(long start, long end) {
            return age(mm, start, end, false, false);
        }

        @Override
        public void release() {
            events.incrementAndGet(NotifierEvent.RELEASE.ordinal());
            MmuLock lock = table.mmuLock();
            lock.writeLock();
            try {
                if (table.destroyed()) return;
                long removed = table.counters().leavesRemoved();
                for (Memslot s : slots.snapshot()) if (s.mm() == mm) table.unmap(s.gpa(), s.size());
                unmapped.addAndGet(table.counters().leavesRemoved() - removed);
            } finally {
                lock.writeUnlock();
            }
        }
    }

    private boolean intersectsSlot(AddressSpace mm, long start, long end) {
        for (Memslot s : slots.snapshot()) if (s.mm() == mm && start < s.hva() + s.size() && s.hva() < end) return true;
        return false;
    }

    /**
     * Aging of host {@code [start, end)}: whether stage-2 has a young leaf in the guest ranges it
     * backs, clearing the access flags with {@code clear} and then invalidating the TLBs of the
     * young ranges with {@code flush} (an entry cached as young would hide the next access).
     */
    private boolean age(AddressSpace mm, long start, long end, boolean clear, boolean flush) {
        boolean[] any = {false};
        forEachGuestRange(mm, start, end, (gs, ge) -> {
            if (table.destroyed() || !table.testClearYoung(gs, ge - gs, clear)) return;
            any[0] = true;
            if (flush) tlbs.flushVmidRange(vmid, gs, ge - gs);
        });
        if (any[0] && clear) young.incrementAndGet();
        return any[0];
    }

    /** A guest-physical range {@code [start, end)}. */
    @FunctionalInterface
    private interface GpaRange {
        void accept(long start, long end);
    }

    /**
     * Calls {@code action} with the guest-physical range (whole pages) backed by host
     * {@code [start, end)} in each memslot of {@code mm} the host range intersects.
     */
    private void forEachGuestRange(AddressSpace mm, long start, long end, GpaRange action) {
        for (Memslot s : slots.snapshot()) {
            if (s.mm() != mm) continue;
            long hs = Math.max(start, s.hva()), he = Math.min(end, s.hva() + s.size());
            if (hs >= he) continue;
            action.accept(s.gpaOfHva(hs) & -pageSize, (s.gpaOfHva(he - 1) & -pageSize) + pageSize);
        }
    }
}
