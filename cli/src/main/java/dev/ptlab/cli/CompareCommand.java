package dev.ptlab.cli;

import dev.ptlab.sim.HostCounter;
import dev.ptlab.sim.PhaseCounter;
import dev.ptlab.sim.PhaseReport;
import dev.ptlab.sim.RunResult;
import dev.ptlab.sim.VcpuCounter;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.VmCounter;
import dev.ptlab.sim.WorkloadOptions;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.ToDoubleFunction;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code ptlab compare --policy KEY=V1,V2...}: the same simulation under each policy value, side by side. */
@Command(name = "compare",
        header = "Run the simulation once per value of one policy and print the metrics side by side.",
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "Runs the kvm_page_table_test simulation (the same options as ptlab run) once for each value of the "
                + "policy KEY, everything else equal, and prints each phase's metrics in one column per value with the "
                + "ratio of every value to the first.",
            "Policies: coalesce=install-first,legacy  eager-split=0,2M,...  fault-lock=shared,write  checking=off,on  "
                + "host-memory=process,fixed  and the hardware features fwb=on,off  range-tlbi=on,off  hardware-af=on,off  "
                + "xnx=on,off"},
        footer = {"", "Example: ptlab compare --policy coalesce=install-first,legacy --backing thp --memory 256M --vcpus 2",
            "         ptlab compare --policy fwb=on,off --backing thp --memory 64M --vcpus 1",
            "", "Wall times compare runs in one process on a possibly busy machine: repeat before trusting a small ratio.",
            "", "Exit codes: 0 success, 1 a run failed its own checks (dirty log, leaked frames), 2 bad options."})
