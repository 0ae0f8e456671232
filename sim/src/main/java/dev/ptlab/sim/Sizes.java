package dev.ptlab.sim;

/** Byte sizes as people read them: {@code 4K}, {@code 2M}, {@code 1G}, else hex. */
public final class Sizes {
    private Sizes() {}

    /** {@code 1G}, {@code 2M}, {@code 4K} when exact, else bytes in hex. */
    public static String format(long bytes) {
        if (bytes > 0) {
            if (bytes % (1L << 40) == 0) return bytes / (1L << 40) + "T";
            if (bytes % (1L << 30) == 0) return bytes / (1L << 30) + "G";
            if (bytes % (1L << 20) == 0) return bytes / (1L << 20) + "M";
            if (bytes % (1L << 10) == 0) return bytes / (1L << 10) + "K";
        }
        return "0x" + Long.toHexString(bytes);
    }
}
