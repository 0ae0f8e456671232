package dev.ptlab.sim;

import java.util.Locale;

/**
 * One counter of a {@link PhaseReport}: its name in JSON, its name in text, and where ptlab's
 * outputs show it. The counters come in families, each an enum or a registry of its own —
 * {@link VmCounter} (the stage-2 table, TLB invalidation by scope, cache maintenance, table
 * memory), {@link HostCounter} (MMU notifiers and the host address spaces) and
 * {@link VcpuCounter} (the vCPUs' own counts) — and every output iterates them: JSON lists every
 * counter by {@link #key()}, text lists the {@link Text#NON_ZERO} ones by {@link #label()} and
 * has table columns for the {@link Text#COLUMN} ones, and {@code ptlab compare} has a row for the
 * {@link #compared()} ones. A counter's entry says all of this, so a new one is one entry (tests
 * check that the outputs agree with it).
 *
 * <p>Adding one: where it is counted (for a table counter, a {@code TableCounter} constant and
 * its count in the visitor), its entry in its family here ({@link VmCounter}, {@link VcpuCounter};
 * a new {@code MmEvent} or {@code NotifierEvent} needs none), and, if the entry says so, its
 * column in the text table or row in {@code ptlab compare} (a test fails until they agree).
 * JSON and the non-zero list follow the entry.
 */
public interface PhaseCounter {
    /** How the text report shows a counter. */
    enum Text {
        /** In a column of the phase table (alone or with others, as in {@code tlbi i/l/r/v}). */
        COLUMN,
        /** In the per-phase list of non-zero counts below the table, as {@code label value}. */
        NON_ZERO,
        /** Only in JSON: too fine-grained for the table. */
        JSON_ONLY
    }

    /**
     * What a counter's entry says about it.
     *
     * @param key its name in JSON ({@code bbm}, {@code host-fault}, {@code seqRetries}, ...)
     * @param label its name in text listings ({@code seq-retries}): the key unless the key is JSON-cased
     * @param text where the text report shows it
     * @param compared whether {@code ptlab compare} has a row (of its own or shared) for it
     */
    record Entry(String key, String label, Text text, boolean compared) {
        public Entry(String key, Text text, boolean compared) {
            this(key, key, text, compared);
        }
    }

    Entry entry();

    default String key() {
        return entry().key();
    }

    default String label() {
        return entry().label();
    }

    default Text text() {
        return entry().text();
    }

    default boolean compared() {
        return entry().compared();
    }

    /** The counter's value over {@code phase}. */
    long valueIn(PhaseReport phase);

    /** An enum constant as reports spell it: {@code EXCLUSIVE_RESTORE} is {@code exclusive-restore}. */
    static String keyOf(Enum<?> constant) {
        return constant.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }
}
