package dev.ptlab.sim;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import java.util.BitSet;
import java.util.Locale;

/**
 * The Linux selftest {@code kvm_page_table_test} (tools/testing/selftests/kvm, as of Linux
 * 7.1-rc4), replayed on a simulated VM in one guest mode ({@code run_test}): one memslot of the
 * chosen backing placed as {@code pre_init_before_test} places it (near the top of the mode's
 * IPA space, aligned down), N vCPUs that all walk the whole region, and the selftest's stages:
 * <ol>
 *   <li>{@code create}: every vCPU touches the first 8 bytes of every large page (the backing's
 *       granularity); even vCPUs write, odd vCPUs read ({@code vcpu_worker}'s
 *       {@code do_write});</li>
 *   <li>{@code log-enable}: KVM_MEM_LOG_DIRTY_PAGES on (write-protect, range TLBI, eager split if
 *       set);</li>
 *   <li>{@code update}: with {@code anonymous} backing every vCPU writes every host page; with any
 *       other backing each vCPU, per large page, writes its first host page and then reads the
 *       host pages from its middle on ({@code pages_per_large_page / 2} of them) — the guest
 *       code's own address arithmetic, replayed as written (with {@code shmem} it advances half
 *       a page per large page, so it writes the first half of the region, each page twice);</li>
 *   <li>{@code log-disable}: the flag off (nothing eager: later faults map blocks again);</li>
 *   <li>{@code adjust}: every vCPU reads every host page.</li>
 * </ol>
 * Between update and log-disable ptlab reads the dirty bitmap once, without re-protecting
 * anything (no table change, no TLBI, not a phase): the selftest harvests nothing, ptlab checks
 * the log against the writes made. Not modelled: the selftest's memslot 0 (guest code, stack,
 * guest page tables) and the guest's stage-1 walk through its mapping at {@code 0xc0000000}.
 */
public final class KvmPageTableSelftest {
    /** Most vCPUs a VM may have (arm64's KVM_CAP_MAX_VCPUS with a GICv3: 512). */
    public static final int MAX_VCPUS = 512;

    /** How the vCPUs of one phase take turns. */
    public enum Schedule {
        /** One thread per vCPU, all released at once (the selftest's way); counts vary with the interleaving. */
        CONCURRENT,
        /** vCPU 0 runs its whole walk, then vCPU 1, ...: every count is exact. */
        SERIAL;

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static Schedule parse(String text) {
            if (text != null) for (Schedule s : values()) if (s.label().equalsIgnoreCase(text.trim())) return s;
            throw new IllegalArgumentException("schedule: " + text + " is not one of concurrent, serial");
        }

        @Override
        public String toString() {
            return label();
        }
    }

    /** The selftest's knobs beyond the memory, backing and vCPUs ({@code -m}, {@code -p}) and ptlab's own. */
    public static final class Options extends WorkloadOptions<Options> {
        GuestMode mode = GuestMode.P40V48_4K;
        long physOffset;
        boolean partition;
        Schedule schedule = Schedule.CONCURRENT;

        public static Options defaults() {
            return new Options();
        }

        /** The guest mode ({@code -m}): the VM's IPA size and the guest's page size. */
        public Options mode(GuestMode m) {
            if (m == null) throw new IllegalArgumentException("mode: null");
            this.mode = m;
            return this;
        }

        /** The region's guest-physical address before alignment ({@code -p}); 0 places it as the selftest does without {@code -p}. */
        public Options physOffset(long gpa) {
            this.physOffset = gpa;
            return this;
        }

        /**
         * ptlab's variant: each vCPU walks only its own share of the large pages instead of the
         * whole region (the simulator's behaviour before issue 14).
         */
        public Options partition(boolean on) {
            this.partition = on;
            return this;
        }

        public Options schedule(Schedule s) {
            if (s == null) throw new IllegalArgumentException("schedule: null");
            this.schedule = s;
            return this;
        }

        public GuestMode mode() { return mode; }
        public long physOffset() { return physOffset; }
        public boolean partition() { return partition; }
        public Schedule schedule() { return schedule; }
    }

