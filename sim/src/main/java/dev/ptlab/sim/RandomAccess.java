package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.Access;
import java.util.SplittableRandom;

/**
 * A random-access workload: each vCPU makes a fixed number of accesses to random pages of one
 * memslot, most of them to a hot set shared by all vCPUs (so they fault on the same blocks and
 * race), with a mix of reads, writes and instruction fetches. Every vCPU draws from its own
 * seeded generator, so a run with one vCPU is reproducible exactly; with more, the counts depend
 * on the interleaving, the set of accesses does not.
 */
public final class RandomAccess {
    /** The workload's knobs beyond the memslot's layout. */
    public static final class Options extends WorkloadOptions<Options> {
        long accesses = 1_000_000;
        double hotFraction = 0.05;
        double hotProbability = 0.9;
        double writeFraction = 0.3;
        double execFraction = 0.05;
        long seed = 1;

        public static Options defaults() {
            return new Options();
        }

        /** Accesses per vCPU. */
        public Options accesses(long n) { this.accesses = n; return this; }
        /** Share of the pages that are hot (0..1]. */
        public Options hotFraction(double f) { this.hotFraction = f; return this; }
        /** Probability that an access goes to the hot set. */
        public Options hotProbability(double p) { this.hotProbability = p; return this; }
        public Options writeFraction(double f) { this.writeFraction = f; return this; }
        public Options execFraction(double f) { this.execFraction = f; return this; }
        public Options seed(long s) { this.seed = s; return this; }

        public long accesses() { return accesses; }
        public long seed() { return seed; }
    }

    private RandomAccess() {}

    /** Runs the workload as one phase, {@code random}, on a fresh VM, then destroys it. */
    public static RunResult run(VmConfig config, Options o) {
        return run(config, o, new Progress());
    }

    /** {@link #run(VmConfig, Options)}, publishing its progress to {@code progress}. */
    public static RunResult run(VmConfig config, Options o, Progress progress) {
        check(o);
        long base = o.slotBase(config);
        Vm vm = new Vm(config);
        RunResult r = new RunResult();
        progress.start(vm, o.accesses * o.vcpus);
        GuestMemory memory = null;
        try {
            memory = GuestMemory.add(vm, base, o.memory, o.backing);
            for (int i = 0; i < o.vcpus; i++) vm.createVcpu();
            Granule g = config.granule();
            long pages = o.memory / g.pageSize();
            long hot = Math.max(1, (long) (pages * o.hotFraction));
            long page = g.pageSize();
            r.phases.add(Simulation.runPhase(vm, "random", (v, i) -> {
                SplittableRandom rnd = new SplittableRandom(o.seed * 0x9E3779B97F4A7C15L + i);
                for (long n = 0; n < o.accesses; n++) {
                    long p = pickPage(rnd, hot, pages, o.hotProbability);
                    double k = rnd.nextDouble();
                    Access a = k < o.writeFraction ? Access.WRITE : k < o.writeFraction + o.execFraction ? Access.EXEC : Access.READ;
                    v.access(base + p * page + (rnd.nextInt((int) page) & ~7), a);
                }
            }));
            r.tableAtEnd = TableSnapshot.of(vm.table());
        } finally {
            r.endRun(progress, vm, memory);
        }
        return r;
    }

    /** A random page number below {@code pages}: one of the first {@code hot} with probability {@code hotProbability}. */
    static long pickPage(SplittableRandom rnd, long hot, long pages, double hotProbability) {
        return rnd.nextDouble() < hotProbability ? rnd.nextLong(hot) : rnd.nextLong(pages);
    }

    static void check(Options o) {
        if (o.accesses < 0) throw new IllegalArgumentException("accesses: " + o.accesses + " is negative");
        if (!(o.hotFraction > 0 && o.hotFraction <= 1)) throw new IllegalArgumentException("hot fraction: " + o.hotFraction + " is outside (0, 1]");
        if (!(o.hotProbability >= 0 && o.hotProbability <= 1)) {
            throw new IllegalArgumentException("hot probability: " + o.hotProbability + " is outside [0, 1]");
        }
        if (!(o.writeFraction >= 0 && o.execFraction >= 0 && o.writeFraction + o.execFraction <= 1)) {
            throw new IllegalArgumentException("write/exec fractions: " + o.writeFraction + " + " + o.execFraction + " must be in [0, 1]");
        }
    }
}
