package dev.ptlab.core.conc;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.check.TlbChecker;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.FreeUnlinkedHook;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Function;

/**
 * A bounded stress run of parallel stage-2 faults against an exclusive writer, on checking-mode
 * memory. Test support for {@code Stage2StressTest} and the protocol mutation tests.
 *
 * <p>N {@link Vcpu} threads access random addresses of a {@link Backing} (a hot set plus a
 * spread; read, write, exec), handling their faults with shared walks. One writer (the calling
 * thread) meanwhile runs exclusive operations as KVM's MMU notifier and dirty logging do:
 * unmap of random ranges, write-protect followed by the caller's range TLBI, eager split of
 * blocks, aging (clear AF), and migration of a region (unmap, new backing PA, invalidation
 * sequence bump, all under the write lock). vCPUs re-map whole blocks in huge regions, so
 * tables the writer's split built are coalesced back into blocks by shared walks while other
 * vCPUs fault inside them: the subtree free is deferred through the reclaimer. Reader threads
 * do read-only shared walks ({@code getLeaf}) of the same addresses all along.
 *
 * <p>Every few writer operations the run reaches a quiescent point (vCPUs parked between
 * accesses, the writer between operations, every TLBI done) and checks: no TLB of any vCPU
 * holds a stale grant ({@link TlbChecker}), refcounts are exact ({@code checkRefcounts}), no
 * entry is LOCKED, and every leaf maps what the backing says with no more rights. Throughout,
 * every translation is checked by the vCPU, every TLB reports conflicts, and checking-mode
 * memory catches use after free, reuse and break-before-make violations. At the end the table
 * is destroyed and every cache released: every frame must be back.
 */
public final class StressRun {
    public static final long MEM_BASE = 0x10_0000_0000L;
    public static final int VMID = 9;

    /** What to run. Fields are public; defaults give the standard 4K/40-bit run. */
    public static final class Config {
        public long seed = 1;
        public Granule granule = Granule.G4K;
        public int ipaBits = 40;
        public int vcpus = 3;
        /** Threads doing read-only shared walks (getLeaf) of hot addresses beside the vCPUs. */
        public int readers = 1;
        public int regions = 16;
        public long budgetMillis = 4000;
        public int tableFlags = 0;
        /** The vCPUs' MMUs set the access flag themselves (VTCR_EL2.HA): no access-flag faults, CAS races instead. */
        public boolean hardwareAf;
        /** Quiescent check every this many writer operations. */
        public int checkEvery = 16;
        /** The TLB maintenance the table gets (mutation tests wrap the real one). */
        public Function<TlbSystem, TlbMaintenance> tableTlbi = t -> t;
        public FreeUnlinkedHook freeUnlinkedHook = FreeUnlinkedHook.DEFAULT;
        /** End the run at the first failure (mutation tests: detection is all they need). */
        public boolean stopOnFirstFailure;

        public Config seed(long s) { seed = s; return this; }
        public Config granule(Granule g) { granule = g; return this; }
        public Config vcpus(int n) { vcpus = n; return this; }
        public Config readers(int n) { readers = n; return this; }
        public Config tableFlags(int f) { tableFlags = f; return this; }
        public Config hardwareAf(boolean b) { hardwareAf = b; return this; }
        public Config regions(int n) { regions = n; return this; }
        public Config budgetMillis(long ms) { budgetMillis = ms; return this; }
        public Config tableTlbi(Function<TlbSystem, TlbMaintenance> f) { tableTlbi = f; return this; }
        public Config freeUnlinkedHook(FreeUnlinkedHook h) { freeUnlinkedHook = h; return this; }
        public Config stopOnFirstFailure(boolean b) { stopOnFirstFailure = b; return this; }

        @Override
        public String toString() {
            return "seed=" + seed + " granule=" + granule.label() + " ipaBits=" + ipaBits + " vcpus=" + vcpus + " readers=" + readers
                    + " regions=" + regions + " tableFlags=" + tableFlags + " hardwareAf=" + hardwareAf
                    + " budget=" + budgetMillis + "ms";
        }
    }

