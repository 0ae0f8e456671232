package dev.ptlab.sim;

/**
 * What a running workload has done, for a progress display on another thread: the VM being run
 * (null before it exists and after it is destroyed) and the number of guest accesses the whole
 * run will make.
 */
public final class Progress {
    private volatile Vm vm;
    private volatile long expected;
    private volatile long done;

    void start(Vm vm, long expectedAccesses) {
        this.expected = expectedAccesses;
        this.vm = vm;
    }

    void finish() {
        Vm v = vm;
        if (v != null) done = v.accessesSoFar();
        vm = null;
    }

    /** Fraction of the expected accesses made so far, 0..1. */
    public double fraction() {
        Vm v = vm;
        long e = expected;
        if (e <= 0) return 0;
        long n = v != null ? v.accessesSoFar() : done;
        return Math.min(1.0, (double) n / e);
    }
}
