package dev.ptlab.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.sim.HostMemoryModel;
import dev.ptlab.sim.PhaseCounter;
import dev.ptlab.sim.PhaseReport;
import dev.ptlab.sim.RunResult;
import dev.ptlab.sim.Sizes;
import dev.ptlab.sim.VcpuCounter;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.VmCounter;
import dev.ptlab.sim.WorkloadOptions;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import org.HdrHistogram.Histogram;

/**
 * Prints (and writes as JSON) what every simulation run reports, whatever the workload: the
 * phases' table, the host side's non-zero counts, the totals and the memory left at the end; the
 * workload adds its own part ({@link Workload#print}, {@link Workload#writeJson}). The counters
 * come from their registries ({@link PhaseReport#COUNTERS}, {@link VcpuCounter}); the table's
 * columns name the counters they show.
 */
final class SimulationRun {
    private SimulationRun() {}

    /** Every counter of a phase: the vCPUs' own, then the VM's and the host side's, each in report order. */
    static final List<PhaseCounter> ALL_COUNTERS = allCounters();

    private static List<PhaseCounter> allCounters() {
        List<PhaseCounter> l = new ArrayList<>(Arrays.asList(VcpuCounter.values()));
        l.addAll(PhaseReport.COUNTERS);
        return Collections.unmodifiableList(l);
    }

    /** One column of the phase table: header, width (negative: left-aligned), the phase's cell and the counters it shows. */
    static final class Column {
        final String header;
        final int width;
        final Function<PhaseReport, String> cell;
        final List<PhaseCounter> counters;

        Column(String header, int width, Function<PhaseReport, String> cell, PhaseCounter... counters) {
            this.header = header;
            this.width = width;
            this.cell = cell;
            this.counters = List.of(counters);
        }

        /** One counter's value. */
        static Column of(String header, int width, PhaseCounter c) {
            return new Column(header, width, p -> Long.toString(p.get(c)), c);
        }

        /** Several counters' values joined by {@code /}. */
        static Column joined(String header, int width, PhaseCounter... cs) {
            return new Column(header, width, p -> {
                StringBuilder s = new StringBuilder();
                for (PhaseCounter c : cs) s.append(s.length() == 0 ? "" : "/").append(p.get(c));
                return s.toString();
            }, cs);
        }

        String format(String text) {
            return String.format(Locale.ROOT, "%" + width + "s", text);
        }
    }

    /** The phase table, left to right. */
    static final List<Column> COLUMNS = List.of(
            new Column("phase", -12, PhaseReport::name),
            new Column("wall ms", 9, p -> decimal(p.wallNanos() / 1e6)),
            new Column("faults", 9, p -> Long.toString(p.faults())),
            new Column("transl", 9, p -> Long.toString(p.faults(FaultType.TRANSLATION))),
            new Column("perm", 9, p -> Long.toString(p.faults(FaultType.PERMISSION))),
            new Column("af", 7, p -> Long.toString(p.faults(FaultType.ACCESS_FLAG))),
            Column.of("raced", 8, VcpuCounter.RACED),
            Column.of("spurious", 8, VcpuCounter.SPURIOUS),
            Column.of("bbm", 8, VmCounter.BBM),
            Column.of("coalesc", 7, VmCounter.COALESCED),
            Column.joined("tlbi i/l/r/v", 13, VmCounter.TLBI_IPA, VmCounter.TLBI_LOCAL, VmCounter.TLBI_RANGE, VmCounter.TLBI_VMID),
            Column.of("splits", 9, VmCounter.SPLITS),
            new Column("cmo MiB", 9, p -> decimal(cmoMiB(p)), VmCounter.DCACHE_BYTES, VmCounter.ICACHE_BYTES),
            Column.joined("frames +/-/pk", 14, VmCounter.FRAMES_ALLOCATED, VmCounter.FRAMES_FREED, VmCounter.FRAMES_PEAK),
            new Column("p50 us", 8, p -> latency(p, h -> h.getValueAtPercentile(50))),
            new Column("p99 us", 8, p -> latency(p, h -> h.getValueAtPercentile(99))),
            new Column("max us", 8, p -> latency(p, Histogram::getMaxValue)));