    enum Op { UNMAP, WRPROTECT, SPLIT, MIGRATE, AGE, DIRTY_LOG }

    /** The outcome: failures (each one a detected violation) and activity counts. */
    public static final class Report {
        public final Config config;
        /** Thrown in any thread (first one first). */
        public final List<Throwable> exceptions = new ArrayList<>();
        public final List<String> wrongTranslations = new ArrayList<>();
        public final List<String> tlbConflicts = new ArrayList<>();
        public final List<String> staleGrants = new ArrayList<>();
        public final List<String> tableViolations = new ArrayList<>();
        public long elapsedMillis, quiescentChecks, framesLeft = -1;
        public long faults, translationFaults, permissionFaults, accessFlagFaults, accesses, refaults, maxFaultsPerAccess;
        public long vcpuRaced, seqRetries, relaxes, mkyoungs, maps, blockMaps, guestErrors;
        /** Shared read-only walks by the reader threads, and LOCKED entries they saw. */
        public long readerWalks, readerLocked;
        public long tableRaced, coalesced, breakBeforeMake, splits, deferred, reclaimed;
        public final Map<Op, Long> writerOps = new EnumMap<>(Op.class);
        public final List<String> vcpuStats = new ArrayList<>();

        Report(Config config) {
            this.config = config;
            for (Op o : Op.values()) writerOps.put(o, 0L);
        }

        public long writerOpsTotal() {
            return writerOps.values().stream().mapToLong(Long::longValue).sum();
        }

        /** Whether any violation or exception was found. */
        public boolean failed() {
            return !exceptions.isEmpty() || !wrongTranslations.isEmpty() || !tlbConflicts.isEmpty() || !staleGrants.isEmpty()
                    || !tableViolations.isEmpty();
        }

        /** The detected violations, one line each (exceptions with their message). */
        public List<String> failures() {
            List<String> out = new ArrayList<>();
            for (Throwable t : exceptions) out.add("exception: " + t);
            wrongTranslations.forEach(s -> out.add("translation: " + s));
            tlbConflicts.forEach(s -> out.add("TLB conflict: " + s));
            staleGrants.forEach(s -> out.add("stale grant: " + s));
            tableViolations.forEach(s -> out.add("table: " + s));
            return out;
        }

        public String activity() {
            return String.format("elapsed=%dms accesses=%d faults=%d (translation=%d permission=%d af=%d) refaults=%d"
                            + " maxFaults/access=%d vcpuRaced=%d tableRaced=%d seqRetries=%d maps=%d (block=%d) relax=%d mkyoung=%d"
                            + " guestErrors=%d | coalesced=%d bbm=%d splits=%d | reclaimer deferred=%d reclaimed=%d | writer ops=%d %s"
                            + " | reader walks=%d (locked seen=%d) | quiescent checks=%d | frames left=%d",
                    elapsedMillis, accesses, faults, translationFaults, permissionFaults, accessFlagFaults, refaults,
                    maxFaultsPerAccess, vcpuRaced, tableRaced, seqRetries, maps, blockMaps, relaxes, mkyoungs, guestErrors, coalesced,
                    breakBeforeMake, splits, deferred, reclaimed, writerOpsTotal(), writerOps, readerWalks, readerLocked, quiescentChecks,
                    framesLeft);
        }

        @Override
        public String toString() {
            StringBuilder b = new StringBuilder("stress run [" + config + "]\n  " + activity());
            List<String> f = failures();
            b.append("\n  failures: ").append(f.size());
            for (int i = 0; i < Math.min(10, f.size()); i++) b.append("\n    ").append(f.get(i));
            if (!exceptions.isEmpty()) {
                StringWriter w = new StringWriter();
                exceptions.get(0).printStackTrace(new PrintWriter(w));
                b.append("\n  first exception:\n").append(w);
            }
            return b.toString();
        }
    }