final class CompareCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    HelpOption help;

    @Mixin
    SimulationOptions sim;

    @Option(names = "--policy", required = true, paramLabel = "KEY=V1,V2",
            description = "the policy to vary and its values: coalesce, eager-split, fault-lock, checking, host-memory, fwb, "
                    + "range-tlbi, hardware-af or xnx")
    String policy;

    @Option(names = "--no-warmup", description = "measure the first runs (by default every configuration runs once unmeasured "
            + "first, so the JIT has compiled the fault path for all of them)")
    boolean noWarmup;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String key;
        String[] values;
        List<VmConfig> configs = new ArrayList<>();
        WorkloadOptions.Layout options;
        try {
            int eq = policy.indexOf('=');
            if (eq <= 0 || eq == policy.length() - 1) {
                throw new IllegalArgumentException("--policy: " + policy + " is not KEY=V1,V2 (e.g. coalesce=install-first,legacy)");
            }
            key = policy.substring(0, eq).trim();
            values = policy.substring(eq + 1).split(",");
            if (values.length < 2) throw new IllegalArgumentException("--policy: " + policy + " names one value; give two or more to compare");
            String varied = "--" + key;
            if (spec.findOption(varied) != null && spec.commandLine().getParseResult().hasMatchedOption(varied)) {
                throw new IllegalArgumentException(varied + ": conflicts with --policy " + policy + ", which sets " + key
                        + " for each run; expected one of the two");
            }
            for (String v : values) configs.add(configFor(key, v.trim()));
            options = sim.layout();
            sim.workload().checkOwnOptions(spec.commandLine().getParseResult()::hasMatchedOption);
            for (VmConfig c : configs) options.slotBase(c);
        } catch (IllegalArgumentException e) {
            err.println(Failures.optionLine("compare", e.getMessage()));
            return Main.EXIT_ERROR;
        }
        List<RunResult> results = new ArrayList<>();
        boolean ok = true;
        int runs = configs.size() * (noWarmup ? 1 : 2);
        int[] finished = {0};
        dev.ptlab.sim.Progress current = new dev.ptlab.sim.Progress();
        try (Progress p = Progress.start(err, "comparing", () -> (finished[0] + current.fraction()) / runs)) {
            if (!noWarmup) {
                for (VmConfig c : configs) {
                    sim.run(c, current);
                    finished[0]++;
                }
            }
            for (VmConfig c : configs) {
                RunResult r = sim.run(c, current).result;
                finished[0]++;
                ok &= r.passed();
                results.add(r);
            }
        }
        out.println("ptlab compare: " + key + " = " + String.join(" vs ", values));
        out.println("  " + SimulationRun.describe(configs.get(0), options).replaceAll(", " + described(key) + " [^,]*", "")
                + (sim.partition ? ", partitioned" : ""));
        out.println();
        print(out, values, results);
        return ok ? Main.EXIT_OK : Main.EXIT_FAILED_EXPECTATIONS;
    }

    /** The words the run's description ({@link VmConfig#toString}) gives policy {@code key}. */
    private static String described(String key) {
        switch (key) {
            case "fault-lock": return "faults";
            case "eager-split": case "host-memory": return key.replace('-', ' ');
            default: return key; // coalesce, checking, and the features, described by their option names
        }
    }

    private VmConfig configFor(String key, String value) {
        SimulationOptions o = sim.copy();
        switch (key) {
            case "coalesce": o.coalesce = value; break;
            case "eager-split": o.eagerSplit = value; break;
            case "fault-lock": o.faultLock = value; break;
            case "host-memory": o.hostMemory = value; break;
            case "checking": o.checking = onOff(key, value); break;
            case "fwb": o.fwb = value; onOff(key, value); break;
            case "range-tlbi": o.rangeTlbi = value; onOff(key, value); break;
            case "hardware-af": o.hardwareAf = value; onOff(key, value); break;
            case "xnx": o.xnx = value; onOff(key, value); break;
            default:
                throw new IllegalArgumentException("--policy: " + key + " is not one of coalesce, eager-split, fault-lock, checking, "
                        + "host-memory, fwb, range-tlbi, hardware-af, xnx");
        }
        return o.config();
    }

    /** A value of an on/off policy. */
    private static boolean onOff(String key, String value) {
        if (!value.equals("on") && !value.equals("off")) throw new IllegalArgumentException("--policy: " + key + "=" + value + "; expected on or off");
        return value.equals("on");
    }

    private static void print(PrintWriter out, String[] values, List<RunResult> results) {
        StringBuilder head = new StringBuilder(String.format(Locale.ROOT, "%-12s %-22s", "phase", "metric"));
        for (String v : values) head.append(String.format(Locale.ROOT, " %14s", v.trim()));
        for (int i = 1; i < values.length; i++) head.append(String.format(Locale.ROOT, " %10s", "x" + (i + 1) + "/x1"));
        out.println(head);
        List<String> names = new ArrayList<>();
        for (PhaseReport p : results.get(0).phases) names.add(p.name());
        for (String phase : names) {
            boolean first = true;
            for (Metric m : METRICS) {
                double[] v = new double[results.size()];
                boolean any = m.always;
                for (int i = 0; i < v.length; i++) {
                    v[i] = m.value.applyAsDouble(results.get(i).phase(phase));
                    any |= v[i] != 0;
                }
                if (!any) continue;
                StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "%-12s %-22s", first ? phase : "", m.name));
                first = false;
                for (double x : v) row.append(String.format(Locale.ROOT, " %14s", m.format(x)));
                for (int i = 1; i < v.length; i++) {
                    row.append(String.format(Locale.ROOT, " %10s", v[0] == 0 ? (v[i] == 0 ? "1.00" : "-") : String.format(Locale.ROOT, "%.2f", v[i] / v[0])));
                }
                out.println(row);
            }
        }
    }

    /** One row of the comparison: its name, whether it shows when zero in every run, its format, its value and the counters it shows. */
    static final class Metric {
        final String name;
        final boolean always;
        final boolean decimal;
        final ToDoubleFunction<PhaseReport> value;
        final List<PhaseCounter> counters;

        Metric(String name, boolean always, boolean decimal, ToDoubleFunction<PhaseReport> value, PhaseCounter... counters) {
            this.name = name;
            this.always = always;
            this.decimal = decimal;
            this.value = value;
            this.counters = List.of(counters);
        }

        /** One counter, shown when any run's is not zero. */
        static Metric of(String name, PhaseCounter c) {
            return new Metric(name, false, false, p -> p.get(c), c);
        }

        String format(double x) {
            return decimal ? String.format(Locale.ROOT, "%.1f", x) : String.format(Locale.ROOT, "%d", (long) x);
        }
    }

    /** The rows, top to bottom; the counters marked {@link PhaseCounter#compared()} are exactly those they show. */
    static final List<Metric> METRICS = List.of(
            new Metric("wall ms", true, true, p -> p.wallNanos() / 1e6),
            new Metric("faults", false, false, PhaseReport::faults),
            Metric.of("raced re-faults", VcpuCounter.RACED),
            Metric.of("seq retries", VcpuCounter.SEQ_RETRIES),
            Metric.of("efault exits", VcpuCounter.EFAULT_EXITS),
            Metric.of("spurious faults", VcpuCounter.SPURIOUS),
            Metric.of("bbm", VmCounter.BBM),
            Metric.of("coalesced", VmCounter.COALESCED),
            Metric.of("invalid-window steps", VmCounter.INVALID_WINDOW_STEPS),
            Metric.of("splits", VmCounter.SPLITS),
            Metric.of("tlbi ipa", VmCounter.TLBI_IPA),
            Metric.of("tlbi local", VmCounter.TLBI_LOCAL),
            Metric.of("tlbi range", VmCounter.TLBI_RANGE),
            Metric.of("tlbi vmid", VmCounter.TLBI_VMID),
            new Metric("cmo ops", false, false, p -> p.get(VmCounter.DCACHE_OPS) + p.get(VmCounter.ICACHE_OPS),
                    VmCounter.DCACHE_OPS, VmCounter.ICACHE_OPS),
            new Metric("cmo MiB", false, true, SimulationRun::cmoMiB, VmCounter.DCACHE_BYTES, VmCounter.ICACHE_BYTES),
            Metric.of("cmo in bbm ops", VmCounter.BBM_CMO_OPS),
            new Metric("cmo in bbm MiB", false, true, p -> p.get(VmCounter.BBM_CMO_BYTES) / 1048576.0, VmCounter.BBM_CMO_BYTES),
            Metric.of("frames peak", VmCounter.FRAMES_PEAK),
            Metric.of("host faults", HostCounter.host(dev.ptlab.mm.MmEvent.FAULT)),
            Metric.of("notifier unmapped", HostCounter.STAGE2_UNMAPPED),
            new Metric("fault p99 us", false, true, p -> p.vcpus().latency().getTotalCount() == 0 ? 0
                    : p.vcpus().latency().getValueAtPercentile(99) / 1000.0));
}
