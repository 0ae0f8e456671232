package dev.ptlab.core.hw;

import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.LongAdder;

/**
 * The TLBs of all CPUs of a system and the invalidations that reach them. Broadcast operations
 * act on every registered TLB; local ones on the caller's. Every operation is counted by
 * {@link TlbiScope}.
 *
 * <p>Completion: a broadcast invalidation returns only after every MMU walk that was in flight
 * when it began has finished (the effect of TLBI followed by DSB ISH). So once it returns, no
 * MMU can still be reading through the entries it invalidated, and their tables may be freed.
 */
public final class TlbSystem implements TlbMaintenance {
    private final CopyOnWriteArrayList<Tlb> tlbs = new CopyOnWriteArrayList<>();
    /** Invalidations by {@link TlbiScope} ordinal. */
    private final LongAdder[] byScope = new LongAdder[TlbiScope.values().length];

    public TlbSystem() {
        for (int i = 0; i < byScope.length; i++) byScope[i] = new LongAdder();
    }

    /** Adds a CPU's TLB so broadcast invalidations reach it. */
    public void register(Tlb tlb) {
        if (tlb == null) throw dev.ptlab.core.PageTableException.invalidArgument("tlb", null, "is null");
        tlbs.add(tlb);
    }

    public void unregister(Tlb tlb) {
        tlbs.remove(tlb);
    }

    @Override
    public void flushVmidIpa(int vmid, long ipa, int levelHint) {
        count(TlbiScope.IPA);
        for (Tlb t : tlbs) t.invalidateAddress(vmid, ipa);
        awaitWalks();
    }

    @Override
    public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
        count(TlbiScope.IPA_LOCAL);
        if (local != null) local.invalidateAddress(vmid, ipa);
    }

    @Override
    public void flushVmidRange(int vmid, long ipa, long size) {
        count(TlbiScope.RANGE);
        for (Tlb t : tlbs) t.invalidateRange(vmid, ipa, size);
        awaitWalks();
    }

    @Override
    public void flushVmid(int vmid) {
        count(TlbiScope.VMID);
        for (Tlb t : tlbs) t.invalidateVmid(vmid);
        awaitWalks();
    }

    @Override
    public void flushHypVa(long va, int levelHint) {
        count(TlbiScope.HYP_VA);
        for (Tlb t : tlbs) t.invalidateAddress(0, va);
        awaitWalks();
    }

    private void count(TlbiScope scope) {
        byScope[scope.ordinal()].increment();
    }

    /** Waits for the MMU walks in flight on every CPU (see the class comment). */
    private void awaitWalks() {
        for (Tlb t : tlbs) t.awaitWalk();
    }

    /** TLB conflicts found by all registered TLBs. */
    public long conflicts() {
        long n = 0;
        for (Tlb t : tlbs) n += t.conflicts();
        return n;
    }

    /** The registered TLBs (a snapshot). */
    public java.util.List<Tlb> tlbs() {
        return java.util.List.copyOf(tlbs);
    }

    /** Invalidations of {@code scope} so far. */
    public long flushes(TlbiScope scope) {
        return byScope[scope.ordinal()].sum();
    }

    public long ipaFlushes() { return flushes(TlbiScope.IPA); }
    public long localIpaFlushes() { return flushes(TlbiScope.IPA_LOCAL); }
    public long rangeFlushes() { return flushes(TlbiScope.RANGE); }
    public long vmidFlushes() { return flushes(TlbiScope.VMID); }
    public long hypVaFlushes() { return flushes(TlbiScope.HYP_VA); }

    /** Invalidations of every scope. */
    public long totalFlushes() {
        long n = 0;
        for (LongAdder a : byScope) n += a.sum();
        return n;
    }

    public void resetCounters() {
        for (LongAdder a : byScope) a.reset();
    }
}
