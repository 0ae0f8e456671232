package dev.ptlab.sim;

import dev.ptlab.core.hw.FaultType;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Everything one phase of a simulation cost: the vCPUs' own counts (faults by type and level,
 * re-faults after RACED or an invalidation, spurious faults, exits, latency; {@link VcpuCounter}),
 * the table's, TLBs', caches' and table memory's counters over the phase ({@link VmCounter}), and
 * the host side's ({@link HostCounter}: MMU-notifier events and the host address spaces' own
 * counts).
 */
public final class PhaseReport {
    /**
     * The VM's and the host side's counters in report order: the VM's changes over the phase,
     * then the host side's, then the VM's levels at its end (peak and frames in use).
     */
    public static final List<PhaseCounter> COUNTERS = reportOrder();

    private final String name;
    private final long wallNanos;
    private final VcpuStats vcpus;
    /** By {@link VmCounter} ordinal. */
    private final long[] vm;
    /** By {@link HostCounter#index}. */
    private final long[] host;

    private PhaseReport(String name, long wallNanos, VcpuStats vcpus, long[] vm, long[] host) {
        this.name = name;
        this.wallNanos = wallNanos;
        this.vcpus = vcpus;
        this.vm = vm;
        this.host = host;
    }

    private static List<PhaseCounter> reportOrder() {
        List<PhaseCounter> l = new ArrayList<>();
        for (VmCounter c : VmCounter.values()) if (!c.level()) l.add(c);
        l.addAll(HostCounter.ALL);
        for (VmCounter c : VmCounter.values()) if (c.level()) l.add(c);
        return Collections.unmodifiableList(l);
    }

    public String name() { return name; }
    public long wallNanos() { return wallNanos; }
    public VcpuStats vcpus() { return vcpus; }

    public long get(PhaseCounter c) {
        return c.valueIn(this);
    }

    public long get(VmCounter c) {
        return vm[c.ordinal()];
    }

    public long get(HostCounter c) {
        return host[c.index];
    }

    /** {@link #COUNTERS} by key with their values, in report order. */
    public Map<String, Long> counters() {
        Map<String, Long> m = new LinkedHashMap<>();
        for (PhaseCounter c : COUNTERS) m.put(c.key(), c.valueIn(this));
        return m;
    }

    /** The value of the counter named {@code key} (one of {@link #COUNTERS}). */
    public long counter(String key) {
        for (PhaseCounter c : COUNTERS) if (c.key().equals(key)) return c.valueIn(this);
        throw new IllegalArgumentException("counter: " + key + " is not one of " + counters().keySet());
    }

    public long faults() { return vcpus.faults(); }

    public long faults(FaultType type) {
        long n = 0;
        for (int l = -1; l <= 3; l++) n += vcpus.faults(type, l);
        return n;
    }

    /** The VM's and host side's counters at one moment; a phase is the difference of two. */
    static final class Snapshot {
        final long[] vm = new long[VmCounter.values().length];
        final long[] host = new long[HostCounter.ALL.size()];

        Snapshot(Vm v) {
            for (VmCounter c : VmCounter.values()) vm[c.ordinal()] = c.read(v);
            for (HostCounter c : HostCounter.ALL) host[c.index] = c.read(v);
        }
    }

    static PhaseReport of(String name, long wallNanos, VcpuStats vcpus, Snapshot before, Snapshot after) {
        long[] vm = new long[before.vm.length];
        for (VmCounter c : VmCounter.values()) {
            int i = c.ordinal();
            vm[i] = c.level() ? after.vm[i] : after.vm[i] - before.vm[i];
        }
        long[] host = new long[before.host.length];
        for (int i = 0; i < host.length; i++) host[i] = after.host[i] - before.host[i];
        return new PhaseReport(name, wallNanos, vcpus, vm, host);
    }
}
