package dev.ptlab.core.hw;

import java.util.Locale;

/** The kind of access a translation is for. EXEC is a privileged (EL1, or EL2 for hyp) fetch. */
public enum Access {
    READ, WRITE, EXEC;

    public static Access parse(String text) {
        switch (text.trim().toLowerCase(Locale.ROOT)) {
            case "read": case "r": return READ;
            case "write": case "w": return WRITE;
            case "exec": case "x": return EXEC;
            default: throw new IllegalArgumentException("access: \"" + text + "\" is not one of read, write, exec");
        }
    }

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
