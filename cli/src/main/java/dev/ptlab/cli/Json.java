package dev.ptlab.cli;

/**
 * A one-line JSON object built field by field: the few value kinds ptlab prints (strings,
 * numbers, booleans, nested objects), with string escaping. Keys keep their insertion order.
 */
final class Json {
    private final StringBuilder sb = new StringBuilder("{");
    private boolean first = true;

    private Json key(String k) {
        if (!first) sb.append(',');
        first = false;
        quote(sb, k);
        sb.append(':');
        return this;
    }

    Json put(String k, String v) {
        key(k);
        quote(sb, v);
        return this;
    }

    Json put(String k, long v) {
        key(k).sb.append(v);
        return this;
    }

    Json put(String k, boolean v) {
        key(k).sb.append(v);
        return this;
    }

    /** A hex string value, {@code "0x..."}: 64-bit values do not survive JSON numbers in every reader. */
    Json hex(String k, long v) {
        return put(k, Numbers.hex(v));
    }

    Json put(String k, Json nested) {
        key(k).sb.append(nested);
        return this;
    }

    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        sb.append('"');
    }

    @Override
    public String toString() {
        return sb + "}";
    }
}
