package dev.ptlab.core.hw;

import java.util.Locale;

/** Translation fault types the MMU reports, each with the level at which it occurred. */
public enum FaultType {
    TRANSLATION, ACCESS_FLAG, PERMISSION, ADDRESS_SIZE;

    /** Scenario-file form: translation, access-flag, permission, address-size. */
    public String label() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    public static FaultType parse(String text) {
        for (FaultType t : values()) {
            if (t.label().equals(text.trim().toLowerCase(Locale.ROOT))) return t;
        }
        throw new IllegalArgumentException("fault: \"" + text + "\" is not one of translation, access-flag, permission, address-size");
    }
}
