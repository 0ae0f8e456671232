package dev.ptlab.core.mem;

/**
 * What {@link CacheMaintenance} counts: calls and bytes of each operation, with the names reports
 * and JSON give them, and the part of them issued inside a break-before-make window.
 * {@link CacheMaintenance} keeps one adder per constant.
 */
public enum CacheCounter {
    /** D-cache clean and invalidate to the point of coherency: calls. */
    DCACHE_OPS("dcache-ops"),
    /** ... and the bytes they covered. */
    DCACHE_BYTES("dcache-bytes"),
    /** I-cache invalidate to the point of unification: calls. */
    ICACHE_OPS("icache-ops"),
    /** ... and the bytes they covered. */
    ICACHE_BYTES("icache-bytes"),
    /**
     * Operations of either kind issued while a valid entry was broken: after the break of a
     * valid entry (swapped for LOCKED, its TLBI done) and before the make of its replacement.
     * Every vCPU touching that range faults meanwhile, so this is maintenance the guest waits
     * for (a table coalesced into a block without FWB cleans the whole block here; Linux 7.1-rc4
     * {@code stage2_map_walker_try_leaf} cleans between {@code stage2_try_break_pte} and
     * {@code stage2_make_pte}).
     */
    BBM_CMO_OPS("bbm-cmo-ops"),
    /** ... and the bytes they covered. */
    BBM_CMO_BYTES("bbm-cmo-bytes");

    private final String key;

    CacheCounter(String key) {
        this.key = key;
    }

    /** The counter's name in reports and JSON. */
    public String key() {
        return key;
    }
}
