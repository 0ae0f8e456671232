package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import java.util.BitSet;

/**
 * The Linux selftest {@code kvm_page_table_test} (reference kvm-pgtable.md §12.1), simulated: one
 * memslot at the top of guest-physical space (backed by a host process's anonymous memory, or a
 * fixed host range: {@link VmConfig#hostMemory()}), N vCPUs each owning an equal share of its
 * large pages, and the phases
 * <ol>
 *   <li>{@code create}: each vCPU writes the first bytes of every large page of its share;</li>
 *   <li>{@code log-enable}: dirty logging on (write-protect, range TLBI, eager split if set);</li>
 *   <li>{@code update}: even vCPUs write, odd vCPUs read — with page backing every page; with
 *       huge backing the first page of each large page, then the pages of its second half;</li>
 *   <li>{@code log-harvest}: the dirty log is read once, without re-protecting (the selftest
 *       harvests nothing; ptlab reads it to check it against the writes done);</li>
 *   <li>{@code log-disable}: dirty logging off;</li>
 *   <li>{@code adjust}: every vCPU reads every page of its share, so blocks come back.</li>
 * </ol>
 */
public final class KvmPageTableSelftest {
    /** The workload's knobs beyond the memslot's layout. */
    public static final class Options extends WorkloadOptions<Options> {
        boolean overlap;

        public static Options defaults() {
            return new Options();
        }

        /**
         * Every vCPU touches all of memory, in the same order, instead of its own share: the
         * selftest's contention (vCPUs faulting on the same blocks at once).
         */
        public Options overlap(boolean on) {
            this.overlap = on;
            return this;
        }

        public boolean overlap() { return overlap; }
    }

    /** What a run produced beyond every workload's {@link RunResult}. */
    public static final class Result extends RunResult {
        /** Pages the update phase wrote (page index within the slot). */
        public final BitSet written = new BitSet();
        /** Pages the dirty log reported. */
        public final BitSet logged = new BitSet();
        /** Null if the table after adjust equals the table after create, else the first difference. */
        public String adjustDifference;
        /**
         * The same ignoring write permission: odd vCPUs only read in update, so their share stays
         * write-protected after logging (as in KVM); null if that is the only difference.
         */
        public String adjustShapeDifference;
        public TableSnapshot afterCreate;
        /** The table after adjust (also {@link #tableAtEnd}). */
        public TableSnapshot afterAdjust;

        public boolean dirtyLogExact() {
            return written.equals(logged);
        }

        /** The dirty log reported exactly the pages written, and every frame and page came back. */
        @Override
        public boolean passed() {
            return dirtyLogExact() && memoryReturned();
        }
    }

    private KvmPageTableSelftest() {}

    /** Runs every phase on a fresh VM, destroys it, and returns the reports. */
    public static Result run(VmConfig config, Options o) {
        return run(config, o, new Progress());
    }

    /** Guest accesses a run makes (for progress): create, update and adjust together. */
    static long expectedAccesses(Granule g, Options o) {
        long page = g.pageSize(), large = o.backing.size(g);
        long largePages = o.memory / large, pages = o.memory / page;
        long share = o.overlap ? o.vcpus : 1;
        long update = large > page ? largePages * (1 + large / page / 2) : pages;
        return share * (largePages + update + pages);
    }

    /** {@link #run(VmConfig, Options)}, publishing its progress to {@code progress}. */
    public static Result run(VmConfig config, Options o, Progress progress) {
        long base = o.slotBase(config);
        Vm vm = new Vm(config);
        Result r = new Result();
        progress.start(vm, expectedAccesses(config.granule(), o));
        GuestMemory memory = null;
        try {
            memory = GuestMemory.add(vm, base, o.memory, o.backing);
            Memslot slot = memory.slot;
            for (int i = 0; i < o.vcpus; i++) vm.createVcpu();
            Granule g = config.granule();
            long page = g.pageSize();
            long large = o.backing.size(g);
            long largePages = o.memory / large;
            int n = o.vcpus;
            boolean huge = large > page;
            boolean overlap = o.overlap;

            r.phases.add(Simulation.runPhase(vm, "create", (v, i) -> {
                for (long k = from(largePages, n, i, overlap); k < to(largePages, n, i, overlap); k++) v.access(base + k * large, Access.WRITE);
            }));
            r.afterCreate = TableSnapshot.of(vm.table());
            r.phases.add(Simulation.runHostOp(vm, "log-enable", () -> vm.enableDirtyLogging(slot)));
            BitSet[] writes = new BitSet[n];
            r.phases.add(Simulation.runPhase(vm, "update", (v, i) -> {
                BitSet w = writes[i] = new BitSet();
                Access a = (i & 1) == 0 ? Access.WRITE : Access.READ;
                for (long k = from(largePages, n, i, overlap); k < to(largePages, n, i, overlap); k++) {
                    long at = base + k * large;
                    if (!huge) {
                        touch(v, at, a, base, page, w);
                        continue;
                    }
                    // First host page (splits the block on a write), then the second half's pages.
                    touch(v, at, a, base, page, w);
                    for (long p = at + large / 2; p < at + large; p += page) touch(v, p, Access.READ, base, page, w);
                }
            }));
            for (BitSet w : writes) if (w != null) r.written.or(w);
            r.phases.add(Simulation.runHostOp(vm, "log-harvest", () -> r.logged.or(BitSet.valueOf(vm.getDirtyLog(slot, false)))));
            r.phases.add(Simulation.runHostOp(vm, "log-disable", () -> vm.disableDirtyLogging(slot)));
            r.phases.add(Simulation.runPhase(vm, "adjust", (v, i) -> {
                for (long k = from(largePages, n, i, overlap); k < to(largePages, n, i, overlap); k++) {
                    long at = base + k * large;
                    for (long p = at; p < at + large; p += page) v.access(p, Access.READ);
                }
            }));
            r.afterAdjust = r.tableAtEnd = TableSnapshot.of(vm.table());
            r.adjustDifference = r.afterAdjust.differenceFrom(r.afterCreate);
            r.adjustShapeDifference = r.afterAdjust.differenceFrom(r.afterCreate, Stage2Descriptor.S2AP_W);
        } finally {
            r.endRun(progress, vm, memory);
        }
        return r;
    }

    private static void touch(Vcpu v, long gpa, Access a, long base, long page, BitSet written) {
        v.access(gpa, a);
        if (a == Access.WRITE) written.set((int) ((gpa - base) / page));
    }

    /** First large page vCPU {@code i} of {@code n} touches: the start of its share, or 0 with overlap. */
    static long from(long pages, int n, int i, boolean overlap) {
        return overlap ? 0 : pages * i / n;
    }

    /** End (exclusive) of the large pages vCPU {@code i} touches. */
    static long to(long pages, int n, int i, boolean overlap) {
        return overlap ? pages : pages * (i + 1) / n;
    }
}
