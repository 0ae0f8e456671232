package dev.ptlab.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.sim.HostMemoryModel;
import dev.ptlab.sim.PageTableTest;
import dev.ptlab.sim.PhaseReport;
import dev.ptlab.sim.Sizes;
import dev.ptlab.sim.VmConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import org.HdrHistogram.Histogram;

/** Prints (and writes as JSON) the reports of one kvm_page_table_test simulation. */
final class SimulationRun {
    private SimulationRun() {}

    static String describe(VmConfig c, PageTableTest.Options o) {
        return "memory " + Sizes.format(o.memory()) + " (" + o.backing() + " backing), " + o.vcpus() + " vCPU" + (o.vcpus() == 1 ? "" : "s")
                + ", " + c;
    }

    static void print(PrintWriter out, VmConfig c, PageTableTest.Options o, PageTableTest.Result r, long wallNanos, boolean random) {
        out.println("ptlab run: " + (random ? "random accesses" : "kvm_page_table_test") + " on a simulated VM");
        out.println("  " + describe(c, o));
        out.println();
        out.printf(Locale.ROOT, "%-12s %9s %9s %9s %9s %7s %8s %8s %8s %7s %13s %9s %9s %14s %8s %8s %8s%n",
                "phase", "wall ms", "faults", "transl", "perm", "af", "raced", "spurious", "bbm", "coalesc", "tlbi i/l/r/v",
                "splits", "cmo MiB", "frames +/-/pk", "p50 us", "p99 us", "max us");
        for (PhaseReport p : r.phases) {
            Histogram h = p.vcpus().latency();
            boolean lat = h.getTotalCount() > 0;
            out.printf(Locale.ROOT, "%-12s %9.1f %9d %9d %9d %7d %8d %8d %8d %7d %13s %9d %9.1f %14s %8s %8s %8s%n",
                    p.name(), p.wallNanos() / 1e6, p.faults(), p.faults(FaultType.TRANSLATION), p.faults(FaultType.PERMISSION),
                    p.faults(FaultType.ACCESS_FLAG), p.vcpus().raced(), p.vcpus().spurious(), p.counter("bbm"), p.counter("coalesced"),
                    p.counter("tlbi-ipa") + "/" + p.counter("tlbi-local") + "/" + p.counter("tlbi-range") + "/" + p.counter("tlbi-vmid"),
                    p.counter("splits"), (p.counter("dcache-bytes") + p.counter("icache-bytes")) / 1048576.0,
                    p.counter("frames-allocated") + "/" + p.counter("frames-freed") + "/" + p.counter("frames-peak"),
                    lat ? micros(h.getValueAtPercentile(50)) : "-", lat ? micros(h.getValueAtPercentile(99)) : "-",
                    lat ? micros(h.getMaxValue()) : "-");
        }
        printHostSide(out, r);
        out.println();
        long faults = 0;
        for (PhaseReport p : r.phases) faults += p.faults();
        out.printf(Locale.ROOT, "total: %.3f s wall, %d stage-2 faults (%.2f M faults/s of vCPU phase wall time)%n",
                wallNanos / 1e9, faults, faults / Math.max(1e-9, vcpuWallSeconds(r)) / 1e6);
        if (random) {
            out.println("table at the end: " + r.afterCreate.entries() + " entries (" + r.afterCreate.entriesAt(3) + " pages, "
                    + r.afterCreate.entriesAt(2) + " level-2 blocks)");
            printMemoryAtEnd(out, c, r);
            return;
        }
        out.println("dirty log: " + r.written.cardinality() + " pages written in update, " + r.logged.cardinality() + " logged"
                + (r.dirtyLogExact() ? " (exact)" : " (MISMATCH)"));
        out.println("adjust: " + (r.adjustDifference == null ? "the table equals the one create built"
                : r.adjustShapeDifference == null ? "the same mappings as create built; pages only read during update stay write-protected"
                : "differs from create's table, first " + r.adjustShapeDifference));
        printMemoryAtEnd(out, c, r);
    }

