package dev.ptlab.core.table;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.lang.reflect.Method;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import org.jetbrains.kotlinx.lincheck.Actor;
import org.jetbrains.kotlinx.lincheck.execution.ExecutionScenario;
import org.jetbrains.lincheck.datastructures.ManagedStrategyGuaranteeKt;
import org.jetbrains.lincheck.datastructures.ModelCheckingOptions;
import org.jetbrains.lincheck.datastructures.Validate;
import org.jetbrains.lincheck.datastructures.verifier.EpsilonVerifier;

/**
 * Test support for Lincheck model-checking tests: one stage-2 table on checking-mode memory
 * (4K granule, 39-bit IPA: a level-1 root, level-2 and level-3 tables), a TLB system, and two
 * vCPUs, each with its own memory cache and TLB. A test scenario is a subclass whose public
 * no-argument constructor builds the initial state, whose {@code t0()} and {@code t1()} are the
 * two vCPUs' operations (run concurrently by Lincheck's model checker, which explores their
 * interleavings at every shared-memory access), and whose {@code @Validate} method checks the
 * end state of each explored interleaving.
 *
 * <p>Operations record their status and any exception instead of returning or throwing, so the
 * validation sees everything (Lincheck's result verifier is disabled: the legal outcomes are not
 * all sequential, since RACED is the concurrent "re-fault" answer, so the validation enumerates
 * them itself). AssertJ is not used inside the analysed code: failures are AssertionErrors.
 */
abstract class LincheckRig {
    static final Granule G = Granule.G4K;
    static final long MEM_BASE = 0x10_0000_0000L;
    static final int VMID = 3;
    static final int FAULT = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
    static final long K4 = 0x1000, M2 = 2L << 20;
    /** The 2M block (IPA) every scenario works in, and the PAs mapped there. */
    static final long A = 0x4000_0000L, P = 0x8000_0000L, Q = 0xC000_0000L;

    final PhysicalMemory mem = new PhysicalMemory(MEM_BASE, 64 * K4, G, true);
    final TlbSystem tlbs = new TlbSystem();
    final Stage2PageTable table = new Stage2PageTable(Geometry.stage2(G, 39), mem, tlbs, VMID, 0);
    /** Capacity 3 (a stage-2 fault's minimum at most): the rig's 64 frames stay enough. */
    final MemCache c0 = new MemCache(mem, 3);
    final MemCache c1 = new MemCache(mem, 3);
    final Tlb tlb0 = new Tlb("cpu0", G);
    final Tlb tlb1 = new Tlb("cpu1", G);
    /** What each vCPU's operation returned (null: it threw, see err0/err1). */
    Status s0, s1;
    Throwable err0, err1;

    LincheckRig() {
        tlbs.register(tlb0);
        tlbs.register(tlb1);
        c0.topUp(3);
        c1.topUp(3);
    }

    /** Setup, exclusive: maps with a scratch cache, so c0 and c1 start full. */
    final void setupMap(long ipa, long size, long pa, Prot prot) {
        MemCache setup = new MemCache(mem, 3);
        setup.topUp(3);
        table.map(ipa, size, pa, prot, setup);
        setup.release();
    }

    final Mmu mmu(Tlb tlb, boolean hardwareAf) {
        return new Mmu(table.geometry(), mem, tlb, table.rootPa(), VMID, false, hardwareAf);
    }

    final void run0(Supplier<Status> op) {
        try {
            s0 = op.get();
        } catch (Throwable e) {
            err0 = e;
        }
    }

    final void run1(Supplier<Status> op) {
        try {
            s1 = op.get();
        } catch (Throwable e) {
            err1 = e;
        }
    }

    /** The leaf descriptor map installs for {@code pa}/{@code prot} at {@code level}. */
    final long leaf(long pa, Prot prot, int level) {
        return Stage2Descriptor.leaf(table.geometry(), pa, Stage2Descriptor.attributes(prot, false, table.geometry().oaFormat()), level);
    }

    static AssertionError fail(String fmt, Object... args) {
        return new AssertionError(String.format(fmt, args));
    }