    /** What {@code pre_init_before_test} works out: the sizes, the aligned region and where it goes. */
    public static final class Plan {
        public final GuestMode mode;
        public final Backing backing;
        /** The host page size: the stage-2 granule's page. */
        public final long hostPage;
        /** The backing's granularity ({@code large_page_size}). */
        public final long largePage;
        /** The largest stage-2 mapping a fault makes from the backing. */
        public final long mappingSize;
        /** {@code max(large page, guest page)}: the size is rounded up to it and the address down. */
        public final long alignment;
        /** The region's size, rounded up. */
        public final long size;
        /** The region's guest-physical address. */
        public final long gpa;
        public final int vcpus;

        private Plan(GuestMode mode, Backing backing, Granule host, long size, long gpa, int vcpus) {
            this.mode = mode;
            this.backing = backing;
            this.hostPage = host.pageSize();
            this.largePage = backing.size(host);
            this.mappingSize = backing.mappingSize(host);
            this.alignment = Math.max(largePage, mode.guestGranule().pageSize());
            this.size = size;
            this.gpa = gpa;
            this.vcpus = vcpus;
        }

        public long largePages() { return size / largePage; }
        public long hostPages() { return size / hostPage; }
    }

    /** What a run in one guest mode produced beyond every workload's {@link RunResult}. */
    public static final class Result extends RunResult {
        public final Plan plan;
        /** Pages the update phase wrote (page index within the slot). */
        public final BitSet written = new BitSet();
        /** Pages the dirty log reported. */
        public final BitSet logged = new BitSet();
        /** Null if the table after adjust equals the table after create, else the first difference. */
        public String adjustDifference;
        /** The same ignoring write permission (pages only read while logging stay write-protected); null if that is the only difference. */
        public String adjustShapeDifference;
        public TableSnapshot afterCreate;
        /** The table after adjust (also {@link #tableAtEnd}). */
        public TableSnapshot afterAdjust;

        Result(Plan plan) {
            this.plan = plan;
        }

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

    /**
     * The region {@code o} gives in its guest mode on a host of {@code config}'s page size, as
     * {@code pre_init_before_test} computes it: the size rounded up to
     * {@code max(large page, guest page)}; the address {@code (max_gfn - guest pages) * guest page}
     * ({@code max_gfn} being the last guest frame of the IPA space), or {@code -p}, aligned down.
     *
     * @throws IllegalArgumentException naming the option when the run is impossible
     */
    public static Plan plan(VmConfig config, Options o) {
        Granule host = config.granule();
        o.backing.check(host);
        GuestMode mode = o.mode;
        try {
            Geometry.stage2(host, mode.paBits());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("-m: " + mode.id() + " " + mode + " (" + mode.description() + ") is beyond ptlab's stage-2 with "
                    + host.label() + " pages: " + e.getMessage());
        }
        if (o.vcpus < 1 || o.vcpus > MAX_VCPUS) throw new IllegalArgumentException("vcpus: " + o.vcpus + " is outside 1.." + MAX_VCPUS);
        if (o.memory <= 0) throw new IllegalArgumentException("memory: " + o.memory + " is not positive");
        long guestPage = mode.guestGranule().pageSize();
        long alignment = Math.max(o.backing.size(host), guestPage);
        long limit = 1L << mode.paBits();
        if (o.memory > limit - alignment) {
            throw new IllegalArgumentException("memory: " + Sizes.format(o.memory) + " does not fit below the top of the " + mode.paBits()
                    + "-bit IPA space of " + mode);
        }
        long size = (o.memory + alignment - 1) & -alignment;
        long maxGfn = limit / guestPage - 1;
        long gpa = o.physOffset != 0 ? o.physOffset : (maxGfn - size / guestPage) * guestPage;
        gpa &= -alignment;
        if (gpa < 0 || gpa + size > limit) {
            throw new IllegalArgumentException("-p: 0x" + Long.toHexString(o.physOffset) + " puts the " + Sizes.format(size)
                    + " region beyond the " + mode.paBits() + "-bit IPA space of " + mode);
        }
        Plan p = new Plan(mode, o.backing, host, size, gpa, o.vcpus);
        if (o.partition && p.largePages() < o.vcpus) {
            throw new IllegalArgumentException("vcpus: " + o.vcpus + " is more than the " + p.largePages() + " large pages to partition");
        }
        return p;
    }

    /** Runs every phase on a fresh VM, destroys it, and returns the reports. */
    public static Result run(VmConfig config, Options o) {
        return run(config, o, new Progress());
    }

