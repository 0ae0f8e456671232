package dev.ptlab.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.sim.GuestMode;
import dev.ptlab.sim.KvmPageTableSelftest;
import dev.ptlab.sim.Progress;
import dev.ptlab.sim.RunResult;
import dev.ptlab.sim.Sizes;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.WorkloadOptions;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * {@code --workload selftest}: the kernel's kvm_page_table_test ({@link KvmPageTableSelftest}) in
 * every guest mode it runs, one after another as {@code for_each_guest_mode} runs them: the modes
 * {@code -m} names, or every mode the simulated host supports ({@code --host-ipa-limit},
 * {@code --host-granules}). Checks the dirty log of each.
 */
final class SelftestWorkload extends Workload<SelftestWorkload.Modes> {
    /** The simulated host's IPA limit without {@code --host-ipa-limit}: a common arm64 server's. */
    static final int DEFAULT_HOST_IPA_LIMIT = 40;
    /** The guest page sizes the simulated host supports without {@code --host-granules}. */
    static final String DEFAULT_HOST_GRANULES = "4k";

    /** One run per guest mode, in the order they ran; the phases of all of them, in order. */
    static final class Modes extends RunResult {
        final List<KvmPageTableSelftest.Result> runs = new ArrayList<>();

        void add(KvmPageTableSelftest.Result r) {
            runs.add(r);
            phases.addAll(r.phases);
            tableAtEnd = r.tableAtEnd;
            framesInUseAtEnd += r.framesInUseAtEnd;
            hostPagesInUseAtEnd += r.hostPagesInUseAtEnd;
            hostTableFramesInUseAtEnd += r.hostTableFramesInUseAtEnd;
        }

        @Override
        public boolean passed() {
            for (KvmPageTableSelftest.Result r : runs) if (!r.passed()) return false;
            return true;
        }
    }

    SelftestWorkload() {
        super("selftest", "kvm_page_table_test", "kvm_page_table_test");
    }

    @Override
    String jsonName() {
        return "kvm_page_table_test";
    }

    @Override
    boolean selftest() {
        return true;
    }

    @Override
    void check(SimulationOptions o) {
        if (o.ipaBits != null) {
            throw new IllegalArgumentException("--ipa-bits: the selftest takes the IPA size from its guest modes (-m, --host-ipa-limit)");
        }
        modes(o);
        if (o.schedule != null) KvmPageTableSelftest.Schedule.parse(o.schedule);
        physOffset(o);
    }