    /**
     * The cache-maintenance table, printed below the phase table when a phase issued any (FWB
     * off, or executable mappings): operations and MiB of each kind, and how much of it ran
     * inside a break-before-make window (a valid entry broken, its span unmapped for every vCPU).
     */
    static final List<Column> CMO_COLUMNS = List.of(
            new Column("phase", -12, PhaseReport::name),
            Column.of("dcache ops", 11, VmCounter.DCACHE_OPS),
            new Column("dcache MiB", 11, p -> mib(p.get(VmCounter.DCACHE_BYTES)), VmCounter.DCACHE_BYTES),
            Column.of("icache ops", 11, VmCounter.ICACHE_OPS),
            new Column("icache MiB", 11, p -> mib(p.get(VmCounter.ICACHE_BYTES)), VmCounter.ICACHE_BYTES),
            Column.of("in-bbm ops", 11, VmCounter.BBM_CMO_OPS),
            new Column("in-bbm MiB", 11, p -> mib(p.get(VmCounter.BBM_CMO_BYTES)), VmCounter.BBM_CMO_BYTES));

    private static String mib(long bytes) {
        return decimal(bytes / 1048576.0);
    }

    /** D- and I-cache maintenance of a phase, in MiB. */
    static double cmoMiB(PhaseReport p) {
        return (p.get(VmCounter.DCACHE_BYTES) + p.get(VmCounter.ICACHE_BYTES)) / 1048576.0;
    }

    static String describe(VmConfig c, WorkloadOptions<?> o) {
        return "memory " + Sizes.format(o.memory()) + " (" + o.backing() + " backing), " + o.vcpus() + " vCPU" + (o.vcpus() == 1 ? "" : "s")
                + ", " + c;
    }

    static void print(PrintWriter out, VmConfig c, WorkloadOptions<?> o, SimulationOptions options, Workload.Run<?> run, long wallNanos) {
        RunResult r = run.result;
        out.println("ptlab run: " + run.workload.title + " on a simulated VM");
        out.println("  " + run.workload.describe(c, o, options));
        run.printPhases(out, c);
        out.println();
        long faults = 0;
        for (PhaseReport p : r.phases) faults += p.faults();
        out.printf(Locale.ROOT, "total: %.3f s wall, %d stage-2 faults (%.2f M faults/s of vCPU phase wall time)%n",
                wallNanos / 1e9, faults, faults / Math.max(1e-9, vcpuWallSeconds(r)) / 1e6);
        run.print(out);
        out.println("table memory after destroy: " + r.framesInUseAtEnd + " frames in use");
        if (c.hostMemory() == HostMemoryModel.PROCESS) {
            out.println("host after the process exited: " + r.hostPagesInUseAtEnd + " pages and " + r.hostTableFramesInUseAtEnd
                    + " page-table frames in use");
        }
    }

    /**
     * A blank line, the phase table of {@code phases}, the cache-maintenance table when any phase
     * issued some, and the host side's non-zero counts.
     */
    static void printPhases(PrintWriter out, List<PhaseReport> phases, VmConfig c) {
        out.println();
        out.println(row(COLUMNS, col -> col.header));
        for (PhaseReport p : phases) out.println(row(COLUMNS, col -> col.cell.apply(p)));
        printCacheMaintenance(out, c, phases);
        printNonZero(out, phases);
    }

    private static String row(List<Column> columns, Function<Column, String> text) {
        StringBuilder s = new StringBuilder();
        for (Column col : columns) s.append(s.length() == 0 ? "" : " ").append(col.format(text.apply(col)));
        return s.toString();
    }

    /** {@link #CMO_COLUMNS}, for the phases that issued cache maintenance; nothing if none did. */
    private static void printCacheMaintenance(PrintWriter out, VmConfig c, List<PhaseReport> all) {
        List<PhaseReport> phases = new ArrayList<>();
        for (PhaseReport p : all) if (p.get(VmCounter.DCACHE_OPS) + p.get(VmCounter.ICACHE_OPS) != 0) phases.add(p);
        if (phases.isEmpty()) return;
        out.println();
        out.println("cache maintenance (fwb " + (c.fwb() ? "on" : "off") + "; in-bbm: issued while a valid entry was broken):");
        out.println(row(CMO_COLUMNS, col -> col.header));
        for (PhaseReport p : phases) out.println(row(CMO_COLUMNS, col -> col.cell.apply(p)));
    }

    /** The stage-2 table as a run other than the selftest left it. */
    static void printTableAtEnd(PrintWriter out, RunResult r) {
        out.println("table at the end: " + r.tableAtEnd.entries() + " entries (" + r.tableAtEnd.entriesAt(3) + " pages, "
                + r.tableAtEnd.entriesAt(2) + " level-2 blocks)");
    }