    private final Config cfg;
    private final Report report;
    private final PhysicalMemory memory;
    private final TlbSystem tlbs = new TlbSystem();
    private final Stage2PageTable table;
    private final Backing backing;
    private final List<Vcpu> vcpus = new ArrayList<>();
    private final MemCache writerCache;
    private final long pageSize;
    private final long blockSize;
    private final int[] hotRegions;
    private final long[] hotPages;
    private final ConcurrentLinkedQueue<Throwable> thrown = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<String> conflicts = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<String> readerViolations = new ConcurrentLinkedQueue<>();
    private final java.util.concurrent.atomic.LongAdder readerWalks = new java.util.concurrent.atomic.LongAdder();
    private final java.util.concurrent.atomic.LongAdder readerLocked = new java.util.concurrent.atomic.LongAdder();
    /** Workers (vCPU and reader threads) still running, and how many of them are parked at the writer's request. */
    private final java.util.concurrent.atomic.AtomicInteger alive = new java.util.concurrent.atomic.AtomicInteger();
    private final java.util.concurrent.atomic.AtomicInteger parked = new java.util.concurrent.atomic.AtomicInteger();
    /** Bumped by the writer to let parked workers go. */
    private volatile long releases;
    private volatile boolean stop;
    private volatile boolean pause;

    private StressRun(Config cfg) {
        this.cfg = cfg;
        this.report = new Report(cfg);
        Random seeds = new Random(cfg.seed);
        memory = new PhysicalMemory(MEM_BASE, 256L << 20, cfg.granule, true);
        table = new Stage2PageTable(Geometry.stage2(cfg.granule, cfg.ipaBits), memory, cfg.tableTlbi.apply(tlbs), VMID, cfg.tableFlags);
        table.setFreeUnlinkedHook(cfg.freeUnlinkedHook);
        pageSize = cfg.granule.pageSize();
        blockSize = cfg.granule.levelSize(2);
        backing = new Backing(blockSize * 8, blockSize, cfg.regions, new Random(seeds.nextLong()));
        writerCache = new MemCache(memory);
        for (int i = 0; i < cfg.vcpus; i++) {
            Vcpu v = new Vcpu(i, table, tlbs, backing, seeds.nextLong(), cfg.hardwareAf);
            v.tlb.setConflictListener((tlb, vmid, addr, level, pte, otherLevel, otherBase, otherPte) -> {
                if (conflicts.size() < 100) {
                    conflicts.add(tlb.name() + " fill of level-" + level + " 0x" + Long.toHexString(pte) + " for 0x" + Long.toHexString(addr)
                            + " overlaps cached level-" + otherLevel + " 0x" + Long.toHexString(otherPte) + " at 0x" + Long.toHexString(otherBase));
                }
                if (cfg.stopOnFirstFailure) stop = true;
            });
            vcpus.add(v);
        }
        // The hot set: the two huge regions 0 and 1 and the page-backed last one, a handful of pages in them.
        hotRegions = new int[] {0, 1, cfg.regions - 1};
        hotPages = new long[24];
        for (int i = 0; i < hotPages.length; i++) {
            int region = hotRegions[i % hotRegions.length];
            hotPages[i] = backing.regionBase(region) + pageSize * seeds.nextInt((int) (blockSize / pageSize));
        }
    }

    /** Runs {@code cfg} to its time budget (or its first failure) and reports. */
    public static Report run(Config cfg) {
        return new StressRun(cfg).go();
    }

