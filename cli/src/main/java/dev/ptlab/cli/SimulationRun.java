package dev.ptlab.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.mm.device.MirrorDevice;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.sim.DeviceAtomics;
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

/** Prints (and writes as JSON) the reports of one simulation run (kvm_page_table_test, random or device-atomics). */
final class SimulationRun {
    private SimulationRun() {}

    static String describe(VmConfig c, PageTableTest.Options o) {
        return "memory " + Sizes.format(o.memory()) + " (" + o.backing() + " backing), " + o.vcpus() + " vCPU" + (o.vcpus() == 1 ? "" : "s")
                + ", " + c;
    }

    static void print(PrintWriter out, VmConfig c, PageTableTest.Options o, PageTableTest.Result r, long wallNanos,
                      SimulationOptions.Workload workload) {
        out.println("ptlab run: " + workload.title + " on a simulated VM");
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
        if (workload != SimulationOptions.Workload.SELFTEST) {
            if (r.deviceAtomics != null) printDevices(out, r);
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

    /**
     * device-atomics: what the devices did, how the VM and the devices took pages from each
     * other (conversions, restores, stage-2 leaves the notifiers removed, faults retried after a
     * racing invalidation, notifier events by type) and the memory's sum check.
     */
    private static void printDevices(PrintWriter out, PageTableTest.Result r) {
        DeviceAtomics.Outcome d = r.deviceAtomics;
        PhaseReport p = r.phases.get(0);
        out.printf(Locale.ROOT, "devices: %d, %d atomic adds in %.3f s; %d device faults, %d conversions (%d redone after a racing "
                + "invalidation), %d atomic mappings revoked%n", d.devices.size(), d.deviceAdds, d.deviceWallNanos / 1e9,
                d.total(MirrorDevice.Counter.ATOMIC_FAULT), d.total(MirrorDevice.Counter.CONVERSION),
                d.total(MirrorDevice.Counter.CONVERSION_RETRY), d.total(MirrorDevice.Counter.ATOMIC_REVOKED));
        for (Map.Entry<String, Map<MirrorDevice.Counter, Long>> e : d.devices.entrySet()) {
            StringBuilder line = new StringBuilder();
            for (Map.Entry<MirrorDevice.Counter, Long> c : e.getValue().entrySet()) {
                line.append(", ").append(key(c.getKey().name())).append(' ').append(c.getValue());
            }
            out.printf(Locale.ROOT, "  %-10s %s%n", e.getKey(), line.length() == 0 ? "nothing" : line.substring(2));
        }
        // Every restore is a GUP fault on a device-exclusive entry: a guest fault taking the page
        // back, or a device's conversion finding it already exclusive (another device's: a steal).
        long restores = p.counter("host-exclusive-restore");
        long byDevices = d.total(MirrorDevice.Counter.CONVERSION_RESTORE);
        out.println("sharing: " + p.counter("host-exclusive-conversion") + " pages made device-exclusive, " + restores
                + " restored (" + (restores - byDevices) + " by guest faults, " + byDevices + " by device conversions), "
                + p.counter("notifier-stage2-unmapped")
                + " stage-2 leaves unmapped by notifiers, " + p.vcpus().seqRetries() + " guest faults retried after a racing "
                + "invalidation, " + p.counter("host-fault-retry") + " host faults that waited for a device's folio lock");
        StringBuilder events = new StringBuilder();
        for (NotifierEvent e : NotifierEvent.values()) {
            long n = p.counter("notifier-" + key(e.name()));
            if (n != 0) events.append(", ").append(key(e.name())).append(' ').append(n);
        }
        out.println("notifier events: " + (events.length() == 0 ? "none" : events.substring(2)));
        out.println("memory: sum " + d.memorySum + (d.coherent() ? " = " : " != ") + d.guestWrites + " guest writes + " + d.deviceAdds
                + " device adds" + (d.coherent() ? " (coherent)" : " (MISMATCH: " + (d.guestWrites + d.deviceAdds - d.memorySum)
                + " updates lost)"));
    }

    private static String key(String constant) {
        return constant.toLowerCase(Locale.ROOT).replace('_', '-');
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
    static void writeJson(Path file, VmConfig c, PageTableTest.Options o, PageTableTest.Result r, long wallNanos,
                          SimulationOptions.Workload workload) throws IOException {
        ObjectMapper m = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode root = m.createObjectNode();
        root.put("workload", workload == SimulationOptions.Workload.SELFTEST ? "kvm_page_table_test" : workload.label);
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
        if (r.deviceAtomics != null) writeDevices(root.putObject("deviceAtomics"), r.deviceAtomics);
        if (workload != SimulationOptions.Workload.SELFTEST) {
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

    private static void writeDevices(ObjectNode n, DeviceAtomics.Outcome d) {
        n.put("guestWrites", d.guestWrites);
        n.put("guestReads", d.guestReads);
        n.put("deviceAdds", d.deviceAdds);
        n.put("memorySum", d.memorySum);
        n.put("coherent", d.coherent());
        n.put("deviceWallNanos", d.deviceWallNanos);
        ObjectNode devs = n.putObject("devices");
        for (Map.Entry<String, Map<MirrorDevice.Counter, Long>> e : d.devices.entrySet()) {
            ObjectNode dn = devs.putObject(e.getKey());
            for (Map.Entry<MirrorDevice.Counter, Long> c : e.getValue().entrySet()) dn.put(key(c.getKey().name()), c.getValue());
        }
        ObjectNode inv = n.putObject("deviceInvalidations");
        for (Map.Entry<NotifierEvent, Long> e : d.deviceInvalidations.entrySet()) inv.put(key(e.getKey().name()), e.getValue());
    }
}