    /**
     * The guest modes to run, by ID: those {@code -m} names, each of which the host must support
     * (the selftest's {@code for_each_guest_mode} asserts it), or every mode it supports.
     *
     * @throws IllegalArgumentException naming the option
     */
    static List<GuestMode> modes(SimulationOptions o) {
        int limit = o.hostIpaLimit == null ? DEFAULT_HOST_IPA_LIMIT : o.hostIpaLimit;
        if (limit < 32 || limit > 52) throw new IllegalArgumentException("--host-ipa-limit: " + limit + " is outside 32..52");
        Set<Granule> granules = EnumSet.noneOf(Granule.class);
        String list = o.hostGranules == null ? DEFAULT_HOST_GRANULES : o.hostGranules;
        for (String g : list.split(",")) {
            try {
                granules.add(Granule.parse(g.trim()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--host-granules: " + g.trim() + " is not one of 4k, 16k, 64k");
            }
        }
        String host = "the host (--host-ipa-limit " + limit + ", --host-granules " + list.toLowerCase(Locale.ROOT) + ")";
        if (o.modes == null || o.modes.isEmpty()) {
            List<GuestMode> all = GuestMode.supported(limit, granules);
            if (all.isEmpty()) throw new IllegalArgumentException("--host-ipa-limit: no arm64 guest mode is supported by " + host);
            return all;
        }
        Set<GuestMode> chosen = new TreeSet<>((a, b) -> Integer.compare(a.id(), b.id()));
        for (String m : o.modes) {
            GuestMode mode = GuestMode.parse(m);
            if (!mode.supportedBy(limit, granules)) {
                throw new IllegalArgumentException("-m: guest mode ID " + mode.id() + " (" + mode + ", " + mode.description()
                        + ") is not supported by " + host);
            }
            chosen.add(mode);
        }
        return new ArrayList<>(chosen);
    }

    private static long physOffset(SimulationOptions o) {
        return o.physOffset == null ? 0 : Numbers.parseNumber("-p", o.physOffset);
    }

    /** The selftest's options for guest mode {@code mode}. */
    private static KvmPageTableSelftest.Options options(WorkloadOptions<?> layout, SimulationOptions o, GuestMode mode) {
        return KvmPageTableSelftest.Options.defaults().layout(layout).mode(mode).physOffset(physOffset(o)).partition(o.partition)
                .schedule(o.schedule == null ? KvmPageTableSelftest.Schedule.CONCURRENT : KvmPageTableSelftest.Schedule.parse(o.schedule));
    }

    private static List<GuestMode> toRun(SimulationOptions o) {
        List<GuestMode> modes = modes(o);
        return o.firstModeOnly ? modes.subList(0, 1) : modes;
    }

    @Override
    void checkLayout(VmConfig config, WorkloadOptions<?> layout, SimulationOptions o) {
        for (GuestMode m : toRun(o)) KvmPageTableSelftest.plan(config, options(layout, o, m));
    }

    @Override
    Modes run(VmConfig config, WorkloadOptions<?> layout, SimulationOptions o, Progress progress) {
        Modes all = new Modes();
        for (GuestMode m : toRun(o)) all.add(KvmPageTableSelftest.run(config, options(layout, o, m), progress));
        return all;
    }

    @Override
    String describe(VmConfig c, WorkloadOptions<?> layout, SimulationOptions o) {
        int n = layout.vcpus();
        return "memory " + Sizes.format(layout.memory()) + " (" + layout.backing().selftestName() + "), " + n + " vCPU" + (n == 1 ? "" : "s")
                + (n > 1 ? ", schedule " + (o.schedule == null ? "concurrent" : o.schedule) : "") + (o.partition ? ", partitioned" : "")
                + "; host " + c.granule().label() + " pages, IPA limit " + (o.hostIpaLimit == null ? DEFAULT_HOST_IPA_LIMIT : o.hostIpaLimit)
                + " bits, guest granules " + (o.hostGranules == null ? DEFAULT_HOST_GRANULES : o.hostGranules) + "; "
                + c.toString().replace(c.granule().label() + " granule, " + c.ipaBits() + "-bit IPA, ", "");
    }

    /** Per guest mode: the lines the selftest prints before it runs, the phase table, and the dirty-log and adjust checks. */
    @Override
    void printPhases(PrintWriter out, Modes all, VmConfig config) {
        for (KvmPageTableSelftest.Result r : all.runs) {
            KvmPageTableSelftest.Plan p = r.plan;
            out.println();
            out.println("Testing guest mode: " + p.mode.description());
            out.println("Testing memory backing src type: " + p.backing.selftestName());
            out.println("Testing memory backing src granularity: 0x" + Long.toHexString(p.largePage) + " (stage-2 maps it with "
                    + Sizes.format(p.mappingSize) + (p.mappingSize == p.hostPage ? " pages)" : " blocks)"));
            out.println("Testing memory size(aligned): 0x" + Long.toHexString(p.size));
            out.println("Guest physical test memory offset: 0x" + Long.toHexString(p.gpa));
            out.println("Number of testing vCPUs: " + p.vcpus);
            SimulationRun.printPhases(out, r.phases, config);
            out.println("dirty log: " + r.written.cardinality() + " pages written in update, " + r.logged.cardinality() + " logged"
                    + (r.dirtyLogExact() ? " (exact)" : " (MISMATCH)"));
            out.println("adjust: " + (r.adjustDifference == null ? "the table equals the one create built"
                    : r.adjustShapeDifference == null ? "the same mappings as create built; pages only read during update stay write-protected"
                    : "differs from create's table, first " + r.adjustShapeDifference));
        }
    }

    @Override
    void print(PrintWriter out, Modes r) {}

    @Override
    void writeJson(ObjectNode root, Modes all) {
        long written = 0, logged = 0;
        boolean exact = true, equal = true, same = true;
        ArrayNode modes = root.putArray("guestModes");
        int first = 0;
        for (KvmPageTableSelftest.Result r : all.runs) {
            KvmPageTableSelftest.Plan p = r.plan;
            ObjectNode m = modes.addObject();
            m.put("id", p.mode.id());
            m.put("name", p.mode.name());
            m.put("description", p.mode.description());
            m.put("backing", p.backing.selftestName());
            m.put("granularity", p.largePage);
            m.put("stage2MappingSize", p.mappingSize);
            m.put("size", p.size);
            m.put("gpa", p.gpa);
            m.put("firstPhase", first);
            m.put("phaseCount", r.phases.size());
            first += r.phases.size();
            ObjectNode dirty = m.putObject("dirtyLog");
            dirty.put("written", r.written.cardinality());
            dirty.put("logged", r.logged.cardinality());
            dirty.put("exact", r.dirtyLogExact());
            m.put("adjustEqualsCreate", r.adjustDifference == null);
            m.put("adjustSameMappings", r.adjustShapeDifference == null);
            if (r.adjustDifference != null) m.put("adjustDifference", r.adjustDifference);
            written += r.written.cardinality();
            logged += r.logged.cardinality();
            exact &= r.dirtyLogExact();
            equal &= r.adjustDifference == null;
            same &= r.adjustShapeDifference == null;
        }
        ObjectNode dirty = root.putObject("dirtyLog");
        dirty.put("written", written);
        dirty.put("logged", logged);
        dirty.put("exact", exact);
        root.put("adjustEqualsCreate", equal);
        root.put("adjustSameMappings", same);
    }
}