    private Report go() {
        long start = System.nanoTime();
        List<Thread> threads = new ArrayList<>();
        Random seeds = new Random(cfg.seed ^ 0x5DEECE66DL);
        for (Vcpu v : vcpus) {
            long seed = seeds.nextLong();
            Thread t = new Thread(() -> vcpuLoop(v, new Random(seed)), "stress-" + v.tlb.name());
            t.setDaemon(true);
            threads.add(t);
        }
        for (int i = 0; i < cfg.readers; i++) {
            long seed = seeds.nextLong();
            Thread t = new Thread(() -> readerLoop(new Random(seed)), "stress-reader" + i);
            t.setDaemon(true);
            threads.add(t);
        }
        alive.set(threads.size());
        threads.forEach(Thread::start);
        try {
            writerLoop(new Random(seeds.nextLong()), start + TimeUnit.MILLISECONDS.toNanos(cfg.budgetMillis));
        } catch (Throwable t) {
            thrown.add(t);
        } finally {
            stop = true;
            for (Vcpu v : vcpus) v.abandon = true;
        }
        for (Thread t : threads) {
            try {
                t.join(30_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (t.isAlive()) {
                AssertionError hung = new AssertionError(t.getName() + " did not end within 30 s after the run");
                hung.setStackTrace(t.getStackTrace());
                thrown.add(hung);
            }
        }
        report.elapsedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        boolean allEnded = threads.stream().noneMatch(Thread::isAlive);
        if (allEnded) {
            try {
                quiescentChecks();
            } catch (Throwable t) {
                thrown.add(t);
            }
        }
        collect();
        if (allEnded) {
            try {
                table.destroy();
                for (Vcpu v : vcpus) v.cache.release();
                writerCache.release();
                report.framesLeft = memory.framesInUse();
            } catch (Throwable t) {
                report.exceptions.add(t);
            }
        }
        return report;
    }

    private void vcpuLoop(Vcpu v, Random rnd) {
        try {
            while (!stop) {
                if (pause) {
                    parkForCheck();
                    continue;
                }
                v.access(pickAddress(rnd), pickAccess(rnd));
                if (cfg.stopOnFirstFailure && !v.violations().isEmpty()) stop = true;
            }
        } catch (Throwable t) {
            thrown.add(t);
            stop = true;
        } finally {
            alive.decrementAndGet();
        }
    }

    /**
     * A software reader beside the faults: read-only shared walks of hot addresses, half of them
     * {@code getLeaf} of one address, half a walk over a whole hot huge region (whose tables the
     * vCPUs keep coalescing), like a dirty-log harvest or a table dump would do. Each entry seen
     * must be consistent with the backing: a valid leaf maps the backing's PA (exactly, inside a
     * walk: a migration needs the write lock; of a generation current at some point of the walk
     * for getLeaf, checked after it), an invalid one is empty or LOCKED (never poison).
     */
    private void readerLoop(Random rnd) {
        try {
            while (!stop) {
                if (pause) {
                    parkForCheck();
                    continue;
                }
                if (rnd.nextBoolean()) {
                    long ipa = rnd.nextBoolean() ? hotPages[rnd.nextInt(hotPages.length)] : pickAddress(rnd);
                    int g1 = backing.generation(ipa);
                    dev.ptlab.core.table.Leaf leaf = table.getLeaf(ipa);
                    // Checked after the walk, outside the read lock: a migration may have come since.
                    readerCheck(ipa, leaf.pte(), leaf.level(), g1, backing.generation(ipa));
                } else {
                    long base = backing.regionBase(rnd.nextInt(2));
                    table.walk(base, blockSize, (ctx, visit) -> {
                        // Inside the walk (read lock): no migration can run, the generation is current.
                        int g = backing.generation(ctx.addr());
                        readerCheck(ctx.addr(), ctx.old(), ctx.level(), g, g);
                        return Status.OK;
                    }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE);
                }
                readerWalks.increment();
            }
        } catch (Throwable t) {
            thrown.add(t);
            stop = true;
        } finally {
            alive.decrementAndGet();
        }
    }

    private void readerCheck(long ipa, long pte, int level, int g1, int g2) {
        String bad = null;
        if (Pte.isValid(pte)) {
            long span = cfg.granule.levelSize(level);
            long pa = table.geometry().outputAddress(pte) + (ipa & (span - 1));
            if (!backing.paMatches(ipa, pa, g1, g2)) {
                bad = "maps PA 0x" + Long.toHexString(pa) + ", backing has 0x" + Long.toHexString(backing.pa(ipa, g2)) + " (generations "
                        + g1 + ".." + g2 + ")";
            }
        } else if (Pte.isLocked(pte)) {
            readerLocked.increment();
        } else if (pte != 0) {
            bad = "invalid non-zero entry";
        }
        if (bad != null) {
            if (readerViolations.size() < 100) {
                readerViolations.add(Thread.currentThread().getName() + ": entry for 0x" + Long.toHexString(ipa) + " = level-" + level
                        + " 0x" + Long.toHexString(pte) + ": " + bad);
            }
            if (cfg.stopOnFirstFailure) stop = true;
        }
    }

    private long pickAddress(Random rnd) {
        int k = rnd.nextInt(10);
        long page;
        if (k < 5) {
            page = hotPages[rnd.nextInt(hotPages.length)];
        } else if (k < 8) {
            page = backing.regionBase(hotRegions[rnd.nextInt(hotRegions.length)]) + pageSize * rnd.nextInt((int) (blockSize / pageSize));
        } else {
            page = backing.base + pageSize * (long) rnd.nextInt((int) (backing.span() / pageSize));
        }
        return page + 8L * rnd.nextInt((int) (pageSize / 8));
    }

    private static Access pickAccess(Random rnd) {
        int k = rnd.nextInt(20);
        return k < 11 ? Access.READ : k < 18 ? Access.WRITE : Access.EXEC;
    }

    // ------------------------------------------------------------------------------------------
    // the writer

    private void writerLoop(Random rnd, long deadline) {
        long ops = 0;
        // The budget, stretched (up to twice) until the run has shown the races it is about: on a
        // loaded machine the threads may get little CPU time.
        long hardDeadline = cfg.stopOnFirstFailure ? deadline : deadline + (deadline - System.nanoTime());
        while (!stop && (System.nanoTime() < deadline || (System.nanoTime() < hardDeadline && !busyEnough()))) {
            Op op = pickOp(rnd);
            writerOp(op, rnd);
            report.writerOps.merge(op, 1L, Long::sum);
            ops++;
            if (ops % cfg.checkEvery == 0) pauseAndCheck();
            // Let the vCPUs fault in what was just taken away.
            LockSupport.parkNanos(rnd.nextInt(300_000));
        }
    }

    private static Op pickOp(Random rnd) {
        int k = rnd.nextInt(100);
        if (k < 30) return Op.UNMAP;
        if (k < 55) return Op.WRPROTECT;
        if (k < 80) return Op.SPLIT;
        if (k < 86) return Op.MIGRATE;
        if (k < 93) return Op.DIRTY_LOG;
        return Op.AGE;
    }

    private int pickRegion(Random rnd) {
        return rnd.nextInt(3) == 0 ? rnd.nextInt(cfg.regions) : hotRegions[rnd.nextInt(hotRegions.length)];
    }

    /** Whether the run has raced faults, deferred frees and a few quiescent checks to show. */
    private boolean busyEnough() {
        return table.counters().raced() > 0 && table.reclaimer().deferred() > 0 && report.quiescentChecks >= 5;
    }

    /** A page-granular range: a few pages, a whole region, or a few regions. Returns {start, size}. */
    private long[] pickRange(Random rnd) {
        int region = pickRegion(rnd);
        long base = backing.regionBase(region);
        switch (rnd.nextInt(3)) {
            case 0: {
                long start = base + pageSize * rnd.nextInt((int) (blockSize / pageSize));
                long size = pageSize * (1 + rnd.nextInt(16));
                return new long[] {start, Math.min(size, backing.end() - start)};
            }
            case 1:
                return new long[] {base, blockSize};
            default: {
                int n = 1 + rnd.nextInt(3);
                return new long[] {base, Math.min(n * blockSize, backing.end() - base)};
            }
        }
    }

    private void writerOp(Op op, Random rnd) {
        switch (op) {
            case UNMAP: {
                long[] r = pickRange(rnd);
                table.unmap(r[0], r[1]);
                break;
            }
            case WRPROTECT: {
                // Dirty logging: write-protect, then the caller's range TLBI (the table does none).
                long[] r = pickRange(rnd);
                table.wrprotect(r[0], r[1]);
                tlbs.flushVmidRange(VMID, r[0], r[1]);
                break;
            }
            case SPLIT: {
                // Eager split, as enabling dirty logging does it: write-protect (with the caller's
                // TLBI) and split. The next write to the range faults, and the vCPU maps the block
                // again: a coalescing by a shared walk while others fault inside the table.
                int region = rnd.nextInt(3) > 0 ? rnd.nextInt(2) : rnd.nextInt(cfg.regions);
                int n = 1 + rnd.nextInt(2);
                long start = backing.regionBase(region);
                long size = Math.min(n * blockSize, backing.end() - start);
                if (rnd.nextBoolean()) {
                    table.wrprotect(start, size);
                    tlbs.flushVmidRange(VMID, start, size);
                }
                writerCache.topUp((int) (size / blockSize) * table.framesForFullSplit(2) + 1);
                table.split(start, size, writerCache);
                break;
            }
            case MIGRATE: {
                // The MMU notifier: invalidate (unmap, TLBIs done by unmap) and change the backing,
                // with the invalidation sequence bumped, all under the write lock.
                int region = pickRegion(rnd);
                table.mmuLock().writeLock();
                try {
                    table.unmap(backing.regionBase(region), blockSize);
                    backing.migrate(region);
                } finally {
                    table.mmuLock().writeUnlock();
                }
                break;
            }
            case DIRTY_LOG: {
                // Dirty logging of a hot huge region on (write-protect with the caller's TLBI,
                // sometimes eager split) or off. While on, faults map pages: a write to a block
                // shrinks it to a table by a shared walk; once off, faults coalesce it again.
                int region = rnd.nextInt(2);
                long start = backing.regionBase(region);
                boolean on = !backing.dirtyLogging(start);
                table.mmuLock().writeLock();
                try {
                    backing.setDirtyLogging(region, on);
                    if (on) {
                        table.wrprotect(start, blockSize);
                        tlbs.flushVmidRange(VMID, start, blockSize);
                        if (rnd.nextBoolean()) {
                            writerCache.topUp(table.framesForFullSplit(2) + 1);
                            table.split(start, blockSize, writerCache);
                        }
                    }
                } finally {
                    table.mmuLock().writeUnlock();
                }
                break;
            }
            case AGE: {
                long[] r = pickRange(rnd);
                table.testClearYoung(r[0], r[1], true);
                break;
            }
            default:
                throw new AssertionError(op);
        }
    }

    /**
     * A worker between two accesses (or walks) at the writer's request: counts itself parked and
     * waits for the writer's release. (A counter and a release number rather than a Phaser: a
     * party arriving for the next phase while the last arrival is still advancing the current
     * one makes Phaser throw, which a loaded machine provokes.)
     */
    private void parkForCheck() {
        long r = releases;
        parked.incrementAndGet();
        try {
            while (releases == r && !stop) LockSupport.parkNanos(50_000);
        } finally {
            parked.decrementAndGet();
        }
    }

    /**
     * Parks every worker between accesses, checks, lets them go. A worker that is slow to leave
     * the previous park is still counted, which is safe: it reads {@code pause} again after
     * leaving, and the writer set it before counting.
     */
    private void pauseAndCheck() {
        pause = true;
        long give = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (parked.get() < alive.get()) {
            if (System.nanoTime() > give) {
                thrown.add(new AssertionError("workers did not park within 30 s (livelock or deadlock): " + parked.get() + " of "
                        + alive.get()));
                stop = true;
                pause = false;
                return;
            }
            LockSupport.parkNanos(20_000);
        }
        try {
            quiescentChecks();
        } finally {
            pause = false;
            releases++;
        }
        if (cfg.stopOnFirstFailure && (!thrown.isEmpty() || !report.staleGrants.isEmpty() || !report.tableViolations.isEmpty()
                || !conflicts.isEmpty())) {
            stop = true;
        }
    }

    private void quiescentChecks() {
        report.quiescentChecks++;
        for (Vcpu v : vcpus) {
            for (TlbChecker.StaleGrant g : TlbChecker.staleGrants(table, v.tlb, VMID)) {
                if (report.staleGrants.size() < 100) report.staleGrants.add(g.toString());
            }
            // The strict walk cache: every cached table descriptor is still the table's.
            for (TlbChecker.StaleWalk w : TlbChecker.staleWalkEntries(table, v.tlb, VMID)) {
                if (report.staleGrants.size() < 100) report.staleGrants.add(w.toString());
            }
        }
        try {
            table.checkRefcounts();
        } catch (RuntimeException | AssertionError e) {
            report.tableViolations.add("refcounts: " + e);
        }
        checkLeaves();
    }

    /** Every entry: not LOCKED; every valid leaf inside the backing, at its PA, with no right the backing withholds. */
    private void checkLeaves() {
        List<String> bad = report.tableViolations;
        table.walk(0, table.geometry().iaLimit(), (ctx, visit) -> {
            long pte = ctx.old();
            long at = ctx.entryBase();
            if (Pte.isLocked(pte)) {
                bad.add("LOCKED entry at 0x" + Long.toHexString(at) + " level " + ctx.level() + " at a quiescent point");
            } else if (Pte.isValid(pte)) {
                long size = ctx.entrySpan();
                if (!backing.contains(at) || !backing.contains(at + size - 1)) {
                    bad.add("leaf outside the backing at 0x" + Long.toHexString(at) + " level " + ctx.level());
                    return Status.OK;
                }
                long want = backing.pa(at, backing.generation(at));
                long oa = table.geometry().outputAddress(pte);
                if (oa != want) {
                    bad.add("leaf at 0x" + Long.toHexString(at) + " level " + ctx.level() + " maps 0x" + Long.toHexString(oa)
                            + ", backing has 0x" + Long.toHexString(want));
                }
                Prot has = Stage2Descriptor.prot(pte);
                Prot may = backing.rights(at);
                if ((has.bits() & ~may.bits() & (Prot.R_BIT | Prot.W_BIT | Prot.X_BITS)) != 0) {
                    bad.add("leaf at 0x" + Long.toHexString(at) + " has rights " + has + ", backing allows " + may);
                }
                if (!backing.huge(at) && ctx.level() != 3) {
                    bad.add("level-" + ctx.level() + " block at 0x" + Long.toHexString(at) + " in a page-backed region");
                }
            }
            if (bad.size() > 100) bad.remove(bad.size() - 1);
            return Status.OK;
        }, WalkFlags.LEAF, WalkPolicy.RANGE);
    }

    private void collect() {
        report.exceptions.addAll(thrown);
        report.tlbConflicts.addAll(conflicts);
        report.wrongTranslations.addAll(readerViolations);
        report.readerWalks = readerWalks.sum();
        report.readerLocked = readerLocked.sum();
        for (Vcpu v : vcpus) {
            report.wrongTranslations.addAll(v.violations());
            report.accesses += v.accesses;
            report.translationFaults += v.translationFaults;
            report.permissionFaults += v.permissionFaults;
            report.accessFlagFaults += v.accessFlagFaults;
            report.refaults += v.refaults;
            report.maxFaultsPerAccess = Math.max(report.maxFaultsPerAccess, v.maxFaultsInOneAccess);
            report.vcpuRaced += v.raced;
            report.seqRetries += v.seqRetries;
            report.relaxes += v.relaxes;
            report.mkyoungs += v.mkyoungs;
            report.maps += v.maps;
            report.blockMaps += v.blockMaps;
            report.guestErrors += v.guestErrors;
            report.vcpuStats.add(v.stats());
        }
        report.faults = report.translationFaults + report.permissionFaults + report.accessFlagFaults;
        report.tableRaced = table.counters().raced();
        report.coalesced = table.counters().coalesced();
        report.breakBeforeMake = table.counters().breakBeforeMake();
        report.splits = table.counters().splits();
        report.deferred = table.reclaimer().deferred();
        report.reclaimed = table.reclaimer().reclaimed();
    }
}
