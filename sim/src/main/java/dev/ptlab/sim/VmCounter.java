package dev.ptlab.sim;

import dev.ptlab.core.hw.TlbiScope;
import dev.ptlab.core.mem.CacheCounter;
import dev.ptlab.core.table.TableCounter;
import java.util.function.ToLongFunction;

/**
 * The VM's counters a phase report gives, in report order: the stage-2 table's
 * ({@link TableCounter}), the stage-2 TLB invalidations by scope ({@link TlbiScope}), cache
 * maintenance ({@link CacheCounter}) and the table memory's. Each reads its value from a VM;
 * over a phase, the difference of two readings, except the {@link #level() levels} (peak and
 * frames in use), which are read at the end.
 */
public enum VmCounter implements PhaseCounter {
    BBM(TableCounter.BREAK_BEFORE_MAKE, Text.COLUMN, true),
    LEAVES_INSTALLED(TableCounter.LEAVES_INSTALLED, Text.JSON_ONLY, false),
    LEAVES_REMOVED(TableCounter.LEAVES_REMOVED, Text.JSON_ONLY, false),
    TABLES_INSTALLED(TableCounter.TABLES_INSTALLED, Text.JSON_ONLY, false),
    TABLES_FREED(TableCounter.TABLES_FREED, Text.JSON_ONLY, false),
    COALESCED(TableCounter.COALESCED, Text.COLUMN, true),
    SPLITS(TableCounter.SPLITS, Text.COLUMN, true),
    TABLE_RACED(TableCounter.RACED, Text.JSON_ONLY, false),
    ATTR_UPDATES(TableCounter.ATTR_UPDATES, Text.JSON_ONLY, false),
    TLBI_IPA(TlbiScope.IPA),
    TLBI_LOCAL(TlbiScope.IPA_LOCAL),
    TLBI_RANGE(TlbiScope.RANGE),
    TLBI_VMID(TlbiScope.VMID),
    DCACHE_OPS(CacheCounter.DCACHE_OPS, Text.COLUMN, true),
    DCACHE_BYTES(CacheCounter.DCACHE_BYTES, Text.COLUMN, true),
    ICACHE_OPS(CacheCounter.ICACHE_OPS, Text.COLUMN, true),
    ICACHE_BYTES(CacheCounter.ICACHE_BYTES, Text.COLUMN, true),
    /** Of the D- and I-cache operations above, those issued while a valid entry was broken. */
    BBM_CMO_OPS(CacheCounter.BBM_CMO_OPS, Text.COLUMN, true),
    BBM_CMO_BYTES(CacheCounter.BBM_CMO_BYTES, Text.COLUMN, true),
    FRAMES_ALLOCATED("frames-allocated", Text.COLUMN, false, false, vm -> vm.tableMemory().allocations()),
    FRAMES_FREED("frames-freed", Text.COLUMN, false, false, vm -> vm.tableMemory().frees()),
    /** Memory-cache top-ups, the VM's split cache's and every vCPU's. */
    MEMCACHE_REFILLS("memcache-refills", Text.JSON_ONLY, false, false, VmCounter::refills),
    TLB_CONFLICTS("tlb-conflicts", Text.JSON_ONLY, false, false, vm -> vm.tlbs().conflicts()),
    DEFERRED_FREES("deferred-frees", Text.JSON_ONLY, false, false, vm -> vm.table().reclaimer().deferred()),
    INVALID_WINDOW_STEPS(TableCounter.INVALID_WINDOW_STEPS, Text.JSON_ONLY, true),
    /** The phase's peak of table frames in use (memory caches included). */
    FRAMES_PEAK("frames-peak", Text.COLUMN, true, true, vm -> vm.tableMemory().peakFramesInUse()),
    FRAMES_IN_USE("frames-in-use", Text.JSON_ONLY, false, true, vm -> vm.tableMemory().framesInUse());

    private final Entry entry;
    private final boolean level;
    private final ToLongFunction<Vm> read;

    VmCounter(String key, Text text, boolean compared, boolean level, ToLongFunction<Vm> read) {
        this.entry = new Entry(key, text, compared);
        this.level = level;
        this.read = read;
    }

    VmCounter(TableCounter c, Text text, boolean compared) {
        this(c.key(), text, compared, false, vm -> vm.table().counters().get(c));
    }

    /** A stage-2 TLBI scope: in the table's {@code tlbi i/l/r/v} column and compared. */
    VmCounter(TlbiScope s) {
        this(s.key(), Text.COLUMN, true, false, vm -> vm.tlbs().flushes(s));
    }

    VmCounter(CacheCounter c, Text text, boolean compared) {
        this(c.key(), text, compared, false, vm -> vm.tableMemory().cacheMaintenance().get(c));
    }

    @Override
    public Entry entry() { return entry; }

    /** Whether a phase reports the value at its end rather than the change over it. */
    public boolean level() { return level; }

    long read(Vm vm) {
        return read.applyAsLong(vm);
    }

    @Override
    public long valueIn(PhaseReport phase) {
        return phase.get(this);
    }

    private static long refills(Vm vm) {
        long n = vm.splitCacheRefills();
        for (Vcpu v : vm.vcpus()) n += v.cache().refills();
        return n;
    }
}
