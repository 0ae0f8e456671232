package dev.ptlab.sim;

import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.TableCounters;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Everything one phase of a simulation cost: the vCPUs' own counts (faults by type and level,
 * re-faults after RACED, spurious faults, exits, latency) and the table's, TLBs', caches' and
 * table memory's counters over the phase.
 */
public final class PhaseReport {
    private final String name;
    private final long wallNanos;
    private final VcpuStats vcpus;
    private final Map<String, Long> counters;

    private PhaseReport(String name, long wallNanos, VcpuStats vcpus, Map<String, Long> counters) {
        this.name = name;
        this.wallNanos = wallNanos;
        this.vcpus = vcpus;
        this.counters = counters;
    }

    public String name() { return name; }
    public long wallNanos() { return wallNanos; }
    public VcpuStats vcpus() { return vcpus; }
    /** Named counters in a stable order (see {@link Snapshot}). */
    public Map<String, Long> counters() { return counters; }

    public long counter(String key) {
        Long v = counters.get(key);
        if (v == null) throw new IllegalArgumentException("counter: " + key + " is not one of " + counters.keySet());
        return v;
    }

    public long faults() { return vcpus.faults(); }

    public long faults(FaultType type) {
        long n = 0;
        for (int l = -1; l <= 3; l++) n += vcpus.faults(type, l);
        return n;
    }

    /** The counters of a VM at one moment; a phase is the difference of two. */
    static final class Snapshot {
        final long[] v;
        static final String[] KEYS = {
            "bbm", "leaves-installed", "leaves-removed", "tables-installed", "tables-freed", "coalesced", "splits", "table-raced",
            "attr-updates", "tlbi-ipa", "tlbi-local", "tlbi-range", "tlbi-vmid", "dcache-ops", "dcache-bytes", "icache-ops",
            "icache-bytes", "frames-allocated", "frames-freed", "memcache-refills", "tlb-conflicts", "deferred-frees",
            "invalid-window-steps"};

        Snapshot(Vm vm) {
            TableCounters t = vm.table().counters();
            TlbSystem tl = vm.tlbs();
            CacheMaintenance c = vm.tableMemory().cacheMaintenance();
            PhysicalMemory m = vm.tableMemory();
            long refills = vm.splitCacheRefills();
            for (Vcpu x : vm.vcpus()) refills += x.cache().refills();
            v = new long[] {
                t.breakBeforeMake(), t.leavesInstalled(), t.leavesRemoved(), t.tablesInstalled(), t.tablesFreed(), t.coalesced(),
                t.splits(), t.raced(), t.attrUpdates(), tl.ipaFlushes(), tl.localIpaFlushes(), tl.rangeFlushes(), tl.vmidFlushes(),
                c.dcacheOps(), c.dcacheBytes(), c.icacheOps(), c.icacheBytes(), m.allocations(), m.frees(), refills, tl.conflicts(),
                vm.table().reclaimer().deferred(), t.invalidWindowSteps()};
        }
    }

    static PhaseReport of(String name, long wallNanos, VcpuStats vcpus, Snapshot before, Snapshot after, PhysicalMemory m) {
        Map<String, Long> c = new LinkedHashMap<>();
        for (int i = 0; i < Snapshot.KEYS.length; i++) c.put(Snapshot.KEYS[i], after.v[i] - before.v[i]);
        c.put("frames-peak", m.peakFramesInUse());
        c.put("frames-in-use", m.framesInUse());
        return new PhaseReport(name, wallNanos, vcpus, c);
    }
}
