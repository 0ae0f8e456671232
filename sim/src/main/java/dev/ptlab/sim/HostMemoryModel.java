package dev.ptlab.sim;

import java.util.Locale;

/**
 * Where a workload's guest memory comes from ({@link KvmPageTableSelftest}, {@link RandomAccess}).
 */
public enum HostMemoryModel {
    /**
     * Anonymous memory of a simulated host process ({@code dev.ptlab.mm}): the memslot is a range
     * of an address space, faults resolve the host page through GUP, and MMU notifiers keep
     * stage-2 coherent with the host page table (as KVM does).
     */
    PROCESS,
    /**
     * A fixed, contiguous host-physical range: stage-2 maps {@code hostPa + (gpa - slot start)}
     * and no host page table exists (the simulator before issue 7; kept for comparison).
     */
    FIXED;

    /** {@code process} or {@code fixed}, as the command line spells it. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static HostMemoryModel parse(String text) {
        if (text != null) for (HostMemoryModel m : values()) if (m.label().equalsIgnoreCase(text.trim())) return m;
        throw new IllegalArgumentException("host memory: " + text + " is not one of process, fixed");
    }

    @Override
    public String toString() {
        return label();
    }
}
