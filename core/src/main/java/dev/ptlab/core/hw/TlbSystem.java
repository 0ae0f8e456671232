package dev.ptlab.core.hw;

import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.LongAdder;

/**
 * The TLBs of all CPUs of a system and the invalidations that reach them. Broadcast operations
 * act on every registered TLB; local ones on the caller's. Every operation is counted by scope.
 *
 * <p>Completion: a broadcast invalidation returns only after every MMU walk that was in flight
 * when it began has finished (the effect of TLBI followed by DSB ISH). So once it returns, no
 * MMU can still be reading through the entries it invalidated, and their tables may be freed.
 */
public final class TlbSystem implements TlbMaintenance {
    private final CopyOnWriteArrayList<Tlb> tlbs = new CopyOnWriteArrayList<>();
    private final LongAdder byIpa = new LongAdder();
    private final LongAdder byIpaLocal = new LongAdder();
    private final LongAdder byRange = new LongAdder();
    private final LongAdder byVmid = new LongAdder();
    private final LongAdder hypVa = new LongAdder();

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
        byIpa.increment();
        for (Tlb t : tlbs) t.invalidateAddress(vmid, ipa);
        awaitWalks();
    }

    @Override
    public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
        byIpaLocal.increment();
        if (local != null) local.invalidateAddress(vmid, ipa);
    }

    @Override
    public void flushVmidRange(int vmid, long ipa, long size) {
        byRange.increment();
        for (Tlb t : tlbs) t.invalidateRange(vmid, ipa, size);
        awaitWalks();
    }

    @Override
    public void flushVmid(int vmid) {
        byVmid.increment();
        for (Tlb t : tlbs) t.invalidateVmid(vmid);
        awaitWalks();
    }

    @Override
    public void flushHypVa(long va, int levelHint) {
        hypVa.increment();
        for (Tlb t : tlbs) t.invalidateAddress(0, va);
        awaitWalks();
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

    public long ipaFlushes() { return byIpa.sum(); }
    public long localIpaFlushes() { return byIpaLocal.sum(); }
    public long rangeFlushes() { return byRange.sum(); }
    public long vmidFlushes() { return byVmid.sum(); }
    public long hypVaFlushes() { return hypVa.sum(); }

    public long totalFlushes() {
        return ipaFlushes() + localIpaFlushes() + rangeFlushes() + vmidFlushes() + hypVaFlushes();
    }

    public void resetCounters() {
        byIpa.reset();
        byIpaLocal.reset();
        byRange.reset();
        byVmid.reset();
        hypVa.reset();
    }
}
