package dev.ptlab.core.table;

/**
 * Where a subtree detached by an operation goes (the kernel's {@code free_unlinked_table}).
 * Exclusive walks may free at once: no software walker can be inside, and the break already
 * invalidated the TLBs. Shared walks must defer the free past every walker that could still hold
 * a reference (a grace period).
 */
@FunctionalInterface
public interface FreeUnlinkedHook {
    /**
     * The default: frees at once when the calling thread holds the table's MMU lock for writing
     * (an exclusive walk: no software walker can be inside), otherwise after a grace period of
     * the table's own reclaimer.
     */
    FreeUnlinkedHook DEFAULT = (table, subtree) -> {
        if (table.mmuLock().heldForWrite()) {
            table.freeUnlinked(subtree);
        } else {
            table.reclaimer().defer(() -> table.freeUnlinked(subtree));
        }
    };

    /**
     * Frees {@code subtree} now, whatever the walk. Wrong for shared walks (another shared walker
     * may still be inside the subtree); kept to show, in checking mode, that the use-after-free
     * this causes is caught.
     */
    FreeUnlinkedHook IMMEDIATE = (table, subtree) -> table.freeUnlinked(subtree);

    void free(Stage2PageTable table, UnlinkedTable subtree);

    /**
     * Frees after a grace period of {@code reclaimer}: what shared (read-locked) walks need,
     * since another shared walker may still be reading the detached subtree.
     */
    static FreeUnlinkedHook deferredVia(dev.ptlab.core.mem.Reclaimer reclaimer) {
        if (reclaimer == null) throw new IllegalArgumentException("reclaimer: null");
        return (table, subtree) -> reclaimer.defer(() -> table.freeUnlinked(subtree));
    }
}
