package dev.ptlab.cli;

import java.util.Locale;

/**
 * Numbers as scenario files and the command line write them, and the readable forms the output
 * uses. Numbers are decimal or {@code 0x} hex, with optional {@code _} separators; sizes may add a
 * binary K/M/G/T suffix. A parse failure is an {@link IllegalArgumentException} whose message
 * says what is wrong and what was expected, naming the argument.
 */
public final class Numbers {
    private Numbers() {}

    private static final String NUMBER_EXPECTED = "expected decimal digits or 0x followed by hex digits";

    /** Parses an address or count: decimal or 0x-hex, no suffix, non-negative. */
    public static long parseNumber(String what, String text) {
        String t = text.replace("_", "").toLowerCase(Locale.ROOT);
        int radix = 10;
        if (t.startsWith("0x")) {
            radix = 16;
            t = t.substring(2);
        }
        if (t.isEmpty() || t.startsWith("+") || t.startsWith("-")) {
            throw new IllegalArgumentException(what + " \"" + text + "\" is not a number; " + NUMBER_EXPECTED);
        }
        try {
            long v = Long.parseUnsignedLong(t, radix);
            if (v < 0) {
                throw new IllegalArgumentException(what + " \"" + text + "\" is too large; expected a value below 2^63");
            }
            return v;
        } catch (NumberFormatException e) {
            for (int i = 0; i < t.length(); i++) {
                if (Character.digit(t.charAt(i), radix) < 0) {
                    throw new IllegalArgumentException(what + " \"" + text + "\" is not a number; " + NUMBER_EXPECTED);
                }
            }
            throw new IllegalArgumentException(what + " \"" + text + "\" is too large; expected a value below 2^63");
        }
    }

    /** Parses a size: a number with an optional binary K, M, G or T suffix (case-insensitive). */
    public static long parseSize(String what, String text) {
        String t = text.replace("_", "");
        int shift = 0;
        int i = t.length();
        // A suffix is whatever trails the digits; hex digits are never read as one ("0x1b" is 27).
        boolean hex = t.toLowerCase(Locale.ROOT).startsWith("0x");
        while (i > 0 && !isDigit(t.charAt(i - 1), hex)) i--;
        String digits = t.substring(0, i);
        String suffix = t.substring(i);
        if (!suffix.isEmpty()) {
            switch (suffix.toUpperCase(Locale.ROOT)) {
                case "K": shift = 10; break;
                case "M": shift = 20; break;
                case "G": shift = 30; break;
                case "T": shift = 40; break;
                default:
                    if (digits.isEmpty() || digits.equalsIgnoreCase("0x")) {
                        throw new IllegalArgumentException(what + " \"" + text + "\" is not a size; expected a number with an "
                                + "optional K, M, G or T suffix (e.g. 4K, 2M, 1G, 0x3000)");
                    }
                    throw new IllegalArgumentException(what + " \"" + text + "\" has an unknown suffix \"" + suffix
                            + "\"; expected a number with an optional K, M, G or T suffix (e.g. 4K, 2M, 1G, 0x3000)");
            }
        }
        if (digits.isEmpty()) {
            throw new IllegalArgumentException(what + " \"" + text + "\" is not a size; expected a number with an "
                    + "optional K, M, G or T suffix (e.g. 4K, 2M, 1G, 0x3000)");
        }
        long v = parseNumber(what, digits);
        if (shift > 0 && v > (Long.MAX_VALUE >>> shift)) {
            throw new IllegalArgumentException(what + " \"" + text + "\" is too large; expected a value below 2^63");
        }
        return v << shift;
    }

    private static boolean isDigit(char c, boolean hex) {
        return hex ? Character.digit(c, 16) >= 0 || c == 'x' || c == 'X' : Character.isDigit(c);
    }

    /** {@code 0x...} lower-case hex. */
    public static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /**
     * A byte count in the largest binary unit that divides it exactly: 4K, 2M, 1G, 1536M, 12345
     * (bytes when no unit divides it).
     */
    public static String size(long bytes) {
        String[] units = {"E", "P", "T", "G", "M", "K"};
        for (int i = 0; i < units.length; i++) {
            int shift = 60 - 10 * i;
            long unit = 1L << shift;
            if (bytes != 0 && bytes % unit == 0) return (bytes >>> shift) + units[i];
        }
        return Long.toString(bytes);
    }

    /**
     * A byte count for people: exact when the largest unit it reaches, or the next smaller one,
     * divides it with at most four digits ({@code 2M}, {@code 2052K}, {@code 1030M}), else two
     * decimals of the largest unit ({@code 1.01G}); below 1K, plain bytes ({@code 0}, {@code 512}).
     */
    public static String bytes(long bytes) {
        String[] units = {"E", "P", "T", "G", "M", "K", ""};
        for (int i = 0; i < units.length - 1; i++) {
            int shift = 60 - 10 * i;
            if (bytes >>> shift == 0) continue;
            if ((bytes & ((1L << shift) - 1)) == 0) return (bytes >>> shift) + units[i];
            int smaller = shift - 10;
            if ((bytes & ((1L << smaller) - 1)) == 0 && (bytes >>> smaller) < 10_000) {
                return (bytes >>> smaller) + units[i + 1];
            }
            return String.format(Locale.ROOT, "%.2f%s", (double) bytes / (1L << shift), units[i]);
        }
        return Long.toString(bytes);
    }

    /** An inclusive range {@code 0xstart-0xlast} for {@code [start, start + size)}. */
    public static String range(long start, long size) {
        return hex(start) + "-" + hex(start + size - 1);
    }
}
