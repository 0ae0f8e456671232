package dev.ptlab.core.mem;

/**
 * What {@link CacheMaintenance} counts: calls and bytes of each operation, with the names reports
 * and JSON give them. {@link CacheMaintenance} keeps one adder per constant.
 */
public enum CacheCounter {
    /** D-cache clean and invalidate to the point of coherency: calls. */
    DCACHE_OPS("dcache-ops"),
    /** ... and the bytes they covered. */
    DCACHE_BYTES("dcache-bytes"),
    /** I-cache invalidate to the point of unification: calls. */
    ICACHE_OPS("icache-ops"),
    /** ... and the bytes they covered. */
    ICACHE_BYTES("icache-bytes");

    private final String key;

    CacheCounter(String key) {
        this.key = key;
    }

    /** The counter's name in reports and JSON. */
    public String key() {
        return key;
    }
}