    private static void printMemoryAtEnd(PrintWriter out, VmConfig c, PageTableTest.Result r) {
        out.println("table memory after destroy: " + r.framesInUseAtEnd + " frames in use");
        if (c.hostMemory() == HostMemoryModel.PROCESS) {
            out.println("host after the process exited: " + r.hostPagesInUseAtEnd + " pages and " + r.hostTableFramesInUseAtEnd
                    + " page-table frames in use");
        }
    }

    /**
     * The host side, per phase, only what is non-zero (with fixed host memory nothing is): host
     * faults and pages by kind, MMU-notifier invalidations by event and the stage-2 leaves they
     * removed, faults retried because an invalidation raced with them, -EFAULT exits.
     */
    private static void printHostSide(PrintWriter out, PageTableTest.Result r) {
        boolean header = false;
        for (PhaseReport p : r.phases) {
            StringBuilder line = new StringBuilder();
            if (p.vcpus().seqRetries() != 0) line.append(", seq-retries ").append(p.vcpus().seqRetries());
            if (p.vcpus().efaultExits() != 0) line.append(", efault-exits ").append(p.vcpus().efaultExits());
            for (Map.Entry<String, Long> e : p.counters().entrySet()) {
                if (PhaseReport.isHostCounter(e.getKey()) && e.getValue() != 0) line.append(", ").append(e.getKey()).append(' ').append(e.getValue());
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

    private static double vcpuWallSeconds(PageTableTest.Result r) {
        double s = 0;
        for (PhaseReport p : r.phases) if (p.vcpus().accesses() > 0) s += p.wallNanos() / 1e9;
        return s;
    }

    private static String micros(long nanos) {
        return String.format(Locale.ROOT, "%.1f", nanos / 1000.0);
    }

    /** Every metric of the run as one JSON document. */
    static void writeJson(Path file, VmConfig c, PageTableTest.Options o, PageTableTest.Result r, long wallNanos, boolean random)
            throws IOException {
        ObjectMapper m = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode root = m.createObjectNode();
        root.put("workload", random ? "random" : "kvm_page_table_test");
        ObjectNode cfg = root.putObject("config");
        cfg.put("memory", o.memory());
        cfg.put("backing", o.backing().label());
        cfg.put("vcpus", o.vcpus());
        cfg.put("granule", c.granule().label());
        cfg.put("ipaBits", c.ipaBits());
        cfg.put("faultLocking", c.faultLocking().label());
        cfg.put("coalesce", c.coalescePolicy().name().toLowerCase(Locale.ROOT).replace('_', '-'));
        cfg.put("eagerSplitChunk", c.eagerSplitChunk());
        cfg.put("checking", c.checking());
        cfg.put("hardwareAf", c.hardwareAf());
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
            n.put("raced", p.vcpus().raced());
            n.put("spurious", p.vcpus().spurious());
            n.put("mmioExits", p.vcpus().mmioExits());
            n.put("addressSizeErrors", p.vcpus().addressSizeErrors());
            n.put("seqRetries", p.vcpus().seqRetries());
            n.put("efaultExits", p.vcpus().efaultExits());
            for (Map.Entry<String, Long> e : p.counters().entrySet()) n.put(e.getKey(), e.getValue());
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
        if (random) {
            m.writeValue(file.toFile(), root);
            return;
        }
        ObjectNode dirty = root.putObject("dirtyLog");
        dirty.put("written", r.written.cardinality());
        dirty.put("logged", r.logged.cardinality());
        dirty.put("exact", r.dirtyLogExact());
        root.put("adjustEqualsCreate", r.adjustDifference == null);
        root.put("adjustSameMappings", r.adjustShapeDifference == null);
        if (r.adjustDifference != null) root.put("adjustDifference", r.adjustDifference);
        m.writeValue(file.toFile(), root);
    }
}