    static void require(boolean ok, String fmt, Object... args) {
        if (!ok) throw fail(fmt, args);
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /**
     * Lincheck's validation function, called after each explored interleaving: runs {@link #end},
     * which Lincheck is told to ignore (run unanalysed: no switch points, no event tracking): the
     * checks walk whole tables, which under analysis costs about a second per invocation.
     */
    @Validate
    public final void validate() {
        end();
    }

    /** The end-state checks of one scenario: throw AssertionError on an illegal outcome. */
    protected abstract void end();

    /** First part of every validation: neither vCPU's operation threw. */
    final void noErrors() {
        if (err0 != null) throw new AssertionError("t0 threw " + err0, err0);
        if (err1 != null) throw new AssertionError("t1 threw " + err1, err1);
    }

    /**
     * Last part of every validation: after a grace period every deferred free has run, refcounts
     * are exact (1 + counted entries, every reachable frame live and linked once), exactly
     * {@code tableFrames} frames (root included) are in use outside the two memory caches, and
     * after destroy and releasing the caches no frame is left.
     */
    final void framesAccountedFor(long tableFrames) {
        table.reclaimer().barrier();
        require(table.reclaimer().pending() == 0, "deferred frees still pending after barrier: %d", table.reclaimer().pending());
        table.checkRefcounts();
        long inTables = mem.framesInUse() - c0.size() - c1.size();
        require(inTables == tableFrames, "%d frames in tables, expected %d (statuses %s/%s)", inTables, tableFrames, s0, s1);
        table.destroy();
        c0.release();
        c1.release();
        require(mem.framesInUse() == 0, "%d frames leaked", mem.framesInUse());
    }

    // ---- running a scenario ----

    /** Outcomes seen per scenario class, across the interleavings explored (evidence of exploration). */
    static final ConcurrentHashMap<Class<?>, Set<String>> OUTCOMES = new ConcurrentHashMap<>();

    final void outcome(String o) {
        OUTCOMES.computeIfAbsent(getClass(), k -> ConcurrentHashMap.newKeySet()).add(o);
    }

    /**
     * Model-checks {@code scenario}: the custom scenario {@code t0() || t1()} only (no random
     * scenarios), {@code invocations} interleavings at most.
     */
    static void check(Class<? extends LincheckRig> scenario, int invocations) {
        OUTCOMES.remove(scenario);
        options(scenario, invocations).check(scenario);
    }

    static ModelCheckingOptions options(Class<? extends LincheckRig> scenario, int invocations) {
        return new ModelCheckingOptions()
                .iterations(0)
                .invocationsPerIteration(invocations)
                .addCustomScenario(twoThreads(scenario))
                // Loops here are bounded walks over 512-entry tables and TLB arrays, not spin loops.
                // Lincheck's defaults force a thread switch every 10 iterations of any loop (so a
                // TLBI's loop over the TLB always let the other vCPU in, and the serial orders were
                // never explored) and call 50 iterations a livelock. Spin loops are still found by
                // its await-loop analysis.
                .loopIterationsBeforeThreadSwitch(10_000)
                .loopBound(20_000)
                .minimizeFailedScenario(false)
                .verifier(EpsilonVerifier.class)
                .addGuarantee(ManagedStrategyGuaranteeKt.forClasses(scenario.getCanonicalName()).methods("end").ignore())
                // Statistics only (operation counters, cache-maintenance tallies): not part of any
                // protocol, and about a quarter of the analysis cost.
                .addGuarantee(ManagedStrategyGuaranteeKt.forClasses(TableCounters.class.getName(), CacheMaintenance.class.getName(),
                        LongAdder.class.getName()).allMethods().ignore())
                // Freeing a detached subtree walks 512 entries of a table no live walker should
                // reach: one atomic step (switches before and after it, none inside) keeps the
                // exploration on the races that matter; a walker that does read the freed table
                // still does so after that step, and checking mode throws.
                .addGuarantee(ManagedStrategyGuaranteeKt.forClasses(Stage2PageTable.class.getName()).methods("freeUnlinked").treatAsAtomic());
    }

    static Set<String> outcomes(Class<? extends LincheckRig> scenario) {
        return OUTCOMES.getOrDefault(scenario, Set.of());
    }

    private static ExecutionScenario twoThreads(Class<?> scenario) {
        try {
            Method a = scenario.getMethod("t0"), b = scenario.getMethod("t1");
            return new ExecutionScenario(List.of(), List.of(List.of(new Actor(a, List.of())), List.of(new Actor(b, List.of()))),
                    List.of(), null);
        } catch (NoSuchMethodException e) {
            throw new IllegalArgumentException(scenario + " has no public t0()/t1()", e);
        }
    }
}
