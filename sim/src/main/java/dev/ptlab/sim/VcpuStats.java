package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.FaultType;
import org.HdrHistogram.Histogram;

/**
 * One vCPU's counters, written only by the thread running it (plain fields, no sharing) and
 * merged into a phase report when the phase is over.
 */
public final class VcpuStats {
    static final int LEVELS = Granule.LAST_LEVEL - Granule.FIRST_LEVEL + 1;

    /** Guest accesses attempted (each may fault several times). */
    long accesses;
    /** Stage-2 faults taken, by {@link FaultType} ordinal and level + 1. */
    final long[][] faults = new long[FaultType.values().length][LEVELS];
    /** Faults whose handling ended RACED: another vCPU changed or held the entry; the access re-faults or succeeds. */
    long raced;
    /** Translation faults on an entry that was LOCKED: invalid only because another CPU was inside break-before-make. */
    long spurious;
    /** Accesses that did not complete in the guest, by {@link VmExit} ordinal. */
    final long[] exits = new long[VmExit.values().length];
    /**
     * Faults on an address-space memslot that mapped nothing because an MMU-notifier
     * invalidation ran (or was still running) since the fault read the invalidation sequence;
     * the vCPU re-faults (KVM's mmu_invalidate_retry).
     */
    long seqRetries;
    /** Fault-handling latency in nanoseconds (handler entry to return). */
    final Histogram latency = new Histogram(3_600_000_000_000L, 2);

    public long accesses() { return accesses; }
    public long raced() { return raced; }
    public long spurious() { return spurious; }
    public long seqRetries() { return seqRetries; }

    /** Accesses that ended in {@code exit}. */
    public long exits(VmExit exit) {
        return exits[exit.ordinal()];
    }

    /** Faults outside every memslot, or writes to a read-only slot: exits to the VMM ({@link VmExit#MMIO}). */
    public long mmioExits() { return exits(VmExit.MMIO); }
    /** Accesses beyond the VM's IPA size: an address-size fault injected into the guest ({@link VmExit#ADDRESS_SIZE}). */
    public long addressSizeErrors() { return exits(VmExit.ADDRESS_SIZE); }
    /** Faults whose host page GUP refused (no VMA, or a write to a read-only one): -EFAULT exits ({@link VmExit#EFAULT}). */
    public long efaultExits() { return exits(VmExit.EFAULT); }

    public long faults(FaultType type, int level) {
        return faults[type.ordinal()][level + 1];
    }

    public long faults() {
        long n = 0;
        for (long[] t : faults) for (long v : t) n += v;
        return n;
    }

    public Histogram latency() { return latency; }

    /** Adds {@code o} into this. */
    void add(VcpuStats o) {
        accesses += o.accesses;
        for (int t = 0; t < faults.length; t++) for (int l = 0; l < LEVELS; l++) faults[t][l] += o.faults[t][l];
        raced += o.raced;
        spurious += o.spurious;
        for (int e = 0; e < exits.length; e++) exits[e] += o.exits[e];
        seqRetries += o.seqRetries;
        latency.add(o.latency);
    }

    void reset() {
        accesses = 0;
        for (long[] t : faults) java.util.Arrays.fill(t, 0);
        raced = 0;
        spurious = 0;
        java.util.Arrays.fill(exits, 0);
        seqRetries = 0;
        latency.reset();
    }
}