    /** Guest accesses a run makes (for progress): create, update and adjust together. */
    static long expectedAccesses(Plan p, Options o) {
        long large = p.largePages(), pages = p.hostPages();
        long update = p.backing.kind() == Backing.Kind.ANONYMOUS ? pages : large * (1 + p.largePage / p.hostPage / 2);
        return (o.partition ? 1 : o.vcpus) * (large + update + pages);
    }

    /**
     * {@link #run(VmConfig, Options)}, publishing its progress to {@code progress}. The VM's IPA
     * size is the guest mode's PA bits (the selftest creates its VM with the mode's shape),
     * whatever {@code config} says.
     */
    public static Result run(VmConfig config, Options o, Progress progress) {
        Plan p = plan(config, o);
        Vm vm = new Vm(config.withIpaBits(p.mode.paBits()));
        Result r = new Result(p);
        progress.start(vm, expectedAccesses(p, o));
        GuestMemory memory = null;
        try {
            memory = GuestMemory.add(vm, p.gpa, p.size, o.backing);
            Memslot slot = memory.slot;
            for (int i = 0; i < o.vcpus; i++) vm.createVcpu();
            long base = p.gpa, large = p.largePage, host = p.hostPage, largePages = p.largePages();
            int n = o.vcpus;
            boolean part = o.partition, serial = o.schedule == Schedule.SERIAL;
            boolean anonymous = o.backing.kind() == Backing.Kind.ANONYMOUS;

            r.phases.add(Simulation.runPhase(vm, "create", (v, i) -> {
                Access a = i % 2 == 0 ? Access.WRITE : Access.READ;
                for (long k = from(largePages, n, i, part); k < to(largePages, n, i, part); k++) v.access(base + k * large, a);
            }, serial));
            r.afterCreate = TableSnapshot.of(vm.table());
            r.phases.add(Simulation.runHostOp(vm, "log-enable", () -> vm.enableDirtyLogging(slot)));
            BitSet[] writes = new BitSet[n];
            r.phases.add(Simulation.runPhase(vm, "update", (v, i) -> {
                BitSet w = writes[i] = new BitSet();
                long k0 = from(largePages, n, i, part), k1 = to(largePages, n, i, part);
                if (anonymous) {
                    // Only VM_MEM_SRC_ANONYMOUS takes this branch: every vCPU writes, whatever its do_write.
                    for (long k = k0; k < k1; k++) write(v, base + k * large, base, host, w);
                    return;
                }
                // The guest code's own arithmetic: write the large page's first host page, step to
                // its middle, read (pages per large page / 2) host pages; the steps add up to one
                // large page except when it is one host page (shmem), where they add up to half.
                long addr = base + k0 * large;
                for (long k = k0; k < k1; k++) {
                    write(v, addr, base, host, w);
                    addr += large / 2;
                    for (long j = 0; j < large / host / 2; j++, addr += host) v.access(addr, Access.READ);
                }
            }, serial));
            for (BitSet w : writes) if (w != null) r.written.or(w);
            r.logged.or(BitSet.valueOf(vm.getDirtyLog(slot, false)));
            r.phases.add(Simulation.runHostOp(vm, "log-disable", () -> vm.disableDirtyLogging(slot)));
            r.phases.add(Simulation.runPhase(vm, "adjust", (v, i) -> {
                long end = base + to(largePages, n, i, part) * large;
                for (long a = base + from(largePages, n, i, part) * large; a < end; a += host) v.access(a, Access.READ);
            }, serial));
            r.afterAdjust = r.tableAtEnd = TableSnapshot.of(vm.table());
            r.adjustDifference = r.afterAdjust.differenceFrom(r.afterCreate);
            r.adjustShapeDifference = r.afterAdjust.differenceFrom(r.afterCreate, Stage2Descriptor.S2AP_W);
        } finally {
            r.endRun(progress, vm, memory);
        }
        return r;
    }

    private static void write(Vcpu v, long gpa, long base, long page, BitSet written) {
        v.access(gpa, Access.WRITE);
        written.set((int) ((gpa - base) / page));
    }

    /** First large page vCPU {@code i} of {@code n} touches: 0, or with partitioning the start of its share. */
    static long from(long pages, int n, int i, boolean partition) {
        return partition ? pages * i / n : 0;
    }

    /** End (exclusive) of the large pages vCPU {@code i} touches. */
    static long to(long pages, int n, int i, boolean partition) {
        return partition ? pages * (i + 1) / n : pages;
    }
}
