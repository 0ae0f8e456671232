package dev.ptlab.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.device.MirrorDevice;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.sim.DeviceAtomics;
import dev.ptlab.sim.HostCounter;
import dev.ptlab.sim.PhaseCounter;
import dev.ptlab.sim.PhaseReport;
import dev.ptlab.sim.Progress;
import dev.ptlab.sim.VcpuCounter;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.WorkloadOptions;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.Map;

/**
 * {@code --workload device-atomics}: random accesses while devices make atomic adds to the same
 * host memory ({@link DeviceAtomics}); reports the devices and the sharing, and passes when the
 * memory's sum shows no lost update.
 */
final class DeviceAtomicsWorkload extends Workload<DeviceAtomics.Result> {
    DeviceAtomicsWorkload() {
        super("device-atomics", "device atomics", "device_atomics");
    }

    @Override
    void check(SimulationOptions o) {
        super.check(o);
        RandomWorkload.checkRandom(o);
        dev.ptlab.sim.Backing backing = dev.ptlab.sim.Backing.parse(o.backing);
        if (backing.hugetlb() || backing.shared()) {
            throw new IllegalArgumentException("--backing: " + (backing.hugetlb() ? "hugetlb pages" : "shared memory")
                    + " cannot be made device-exclusive (EOPNOTSUPP); expected anonymous or anonymous_thp with --workload device-atomics");
        }
        if (o.devices < 0 || o.devices > DeviceAtomics.MAX_DEVICES) {
            throw new IllegalArgumentException("--devices: " + o.devices + " is outside 0.." + DeviceAtomics.MAX_DEVICES);
        }
    }

    @Override
    DeviceAtomics.Result run(VmConfig config, WorkloadOptions<?> layout, SimulationOptions o, Progress progress) {
        return DeviceAtomics.run(config, RandomWorkload.options(layout, o), o.devices, progress);
    }

    /**
     * What the devices did, how the VM and the devices took pages from each other (conversions,
     * restores, stage-2 leaves the notifiers removed, faults retried after a racing
     * invalidation, notifier events by type) and the memory's sum check.
     */
    @Override
    void print(PrintWriter out, DeviceAtomics.Result d) {
        PhaseReport p = d.phases.get(0);
        out.printf(Locale.ROOT, "devices: %d, %d atomic adds in %.3f s; %d device faults, %d conversions (%d redone after a racing "
                + "invalidation), %d atomic mappings revoked%n", d.devices.size(), d.deviceAdds, d.deviceWallNanos / 1e9,
                d.total(MirrorDevice.Counter.ATOMIC_FAULT), d.total(MirrorDevice.Counter.CONVERSION),
                d.total(MirrorDevice.Counter.CONVERSION_RETRY), d.total(MirrorDevice.Counter.ATOMIC_REVOKED));
        for (Map.Entry<String, Map<MirrorDevice.Counter, Long>> e : d.devices.entrySet()) {
            StringBuilder line = new StringBuilder();
            for (Map.Entry<MirrorDevice.Counter, Long> c : e.getValue().entrySet()) {
                line.append(", ").append(PhaseCounter.keyOf(c.getKey())).append(' ').append(c.getValue());
            }
            out.printf(Locale.ROOT, "  %-10s %s%n", e.getKey(), line.length() == 0 ? "nothing" : line.substring(2));
        }
        // Every restore is a GUP fault on a device-exclusive entry: a guest fault taking the page
        // back, or a device's conversion finding it already exclusive (another device's: a steal).
        long restores = p.get(HostCounter.host(MmEvent.EXCLUSIVE_RESTORE));
        long byDevices = d.total(MirrorDevice.Counter.CONVERSION_RESTORE);
        out.println("sharing: " + p.get(HostCounter.host(MmEvent.EXCLUSIVE_CONVERSION)) + " pages made device-exclusive, " + restores
                + " restored (" + (restores - byDevices) + " by guest faults, " + byDevices + " by device conversions), "
                + p.get(HostCounter.STAGE2_UNMAPPED)
                + " stage-2 leaves unmapped by notifiers, " + p.get(VcpuCounter.SEQ_RETRIES) + " guest faults retried after a racing "
                + "invalidation, " + p.get(HostCounter.host(MmEvent.FAULT_RETRY)) + " host faults that waited for a device's folio lock");
        StringBuilder events = new StringBuilder();
        for (NotifierEvent e : NotifierEvent.values()) {
            long n = p.get(HostCounter.notifier(e));
            if (n != 0) events.append(", ").append(PhaseCounter.keyOf(e)).append(' ').append(n);
        }
        out.println("notifier events: " + (events.length() == 0 ? "none" : events.substring(2)));
        out.println("memory: sum " + d.memorySum + (d.coherent() ? " = " : " != ") + d.guestWrites + " guest writes + " + d.deviceAdds
                + " device adds" + (d.coherent() ? " (coherent)" : " (MISMATCH: " + (d.guestWrites + d.deviceAdds - d.memorySum)
                + " updates lost)"));
        SimulationRun.printTableAtEnd(out, d);
    }

    @Override
    void writeJson(ObjectNode root, DeviceAtomics.Result d) {
        ObjectNode n = root.putObject("deviceAtomics");
        n.put("guestWrites", d.guestWrites);
        n.put("guestReads", d.guestReads);
        n.put("deviceAdds", d.deviceAdds);
        n.put("memorySum", d.memorySum);
        n.put("coherent", d.coherent());
        n.put("deviceWallNanos", d.deviceWallNanos);
        ObjectNode devs = n.putObject("devices");
        for (Map.Entry<String, Map<MirrorDevice.Counter, Long>> e : d.devices.entrySet()) {
            ObjectNode dn = devs.putObject(e.getKey());
            for (Map.Entry<MirrorDevice.Counter, Long> c : e.getValue().entrySet()) dn.put(PhaseCounter.keyOf(c.getKey()), c.getValue());
        }
        ObjectNode inv = n.putObject("deviceInvalidations");
        for (Map.Entry<NotifierEvent, Long> e : d.deviceInvalidations.entrySet()) inv.put(PhaseCounter.keyOf(e.getKey()), e.getValue());
    }
}
