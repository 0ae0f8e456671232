package dev.ptlab.core.hw;

import dev.ptlab.core.arch.Granule;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.LongAdder;

/**
 * The TLBs of all CPUs of a system and the invalidations that reach them. Broadcast operations
 * act on every registered TLB; local ones on the caller's. Every operation is counted by
 * {@link TlbiScope}, and every TLBI instruction it stands for by {@link TlbiOp}.
 *
 * <p>Two levels of API. The {@link TlbMaintenance} methods the table library calls are complete
 * KVM sequences (Linux 7.1-rc4 {@code arch/arm64/kvm/hyp/nvhe/tlb.c}, {@code hyp/pgtable.c}):
 * <ul>
 *   <li>{@link #flushVmidIpa} = {@code __kvm_tlb_flush_vmid_ipa}: DSB ISH; TLBI IPAS2E1IS with
 *       the level as TTL hint (none for {@link #LEVEL_UNKNOWN}); DSB ISH; TLBI VMALLE1IS; DSB ISH.</li>
 *   <li>{@link #flushVmidIpaLocal} = {@code __kvm_tlb_flush_vmid_ipa_nsh}: the same with IPAS2E1
 *       and VMALLE1 on the caller's TLB.</li>
 *   <li>{@link #flushVmidRange} = {@code kvm_tlb_flush_vmid_range} with FEAT_TLBIRANGE: the range
 *       split as {@code __flush_s2_tlb_range_op} splits it ({@link TlbiOperand#split}: RIPAS2E1IS
 *       operands, IPAS2E1IS for a lone page, TTL unknown); DSB ISH; VMALLE1IS; DSB ISH.</li>
 *   <li>{@link #flushVmid} = {@code __kvm_tlb_flush_vmid}: TLBI VMALLS12E1IS; DSB ISH.</li>
 *   <li>{@link #flushHypVa} = the hyp stage-1 unmap walker's TLBI: VALE2IS with the leaf's level,
 *       or VAE2IS (any level) for {@link #LEVEL_UNKNOWN} (a table); DSB ISH.</li>
 * </ul>
 * The explicit instructions ({@link #ipas2e1is}, {@link #ipas2le1is}, {@link #ripas2e1is},
 * {@link #vmalls12e1is}, ...) are issued only: their entries stay cached until the next
 * {@link #dsb}, the latest point at which the architecture requires them gone (RYNJCP, RBLDZX).
 *
 * <p>Reach, as a strict model takes it: an any-level form with TTL hint {@code L} removes the
 * address's leaf entries at level {@code L} and its walk-cache entries above {@code L} (the walk
 * that reaches that leaf); a leaf or walk entry at another level is not removed (a wrong hint
 * invalidates nothing there, RSQXYZ). A last-level form removes leaf entries only. Stage-2 forms
 * do not remove stage-1 or combined entries (IPAS2E1IS is not required to, D8.17.6.1: that is why
 * KVM follows it with DSB and VMALLE1IS); VMALLE1* and VAE1IS remove only those.
 *
 * <p>Completion: a broadcast sequence (or a {@link #dsb}) returns only after every MMU walk that
 * was in flight when it began has finished (the effect of TLBI followed by DSB ISH). So once it
 * returns, no MMU can still be reading through the entries it invalidated, and their tables may
 * be freed.
 */
public final class TlbSystem implements TlbMaintenance {
    private final CopyOnWriteArrayList<Tlb> tlbs = new CopyOnWriteArrayList<>();
    /** Invalidations by {@link TlbiScope} ordinal. */
    private final LongAdder[] byScope = new LongAdder[TlbiScope.values().length];
    /** Instructions by {@link TlbiOp} ordinal. */
    private final LongAdder[] byOp = new LongAdder[TlbiOp.values().length];
    /** Issued explicit TLBIs waiting for a {@link #dsb}. */
    private final java.util.List<Runnable> pending = new java.util.ArrayList<>();

    public TlbSystem() {
        for (int i = 0; i < byScope.length; i++) byScope[i] = new LongAdder();
        for (int i = 0; i < byOp.length; i++) byOp[i] = new LongAdder();
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
        apply(TlbiOp.IPAS2E1IS, null, vmid, ipa, 1, levelHint, null);
        awaitWalks(); // DSB ISH: stage 2 complete before stage 1 is invalidated (B.4 step 4)
        apply(TlbiOp.VMALLE1IS, null, vmid, 0, -1, LEVEL_UNKNOWN, null);
        awaitWalks();
    }

