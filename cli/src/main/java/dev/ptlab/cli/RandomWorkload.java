package dev.ptlab.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.sim.Progress;
import dev.ptlab.sim.RandomAccess;
import dev.ptlab.sim.RunResult;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.WorkloadOptions;
import java.io.PrintWriter;

/** {@code --workload random}: random accesses, mostly to a hot set ({@link RandomAccess}); passes when memory comes back. */
final class RandomWorkload extends Workload<RunResult> {
    RandomWorkload() {
        super("random", "random accesses");
    }

    /** The random-access options {@code random} and {@code device-atomics} share. */
    static RandomAccess.Options options(WorkloadOptions<?> layout, SimulationOptions o) {
        return RandomAccess.Options.defaults().layout(layout).accesses(o.accesses).hotFraction(o.hot).seed(o.seed);
    }

    @Override
    void check(SimulationOptions o) {
        super.check(o);
        checkRandom(o);
    }

    /**
     * The random-access options' own rules (RandomAccess checks the same when it starts), named
     * by their options and checked before any run, so compare refuses them as run does.
     */
    static void checkRandom(SimulationOptions o) {
        if (o.accesses < 0) throw new IllegalArgumentException("--accesses: " + o.accesses + " is negative; expected N >= 0");
        if (!(o.hot > 0 && o.hot <= 1)) throw new IllegalArgumentException("--hot: " + o.hot + " is outside (0, 1]; expected e.g. 0.05");
    }

    @Override
    RunResult run(VmConfig config, WorkloadOptions<?> layout, SimulationOptions o, Progress progress) {
        return RandomAccess.run(config, options(layout, o), progress);
    }

    @Override
    void print(PrintWriter out, RunResult r) {
        SimulationRun.printTableAtEnd(out, r);
    }

    @Override
    void writeJson(ObjectNode root, RunResult r) {}
}