    /**
     * The {@link PhaseCounter.Text#NON_ZERO} counters per phase, only those that are not zero:
     * the host side (faults retried because an invalidation raced with them, -EFAULT exits, host
     * faults and pages by kind, MMU-notifier invalidations by event and the stage-2 leaves they
     * removed), none of which is non-zero with fixed host memory.
     */
    private static void printNonZero(PrintWriter out, List<PhaseReport> phases) {
        boolean header = false;
        for (PhaseReport p : phases) {
            StringBuilder line = new StringBuilder();
            for (PhaseCounter c : ALL_COUNTERS) {
                long v = p.get(c);
                if (c.text() == PhaseCounter.Text.NON_ZERO && v != 0) line.append(", ").append(c.label()).append(' ').append(v);
            }
            if (line.length() == 0) continue;
            if (!header) {
                out.println();
                out.println("host side (non-zero counts):");
                header = true;
            }
            out.printf(Locale.ROOT, "  %-12s %s%n", p.name(), line.substring(2));
        }
    }

    private static double vcpuWallSeconds(RunResult r) {
        double s = 0;
        for (PhaseReport p : r.phases) if (p.vcpus().accesses() > 0) s += p.wallNanos() / 1e9;
        return s;
    }

    private static String decimal(double x) {
        return String.format(Locale.ROOT, "%.1f", x);
    }

    private static String latency(PhaseReport p, java.util.function.ToLongFunction<Histogram> nanos) {
        Histogram h = p.vcpus().latency();
        return h.getTotalCount() > 0 ? decimal(nanos.applyAsLong(h) / 1000.0) : "-";
    }

    /** Every metric of the run as one JSON document. */
    static void writeJson(Path file, VmConfig c, WorkloadOptions<?> o, Workload.Run<?> run, long wallNanos) throws IOException {
        RunResult r = run.result;
        ObjectMapper m = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode root = m.createObjectNode();
        root.put("workload", run.workload.jsonName());
        ObjectNode cfg = root.putObject("config");
        cfg.put("memory", o.memory());
        cfg.put("backing", o.backing().label());
        cfg.put("vcpus", o.vcpus());
        cfg.put("granule", c.granule().label());
        cfg.put("ipaBits", c.ipaBits());
        cfg.put("faultLocking", c.faultLocking().label());
        cfg.put("coalesce", PhaseCounter.keyOf(c.coalescePolicy()));
        cfg.put("eagerSplitChunk", c.eagerSplitChunk());
        cfg.put("checking", c.checking());
        cfg.put("fwb", c.fwb());
        cfg.put("rangeTlbi", c.rangeTlbi());
        cfg.put("hardwareAf", c.hardwareAf());
        cfg.put("xnx", c.xnx());
        cfg.put("hostMemory", c.hostMemory().label());
        root.put("wallNanos", wallNanos);
        ArrayNode phases = root.putArray("phases");
        for (PhaseReport p : r.phases) {
            ObjectNode n = phases.addObject();
            n.put("name", p.name());
            n.put("wallNanos", p.wallNanos());
            n.put("accesses", p.vcpus().accesses());
            ObjectNode f = n.putObject("faults");
            for (FaultType t : FaultType.values()) {
                ObjectNode byLevel = f.putObject(t.label());
                for (int l = -1; l <= 3; l++) {
                    long v = p.vcpus().faults(t, l);
                    if (v != 0) byLevel.put(Integer.toString(l), v);
                }
            }
            for (PhaseCounter k : ALL_COUNTERS) n.put(k.key(), p.get(k));
            Histogram h = p.vcpus().latency();
            ObjectNode lat = n.putObject("latencyNanos");
            lat.put("count", h.getTotalCount());
            if (h.getTotalCount() > 0) {
                lat.put("p50", h.getValueAtPercentile(50));
                lat.put("p99", h.getValueAtPercentile(99));
                lat.put("max", h.getMaxValue());
            }
        }
        root.put("framesInUseAtEnd", r.framesInUseAtEnd);
        root.put("hostPagesInUseAtEnd", r.hostPagesInUseAtEnd);
        root.put("hostTableFramesInUseAtEnd", r.hostTableFramesInUseAtEnd);
        run.writeJson(root);
        m.writeValue(file.toFile(), root);
    }
}