    @Override
    public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
        count(TlbiScope.IPA_LOCAL);
        if (local == null) return;
        apply(TlbiOp.IPAS2E1, local, vmid, ipa, 1, levelHint, null);
        apply(TlbiOp.VMALLE1, local, vmid, 0, -1, LEVEL_UNKNOWN, null);
    }

    @Override
    public void flushVmidRange(int vmid, long ipa, long size) {
        count(TlbiScope.RANGE);
        Granule g = granule();
        long page = g.pageSize();
        long start = ipa & -page;
        long pages = (ipa + size - start + page - 1) / page;
        if (((start + pages * page - 1) >>> g.shift()) >>> 37 != 0) {
            // Beyond BaseADDR[36:0] in granules: an LPA2 (DS = 1) IPA, whose 64K-unit BaseADDR the
            // operand model does not encode. Same reach, applied as one range.
            apply(TlbiOp.RIPAS2E1IS, null, vmid, start, pages * page, LEVEL_UNKNOWN, null);
            pages = 0;
        }
        for (long op : pages == 0 ? java.util.List.<Long>of() : TlbiOperand.split(g, start, pages)) {
            if ((op & TlbiOperand.SINGLE) != 0) {
                apply(TlbiOp.IPAS2E1IS, null, vmid, TlbiOperand.ipaOf(op), 1, LEVEL_UNKNOWN, null);
            } else {
                applyRange(TlbiOp.RIPAS2E1IS, vmid, op);
            }
        }
        awaitWalks();
        apply(TlbiOp.VMALLE1IS, null, vmid, 0, -1, LEVEL_UNKNOWN, null);
        awaitWalks();
    }

    @Override
    public void flushVmid(int vmid) {
        count(TlbiScope.VMID);
        apply(TlbiOp.VMALLS12E1IS, null, vmid, 0, -1, LEVEL_UNKNOWN, null);
        awaitWalks();
    }

    @Override
    public void flushHypVa(long va, int levelHint) {
        count(TlbiScope.HYP_VA);
        apply(levelHint == LEVEL_UNKNOWN ? TlbiOp.VAE2IS : TlbiOp.VALE2IS, null, 0, va, 1, levelHint, null);
        awaitWalks();
    }

    // ---- explicit instructions (complete at the next dsb) ------------------------------------------

    /** TLBI IPAS2E1IS: the IPA's stage-2 entries at any level (walk cache included); {@code ttl} a level or LEVEL_UNKNOWN. */
    public void ipas2e1is(int vmid, long ipa, int ttl) {
        issue(TlbiOp.IPAS2E1IS, null, vmid, ipa, ttl);
    }

    /** TLBI IPAS2LE1IS: the IPA's stage-2 leaf entries only. */
    public void ipas2le1is(int vmid, long ipa, int ttl) {
        issue(TlbiOp.IPAS2LE1IS, null, vmid, ipa, ttl);
    }

    /** TLBI IPAS2E1 on {@code local}'s TLB only. */
    public void ipas2e1(Tlb local, int vmid, long ipa, int ttl) {
        issue(TlbiOp.IPAS2E1, requireLocal(local), vmid, ipa, ttl);
    }

    /** TLBI IPAS2LE1 on {@code local}'s TLB only. */
    public void ipas2le1(Tlb local, int vmid, long ipa, int ttl) {
        issue(TlbiOp.IPAS2LE1, requireLocal(local), vmid, ipa, ttl);
    }

    /** TLBI RIPAS2E1IS with a range operand ({@link TlbiOperand#range}). */
    public void ripas2e1is(int vmid, long operand) {
        issueRange(TlbiOp.RIPAS2E1IS, vmid, operand);
    }

    /** TLBI RIPAS2LE1IS with a range operand. */
    public void ripas2le1is(int vmid, long operand) {
        issueRange(TlbiOp.RIPAS2LE1IS, vmid, operand);
    }

    /** TLBI VMALLS12E1IS: every entry of the VMID. */
    public void vmalls12e1is(int vmid) {
        issue(TlbiOp.VMALLS12E1IS, null, vmid, 0, LEVEL_UNKNOWN);
    }

    /**
     * A guest's single-page TLB flush as Linux 7.1-rc4 issues it ({@code flush_tlb_page} →
     * {@code __flush_tlb_range} with one page): DSB ISHST; TLBI VAE1IS with ASID and TTL = the
     * leaf's level ({@link #LEVEL_UNKNOWN}: no hint); DSB ISH. In the VMID's context.
     */
    public void flushGuestVa(int vmid, int asid, long va, int levelHint) {
        checkTtl(levelHint);
        apply(TlbiOp.VAE1IS, null, vmid, va, asid, levelHint, null);
        awaitWalks();
    }

    /** TLBI VAE1IS (issued; completes at {@link #dsb}): stage-1 and combined entries of the VA, ASID or global. */
    public void vae1is(int vmid, int asid, long va, int ttl) {
        checkTtl(ttl);
        synchronized (pending) {
            pending.add(() -> apply(TlbiOp.VAE1IS, null, vmid, va, asid, ttl, null));
        }
    }

    /** TLBI VMALLE1IS: every stage-1 and combined entry of the VMID (no stage-2-only entry). */
    public void vmalle1is(int vmid) {
        issue(TlbiOp.VMALLE1IS, null, vmid, 0, LEVEL_UNKNOWN);
    }

    /**
     * DSB ISH: completes every TLBI issued so far (in issue order), then waits for the MMU walks
     * in flight, as the sequences above do after their TLBIs.
     */
    public void dsb() {
        java.util.List<Runnable> ops;
        synchronized (pending) {
            ops = new java.util.ArrayList<>(pending);
            pending.clear();
        }
        for (Runnable r : ops) r.run();
        awaitWalks();
    }

    /** Explicit TLBIs issued and not yet completed by a {@link #dsb}. */
    public int pendingTlbis() {
        synchronized (pending) {
            return pending.size();
        }
    }

    /** TLBI instructions of {@code op} so far (explicit ones and those inside the sequences). */
    public long instructions(TlbiOp op) {
        return byOp[op.ordinal()].sum();
    }

    private static Tlb requireLocal(Tlb local) {
        if (local == null) throw dev.ptlab.core.PageTableException.invalidArgument("local", null, "is null: a local TLBI needs the issuing CPU's TLB");
        return local;
    }

    private static void checkTtl(int ttl) {
        if (ttl != LEVEL_UNKNOWN && (ttl < 0 || ttl > 3)) {
            throw dev.ptlab.core.PageTableException.invalidArgument("ttl", (Object) ttl, "is not a level 0..3");
        }
    }

    private void issue(TlbiOp op, Tlb local, int vmid, long addr, int ttl) {
        checkTtl(ttl);
        long size = op == TlbiOp.VMALLS12E1IS || op == TlbiOp.VMALLE1IS || op == TlbiOp.VMALLE1 ? -1 : 1;
        synchronized (pending) {
            pending.add(() -> apply(op, local, vmid, addr, size, ttl, null));
        }
    }

    private void issueRange(TlbiOp op, int vmid, long operand) {
        synchronized (pending) {
            pending.add(() -> applyRange(op, vmid, operand));
        }
    }

    private void applyRange(TlbiOp op, int vmid, long operand) {
        Granule g = TlbiOperand.rangeGranule(operand);
        // TG 00 is reserved; a TLB of another granule need not be reached (RXKMMX): both leave it alone.
        long size = TlbiOperand.rangePages(operand) * (g == null ? 0 : g.pageSize());
        apply(op, null, vmid, TlbiOperand.rangeBase(operand), size, TlbiOperand.rangeTtl(operand), g);
    }

    /**
     * Performs one TLBI instruction now: on {@code local}, or on every TLB if it is broadcast.
     * {@code size} -1 means the whole VMID; {@code onlyGranule}, if set, skips TLBs of another
     * granule (a range TLBI's TG).
     */
    private void apply(TlbiOp op, Tlb local, int vmid, long addr, long size, int ttl, Granule onlyGranule) {
        byOp[op.ordinal()].increment();
        if (!op.stage2()) {
            if (op == TlbiOp.VAE2IS || op == TlbiOp.VALE2IS) {
                // Hyp stage-1 entries sit in the TLB under VMID 0 and are never walk-cached.
                for (Tlb t : tlbs) t.invalidate(0, addr, 1, leafLevels(op, ttl), 0);
            } else if (op == TlbiOp.VAE1IS) {
                // size carries the ASID here (VAE1IS's operand [63:48]).
                for (Tlb t : tlbs) t.invalidateStage1Va(vmid, (int) size, addr, leafLevels(op, ttl), walkLevels(op, ttl));
            } else if (local != null) {
                local.invalidateStage1(vmid); // VMALLE1
            } else {
                for (Tlb t : tlbs) t.invalidateStage1(vmid); // VMALLE1IS
            }
            return;
        }
        if (size == 0) return;
        int leaf = leafLevels(op, ttl);
        int walk = walkLevels(op, ttl);
        if (local != null) {
            reach(local, vmid, addr, size, leaf, walk, onlyGranule);
        } else {
            for (Tlb t : tlbs) reach(t, vmid, addr, size, leaf, walk, onlyGranule);
        }
    }

    private static void reach(Tlb t, int vmid, long addr, long size, int leaf, int walk, Granule onlyGranule) {
        if (onlyGranule != null && t.granule() != onlyGranule) return;
        if (size < 0) {
            t.invalidateVmid(vmid);
        } else {
            t.invalidate(vmid, addr, size, leaf, walk);
        }
    }

    /** Leaf levels an op with this TTL hint removes (bit level + 1). */
    static int leafLevels(TlbiOp op, int ttl) {
        return ttl == LEVEL_UNKNOWN ? Tlb.ALL_LEAF_LEVELS : 1 << (ttl + 1);
    }

    /** Walk-cache levels: none for a last-level form; with hint L the levels above L; else all. */
    static int walkLevels(TlbiOp op, int ttl) {
        if (op.lastLevel()) return 0;
        return ttl == LEVEL_UNKNOWN ? Tlb.ALL_WALK_LEVELS : (1 << (ttl + 1)) - 1;
    }

    /**
     * The TLBIs that remove a walk-cache entry for a level-{@code level} table descriptor
     * covering {@code addr}: named in checking-mode messages.
     */
    static String walkInvalidations(long addr, int level) {
        return "TLBI IPAS2E1IS of an address it covers with no TTL hint or a hint below level " + level
                + ", RIPAS2E1IS over it, or VMALLS12E1IS; IPAS2LE1IS and RIPAS2LE1IS do not reach the walk cache";
    }

    /** Granule of the registered TLBs (4K if none: then nothing is reached anyway). */
    private Granule granule() {
        for (Tlb t : tlbs) return t.granule();
        return Granule.G4K;
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
