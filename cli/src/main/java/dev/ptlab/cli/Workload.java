package dev.ptlab.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.sim.Progress;
import dev.ptlab.sim.RunResult;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.WorkloadOptions;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;

/**
 * One workload {@code ptlab run --workload NAME} and {@code ptlab compare} can run: its name, the
 * options only it uses, the run, and the parts of the text report and JSON that only it has
 * ({@link SimulationRun} prints what every run has: the phases, the host side, the totals and
 * the memory left at the end; {@link RunResult#passed()} says whether it passed). The workloads
 * are {@link #ALL}, looked up by name.
 *
 * <p>Adding one: the workload in {@code sim} (its options extending
 * {@code WorkloadOptions}, its result extending {@link RunResult} and overriding
 * {@link RunResult#passed()} if it checks more), a subclass of this class, one line in
 * {@link #ALL}, its name in {@code --workload}'s help (a test checks it is there), its test and
 * its entry in the docs.
 *
 * @param <R> what a run of it produces
 */
abstract class Workload<R extends RunResult> {
    /** Every workload, in the order the error for an unknown name lists them. */
    static final List<Workload<?>> ALL = List.of(new SelftestWorkload(), new RandomWorkload(), new DeviceAtomicsWorkload());

    /** {@code --workload}'s value. */
    final String name;
    /** The first line of the text report names it: {@code ptlab run: TITLE on a simulated VM}. */
    final String title;
    private final List<String> aliases;

    Workload(String name, String title, String... aliases) {
        this.name = name;
        this.title = title;
        this.aliases = List.of(aliases);
    }

    /** The workload {@code text} names (its name or an alias, any case). */
    static Workload<?> named(String text) {
        String t = text.trim().toLowerCase(Locale.ROOT);
        List<String> names = new ArrayList<>();
        for (Workload<?> w : ALL) {
            if (w.name.equals(t) || w.aliases.contains(t)) return w;
            names.add(w.name);
        }
        throw new IllegalArgumentException("--workload: " + text + " is not one of " + String.join(", ", names));
    }

    /**
     * The options only some workloads read, and which: given to any other workload they would be
     * silently ignored, so {@link #checkOwnOptions} refuses them.
     */
    static final Map<String, List<String>> OWN_OPTIONS = Map.of(
            "--devices", List.of("device-atomics"),
            "--accesses", List.of("random", "device-atomics"),
            "--hot", List.of("random", "device-atomics"),
            "--seed", List.of("random", "device-atomics"));

    /**
     * Refuses an option the command line gave ({@code given}) that this workload does not read,
     * naming the workloads that do.
     */
    void checkOwnOptions(Predicate<String> given) {
        for (Map.Entry<String, List<String>> e : new java.util.TreeMap<>(OWN_OPTIONS).entrySet()) {
            if (!e.getValue().contains(name) && given.test(e.getKey())) {
                throw new IllegalArgumentException(e.getKey() + ": applies to --workload " + String.join(" and ", e.getValue())
                        + ", not " + name + "; expected it left out");
            }
        }
    }

    /** The name JSON's {@code workload} field gives it. */
    String jsonName() {
        return name;
    }

    /**
     * Checks the options only this workload uses, before anything runs; by default, that none of
     * the selftest's own options was given.
     *
     * @throws IllegalArgumentException naming the option
     */
    void check(SimulationOptions options) {
        String given = options.modes != null ? "-m" : options.physOffset != null ? "-p" : options.partition ? "--partition"
                : options.schedule != null ? "--schedule" : options.hostIpaLimit != null ? "--host-ipa-limit"
                : options.hostGranules != null ? "--host-granules" : null;
        if (given != null) throw new IllegalArgumentException(given + " applies to the selftest workload only");
    }

    /** Whether this is the selftest, whose VM takes its IPA size from its guest modes. */
    boolean selftest() {
        return false;
    }

    /**
     * Checks that the memslot {@code layout} fits {@code config} before anything runs.
     *
     * @throws IllegalArgumentException naming the option
     */
    void checkLayout(VmConfig config, WorkloadOptions<?> layout, SimulationOptions options) {
        layout.slotBase(config);
    }

    /** The report's second line: what ran, on what. */
    String describe(VmConfig config, WorkloadOptions<?> layout, SimulationOptions options) {
        return SimulationRun.describe(config, layout);
    }

    /** The report's body before the totals: by default the phase table, cache maintenance and the host side's non-zero counts. */
    void printPhases(PrintWriter out, R result, VmConfig config) {
        SimulationRun.printPhases(out, result.phases, config);
    }

    /** Runs it on a fresh VM of {@code config} with the memslot {@code layout} and its own options from {@code options}. */
    abstract R run(VmConfig config, WorkloadOptions<?> layout, SimulationOptions options, Progress progress);

    /** Its own lines of the text report, after the totals and before the memory left at the end. */
    abstract void print(PrintWriter out, R result);

    /** Its own fields of the JSON document, after the ones every run has. */
    abstract void writeJson(ObjectNode root, R result);

    /** {@link #run}, keeping the result with the workload that prints it. */
    final Run<R> start(VmConfig config, WorkloadOptions<?> layout, SimulationOptions options, Progress progress) {
        return new Run<>(this, run(config, layout, options, progress));
    }

    /** A finished run of a workload. */
    static final class Run<R extends RunResult> {
        final Workload<R> workload;
        final R result;

        private Run(Workload<R> workload, R result) {
            this.workload = workload;
            this.result = result;
        }

        void print(PrintWriter out) {
            workload.print(out, result);
        }

        void printPhases(PrintWriter out, VmConfig config) {
            workload.printPhases(out, result, config);
        }

        void writeJson(ObjectNode root) {
            workload.writeJson(root, result);
        }
    }
}
