package dev.ptlab.sim;

import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.TableCounters;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.notify.NotifierEvent;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Everything one phase of a simulation cost: the vCPUs' own counts (faults by type and level,
 * re-faults after RACED or an invalidation, spurious faults, exits, latency), the table's, TLBs',
 * caches' and table memory's counters over the phase, and the host side's (MMU-notifier events
 * and the host address spaces' own counts).
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
        /** The stage-2 table's, TLBs', caches' and table memory's counters. */
        static final String[] TABLE_KEYS = {
            "bbm", "leaves-installed", "leaves-removed", "tables-installed", "tables-freed", "coalesced", "splits", "table-raced",
            "attr-updates", "tlbi-ipa", "tlbi-local", "tlbi-range", "tlbi-vmid", "dcache-ops", "dcache-bytes", "icache-ops",
            "icache-bytes", "frames-allocated", "frames-freed", "memcache-refills", "tlb-conflicts", "deferred-frees",
            "invalid-window-steps"};
        /**
         * The host side (zero with fixed host memory): MMU-notifier invalidations the VM received
         * by event ({@code notifier-unmap}, {@code notifier-clear}, ...), stage-2 leaves they
         * removed, aging calls that found stage-2 young, and the {@link MmEvent} counts of the
         * memslots' address spaces ({@code host-fault}, {@code host-anon-page},
         * {@code host-thp-page}, {@code host-exclusive-restore}, ...).
         */
        static final String[] HOST_KEYS = hostKeys();
        static final String[] KEYS = concat(TABLE_KEYS, HOST_KEYS);

        Snapshot(Vm vm) {
            TableCounters t = vm.table().counters();
            TlbSystem tl = vm.tlbs();
            CacheMaintenance c = vm.tableMemory().cacheMaintenance();
            PhysicalMemory m = vm.tableMemory();
            long refills = vm.splitCacheRefills();
            for (Vcpu x : vm.vcpus()) refills += x.cache().refills();
            v = new long[KEYS.length];
            long[] table = {
                t.breakBeforeMake(), t.leavesInstalled(), t.leavesRemoved(), t.tablesInstalled(), t.tablesFreed(), t.coalesced(),
                t.splits(), t.raced(), t.attrUpdates(), tl.ipaFlushes(), tl.localIpaFlushes(), tl.rangeFlushes(), tl.vmidFlushes(),
                c.dcacheOps(), c.dcacheBytes(), c.icacheOps(), c.icacheBytes(), m.allocations(), m.frees(), refills, tl.conflicts(),
                vm.table().reclaimer().deferred(), t.invalidWindowSteps()};
            System.arraycopy(table, 0, v, 0, table.length);
            int i = table.length;
            for (NotifierEvent e : NotifierEvent.values()) v[i++] = vm.notifierInvalidations(e);
            v[i++] = vm.notifierUnmappedLeaves();
            v[i++] = vm.notifierYoung();
            List<AddressSpace> spaces = vm.addressSpaces();
            for (MmEvent e : MmEvent.values()) {
                long n = 0;
                for (AddressSpace a : spaces) n += a.stats().count(e);
                v[i++] = n;
            }
        }

        private static String[] hostKeys() {
            List<String> k = new ArrayList<>();
            for (NotifierEvent e : NotifierEvent.values()) k.add("notifier-" + key(e.name()));
            k.add("notifier-stage2-unmapped");
            k.add("notifier-young");
            for (MmEvent e : MmEvent.values()) k.add("host-" + key(e.name()));
            return k.toArray(new String[0]);
        }

        private static String key(String constant) {
            return constant.toLowerCase(Locale.ROOT).replace('_', '-');
        }

        private static String[] concat(String[] a, String[] b) {
            String[] r = Arrays.copyOf(a, a.length + b.length);
            System.arraycopy(b, 0, r, a.length, b.length);
            return r;
        }
    }

    /** Whether {@code key} is one of the host-side counters (notifiers, host mm), which are zero with fixed host memory. */
    public static boolean isHostCounter(String key) {
        return key.startsWith("notifier-") || key.startsWith("host-");
    }

    static PhaseReport of(String name, long wallNanos, VcpuStats vcpus, Snapshot before, Snapshot after, PhysicalMemory m) {
        Map<String, Long> c = new LinkedHashMap<>();
        for (int i = 0; i < Snapshot.KEYS.length; i++) c.put(Snapshot.KEYS[i], after.v[i] - before.v[i]);
        c.put("frames-peak", m.peakFramesInUse());
        c.put("frames-in-use", m.framesInUse());
        return new PhaseReport(name, wallNanos, vcpus, c);
    }
}
