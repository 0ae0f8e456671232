package dev.ptlab.sim;

import java.util.Locale;

/** Byte sizes as people write them: {@code 4K}, {@code 2M}, {@code 1G}, {@code 0x200000}, {@code 4096}. */
public final class Sizes {
    private Sizes() {}

    /**
     * Parses a size with an optional K, M, G or T suffix (binary), or a 0x hex value.
     *
     * @throws IllegalArgumentException naming {@code what} and the text
     */
    public static long parse(String what, String text) {
        String t = text == null ? "" : text.trim().toUpperCase(Locale.ROOT);
        try {
            if (t.startsWith("0X")) return Long.parseUnsignedLong(t.substring(2), 16);
            long mult = 1;
            if (t.endsWith("B")) t = t.substring(0, t.length() - 1);
            if (t.endsWith("I")) t = t.substring(0, t.length() - 1);
            char c = t.isEmpty() ? ' ' : t.charAt(t.length() - 1);
            switch (c) {
                case 'K': mult = 1L << 10; break;
                case 'M': mult = 1L << 20; break;
                case 'G': mult = 1L << 30; break;
                case 'T': mult = 1L << 40; break;
                default: break;
            }
            if (mult != 1) t = t.substring(0, t.length() - 1);
            long v = Long.parseLong(t);
            if (v < 0 || v > Long.MAX_VALUE / mult) throw new NumberFormatException();
            return v * mult;
        } catch (NumberFormatException | IndexOutOfBoundsException e) {
            throw new IllegalArgumentException(what + ": " + text + " is not a size (expected e.g. 4096, 4K, 2M, 1G or 0x200000)");
        }
    }

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
