package dev.ptlab.core.table;

/**
 * Where a subtree detached by an operation goes (the kernel's {@code free_unlinked_table}).
 * Exclusive walks may free at once: no software walker can be inside, and the break already
 * invalidated the TLBs. Shared walks must defer the free past every walker that could still hold
 * a reference (a grace period).
 */
@FunctionalInterface
public interface FreeUnlinkedHook {
    /** Frees {@code subtree} now. */
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
