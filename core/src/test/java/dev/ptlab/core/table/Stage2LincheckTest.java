package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import org.jetbrains.lincheck.LincheckAssertionError;
import org.jetbrains.lincheck.datastructures.Operation;
import org.junit.jupiter.api.Test;

/**
 * Deterministic interleaving tests of the shared (fault-path) operations with Lincheck's model
 * checker. Each scenario is two vCPUs' operations on one table ({@link LincheckRig}); Lincheck
 * runs them under many thread schedules, switching threads at shared-memory accesses (descriptor
 * loads, CASes and release stores, refcount updates, reclaimer epochs, TLB walk markers), exploring
 * schedules with 0, 1, 2, ... context switches in a fixed pseudo-random order, and the scenario's
 * {@code end()} checks every end state against the legal outcomes worked out in its comment.
 * Memory is in checking mode, so a use-after-free or a break-before-make violation throws inside
 * the schedule that causes it.
 *
 * <p>The mutation tests at the end run broken variants (a plain read-modify-write instead of a
 * CAS, a break that skips LOCKED, a subtree freed without a grace period) and require Lincheck to
 * report a failure: evidence that the exploration reaches the race windows.
 */
class Stage2LincheckTest {
    /** Interleavings explored per scenario (the first two are the two serial orders). */
    /**
     * Interleavings per scenario. Lincheck explores schedules by number of thread switches, so
     * the budget must reach the schedules that switch inside the shortest race window; it grows
     * with the code on the path (30 stopped reaching relaxPerms' read-to-CAS window once the
     * walker re-checked frames on leaving a table). Each test asserts every legal outcome was
     * reached, so a budget too small fails loudly rather than passing vacuously.
     */
    static final int INVOCATIONS = Integer.getInteger("ptlab.lincheck.invocations", 100);

    // ---- 1. two vCPUs faulting on the same 2M block ----

    /**
     * Both vCPUs map the same 2M block from a fault, into an empty table (the level-2 table is
     * missing too, so they also race to install it). Legal: exactly one map is OK; the other is
     * RACED (it met LOCKED, lost a CAS, or found the identical block); one level-2 table and one
     * block; the loser's table frame goes back to its own cache.
     */
    public static class TwoFaultsOneBlock extends LincheckRig {
        @Operation
        public void t0() {
            run0(() -> table.map(A, M2, P, Prot.RW, c0, FAULT));
        }

        @Operation
        public void t1() {
            run1(() -> table.map(A, M2, P, Prot.RW, c1, FAULT));
        }

        @Override
        protected void end() {
            noErrors();
            require((s0 == Status.OK) != (s1 == Status.OK), "exactly one fault installs: %s/%s", s0, s1);
            require(s0 == Status.RACED || s1 == Status.RACED, "the other is RACED: %s/%s", s0, s1);
            Leaf l = table.getLeaf(A + 0x1234);
            require(l.level() == 2 && l.pte() == leaf(P, Prot.RW, 2), "final entry %s is the block %s", l, hex(leaf(P, Prot.RW, 2)));
            TableCounters c = table.counters();
            require(c.leavesInstalled.sum() == 1 && c.tablesInstalled.sum() == 1,
                    "one leaf and one table installed, not %d/%d", c.leavesInstalled.sum(), c.tablesInstalled.sum());
            // The loser re-faults: the identical block is there, so its map is RACED and changes nothing.
            require(table.map(A, M2, P, Prot.RW, s0 == Status.OK ? c1 : c0, FAULT) == Status.RACED, "re-fault is RACED");
            outcome(s0 + "/" + s1);
            framesAccountedFor(2); // root + the level-2 table
        }
    }

    @Test
    void twoFaultsOnTheSameBlockInstallItOnce() {
        LincheckRig.check(TwoFaultsOneBlock.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(TwoFaultsOneBlock.class)).as("each vCPU wins in some interleaving")
                .containsExactlyInAnyOrder("OK/RACED", "RACED/OK");
    }

    // ---- 2. fault vs relaxPerms on the same page ----

    /**
     * vCPU 0 maps an unmapped page read-only (translation fault), vCPU 1 relaxes the same page to
     * read-write (permission fault). The level-3 table exists. Legal (map is always OK: relaxPerms
     * never writes an invalid entry): relax after map's publish, OK and the page ends RW; relax
     * before map's break, NOT_MAPPED, page R; relax meeting LOCKED, RACED, page R. The final
     * rights hold what each successful call installed.
     */
    public static class FaultVsRelaxPerms extends LincheckRig {
        public FaultVsRelaxPerms() {
            setupMap(A + K4, K4, P + K4, Prot.RW); // the neighbour: creates the level-2 and level-3 tables
        }

        @Operation
        public void t0() {
            run0(() -> table.map(A, K4, P, Prot.R, c0, FAULT));
        }

        @Operation
        public void t1() {
            run1(() -> table.relaxPerms(A, Prot.RW, FAULT, tlb1));
        }

        @Override
        protected void end() {
            noErrors();
            require(s0 == Status.OK, "map OK, not %s", s0);
            require(s1 == Status.OK || s1 == Status.NOT_MAPPED || s1 == Status.RACED, "relax OK/NOT_MAPPED/RACED, not %s", s1);
            long pte = table.getLeaf(A).pte();
            long expected = leaf(P, Prot.R, 3) | (s1 == Status.OK ? Stage2Descriptor.S2AP_W : 0);
            require(pte == expected, "relax %s: page %s, expected %s", s1, hex(pte), hex(expected));
            outcome(s0 + "/" + s1);
            framesAccountedFor(3);
        }
    }

    @Test
    void faultAndRelaxPermsOnOnePageEndAsSomeOrderOfThem() {
        LincheckRig.check(FaultVsRelaxPerms.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(FaultVsRelaxPerms.class)).as("outcomes explored")
                .containsExactlyInAnyOrder("OK/OK", "OK/NOT_MAPPED", "OK/RACED");
    }

    /**
     * vCPU 0's fault replaces a read-only page P by Q (break-before-make on a valid leaf), vCPU 1
     * relaxes the page to read-write. Legal, as serial orders with RACED calls doing nothing:
     * relax;map (both OK, Q r-), map;relax (both OK, Q rw), relax RACED (met LOCKED or lost its
     * CAS to the break: Q r-), map RACED (relax's CAS landed between map's read and its break:
     * P rw). Both RACED is impossible: a CAS fails only because the other call wrote.
     */
    public static class ReplaceVsRelaxPerms extends LincheckRig {
        public ReplaceVsRelaxPerms() {
            setupMap(A, K4, P, Prot.R);
        }

        @Operation
        public void t0() {
            run0(() -> table.map(A, K4, Q, Prot.R, c0, FAULT));
        }

        @Operation
        public void t1() {
            run1(() -> table.relaxPerms(A, Prot.RW, FAULT, tlb1));
        }

        @Override
        protected void end() {
            noErrors();
            long pte = table.getLeaf(A).pte();
            long qR = leaf(Q, Prot.R, 3), qRW = qR | Stage2Descriptor.S2AP_W, pRW = leaf(P, Prot.R, 3) | Stage2Descriptor.S2AP_W;
            String o = s0 + "/" + s1 + " " + (pte == qR ? "Q r-" : pte == qRW ? "Q rw" : pte == pRW ? "P rw" : hex(pte));
            require(o.equals("OK/OK Q r-") || o.equals("OK/OK Q rw") || o.equals("OK/RACED Q r-") || o.equals("RACED/OK P rw"),
                    "illegal outcome %s", o);
            outcome(o);
            framesAccountedFor(3);
        }
    }

    @Test
    void breakBeforeMakeAndRelaxPermsOnOnePageEndAsSomeOrderOfThem() {
        LincheckRig.check(ReplaceVsRelaxPerms.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(ReplaceVsRelaxPerms.class)).as("outcomes explored")
                .contains("OK/OK Q r-", "OK/OK Q rw", "OK/RACED Q r-", "RACED/OK P rw");
    }

    // ---- 3. mkyoung (and relaxPerms) vs a hardware access-flag update ----

    /**
     * A page with AF clear: vCPU 0 handles an access-flag fault (mkyoung), vCPU 1's MMU, with
     * hardware AF update, translates it. Legal: AF ends set and no other bit changes; the MMU
     * always translates; mkyoung is OK (it set AF, or found it set) or RACED (the MMU's CAS landed
     * between its read and its CAS), and RACED only if the MMU did set AF.
     */
    public static class MkyoungVsHardwareAf extends LincheckRig {
        final Mmu mmu1 = mmu(tlb1, true);
        final long before;
        long translated;

        public MkyoungVsHardwareAf() {
            setupMap(A, K4, P, Prot.RW);
            table.testClearYoung(A, K4, true);
            before = table.getLeaf(A).pte();
            require((before & Stage2Descriptor.AF) == 0, "setup: AF clear");
        }

        @Operation
        public void t0() {
            run0(() -> table.mkyoung(A, FAULT));
        }

        @Operation
        public void t1() {
            run1(() -> {
                translated = mmu1.translate(A + 0x10, Access.READ);
                return Status.OK;
            });
        }

        @Override
        protected void end() {
            noErrors();
            long after = table.getLeaf(A).pte();
            require(after == (before | Stage2Descriptor.AF), "AF set and nothing else changed: %s -> %s", hex(before), hex(after));
            require(translated == P + 0x10, "the MMU translated (hardware AF never faults): %s", describe(translated));
            long hw = mmu1.hardwareAfUpdates();
            require(s0 == Status.OK || s0 == Status.RACED, "mkyoung OK or RACED, not %s", s0);
            require(hw <= 1, "at most one hardware AF update: %d", hw);
            require(s0 == Status.OK || hw == 1, "mkyoung RACED but the MMU set nothing");
            outcome("mkyoung " + s0 + " hw " + hw);
            framesAccountedFor(3);
        }
    }

    static String describe(long translation) {
        return Translation.isFault(translation)
                ? Translation.faultType(translation) + "@" + Translation.faultLevel(translation) : LincheckRig.hex(translation);
    }

    @Test
    void mkyoungAndHardwareAfEndWithAfSetAndNothingElseChanged() {
        LincheckRig.check(MkyoungVsHardwareAf.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(MkyoungVsHardwareAf.class)).as("outcomes explored")
                .containsExactlyInAnyOrder("mkyoung OK hw 0", "mkyoung OK hw 1", "mkyoung RACED hw 1");
    }

    /**
     * A read-only page with AF clear: vCPU 0 relaxes it to read-write, vCPU 1's MMU sets AF in
     * hardware. Legal: AF ends set (the MMU never gives up), write permission set exactly when
     * relaxPerms was OK, nothing else changed; relaxPerms RACED only if the MMU's CAS got in first.
     * This is the control of the lost-update mutation below.
     */
    public abstract static class RelaxVsHardwareAfBase extends LincheckRig {
        final Mmu mmu1 = mmu(tlb1, true);
        final long before;
        long translated;

        RelaxVsHardwareAfBase() {
            setupMap(A, K4, P, Prot.R);
            table.testClearYoung(A, K4, true);
            before = table.getLeaf(A).pte();
        }

        /** vCPU 0's permission-fault handling. */
        abstract Status relax();

        @Operation
        public void t0() {
            run0(this::relax);
        }

        @Operation
        public void t1() {
            run1(() -> {
                translated = mmu1.translate(A + 0x10, Access.READ);
                return Status.OK;
            });
        }

        @Override
        protected void end() {
            noErrors();
            long after = table.getLeaf(A).pte();
            long expected = before | Stage2Descriptor.AF | (s0 == Status.OK ? Stage2Descriptor.S2AP_W : 0);
            require(after == expected, "relax %s, hardware AF updates %d: %s -> %s, expected %s", s0, mmu1.hardwareAfUpdates(),
                    hex(before), hex(after), hex(expected));
            require(translated == P + 0x10, "the MMU translated: %s", describe(translated));
            require(s0 == Status.OK || mmu1.hardwareAfUpdates() == 1, "relax RACED but the MMU set nothing");
            outcome("relax " + s0 + " hw " + mmu1.hardwareAfUpdates());
            framesAccountedFor(3);
        }
    }

    public static class RelaxPermsVsHardwareAf extends RelaxVsHardwareAfBase {
        @Override
        Status relax() {
            return table.relaxPerms(A, Prot.RW, FAULT, tlb0);
        }
    }

    @Test
    void relaxPermsAndHardwareAfLoseNeitherUpdate() {
        LincheckRig.check(RelaxPermsVsHardwareAf.class, INVOCATIONS);
        // relaxPerms never sets AF, so the MMU always finds it clear and sets it: "hw 0" cannot happen.
        assertThat(LincheckRig.outcomes(RelaxPermsVsHardwareAf.class)).as("outcomes explored")
                .containsExactlyInAnyOrder("relax OK hw 1", "relax RACED hw 1");
    }

    // ---- 4. coalescing map vs a fault inside the span ----

    /**
     * vCPU 0 maps the whole 2M span (replacing the level-3 table by a block: the table entry is
     * broken with a CAS, the block published, the old subtree handed to the reclaimer); vCPU 1
     * faults page 5 inside the span. Legal end states (worked out, and found by Lincheck):
     * <ul>
     *   <li>the block, coalesce OK; the page fault OK (before the coalesce, or into the detached
     *       old table, which is freed only after its walk) or RACED (it met the LOCKED entry);</li>
     *   <li>the page fault came after the block and split it (a new level-3 table, the rest of
     *       the block unmapped). Then the coalescing walk, re-reading the entry after its visit,
     *       may find that new table and descend into it, mapping pages from page 0 on: so the
     *       table holds only page 5 (coalesce OK, fault OK: the split came after the whole map),
     *       all 512 pages (coalesce OK, it installed page 5 first: fault RACED), or pages 0..5
     *       (fault OK first, then the coalescing walk stops RACED at the identical page 5).</li>
     * </ul>
     * Every valid page maps its own offset of P. Every frame is accounted for after a grace
     * period, and checking mode throws if a walker reads a freed table.
     */
    public static class CoalesceVsFault extends LincheckRig {
        public CoalesceVsFault() {
            setupMap(A, K4, P, Prot.RW);
        }

        /** Frees handed to the reclaimer: the old subtree's. */
        long expectedDeferred() {
            return 1;
        }

        @Operation
        public void t0() {
            run0(() -> table.map(A, M2, P, Prot.RW, c0, FAULT));
        }

        @Operation
        public void t1() {
            run1(() -> table.map(A + 5 * K4, K4, P + 5 * K4, Prot.RW, c1, FAULT));
        }

        @Override
        protected void end() {
            noErrors();
            require(table.counters().coalesced.sum() == 1, "one coalesce: %d", table.counters().coalesced.sum());
            require(table.reclaimer().deferred() == expectedDeferred(), "the old subtree's free deferred: %d", table.reclaimer().deferred());
            Leaf l = table.getLeaf(A + 5 * K4);
            String o;
            if (l.level() == 2) {
                require(l.pte() == leaf(P, Prot.RW, 2), "the block: %s", l);
                require(s0 == Status.OK, "block installed, coalesce %s", s0);
                require(s1 == Status.OK || s1 == Status.RACED, "page fault OK or RACED, not %s", s1);
                o = "block, fault " + s1;
                framesAccountedFor(2);
            } else {
                int first = -1, last = -1, count = 0;
                for (int i = 0; i < 512; i++) {
                    long pte = table.getLeaf(A + i * K4).pte();
                    if (pte == 0) continue;
                    require(pte == leaf(P + i * K4, Prot.RW, 3), "page %d maps its own offset of P: %s", i, hex(pte));
                    if (first < 0) first = i;
                    last = i;
                    count++;
                }
                String pages = count == last - first + 1 ? first + ".." + last : count + " pages";
                o = "split, pages " + pages + ", " + s0 + "/" + s1;
                require(o.equals("split, pages 5..5, OK/OK") || o.equals("split, pages 0..511, OK/RACED")
                        || o.equals("split, pages 0..5, RACED/OK"), "illegal outcome %s", o);
                framesAccountedFor(3);
            }
            outcome(o);
        }
    }

    @Test
    void coalescingMapAndAFaultInsideTheSpanEndInALegalStateWithEveryFrameBack() {
        LincheckRig.check(CoalesceVsFault.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(CoalesceVsFault.class)).as("outcomes explored")
                .contains("block, fault OK", "block, fault RACED", "split, pages 5..5, OK/OK");
    }

    // ---- 5. split-on-map vs another page of the block ----

    /**
     * vCPU 0 maps page 0 of a 2M block to another PA: the block is broken (CAS to LOCKED, TLBI)
     * into a new level-3 table holding only that page. vCPU 1 works on page 7 of the same block.
     * Common legal outcomes: the split is OK (table with page 0 = Q) or RACED (vCPU 1 changed the
     * block between the split's read and its CAS: the block stays, with vCPU 1's change).
     */
    public abstract static class SplitVsOther extends LincheckRig {
        final Prot blockProt;

        SplitVsOther(Prot blockProt) {
            this.blockProt = blockProt;
            setupMap(A, M2, P, blockProt);
        }

        @Operation
        public void t0() {
            run0(() -> table.map(A, K4, Q, Prot.RW, c0, FAULT));
        }

        /** What vCPU 1 did to page 7, judged given the end state. */
        abstract void checkOther(boolean split, Leaf page7);

        @Override
        protected void end() {
            noErrors();
            Leaf l0 = table.getLeaf(A), l7 = table.getLeaf(A + 7 * K4);
            boolean split = l0.level() == 3;
            if (split) {
                require(s0 == Status.OK, "split done but map %s", s0);
                require(l0.pte() == leaf(Q, Prot.RW, 3), "page 0 is Q: %s", l0);
            } else {
                require(s0 == Status.RACED, "block kept but map %s", s0);
                require(l0.level() == 2, "block: %s", l0);
            }
            checkOther(split, l7);
            outcome((split ? "split " : "block ") + s0 + ", other " + s1);
            framesAccountedFor(split ? 3 : 2);
        }
    }

    /**
     * ... vs mkyoung of page 7 (block AF clear). Split OK: mkyoung OK (before the break, AF set on
     * the old block), RACED (LOCKED, or its CAS lost to the break) or NOT_MAPPED (after: page 7 is
     * unmapped in the new table). Split RACED: mkyoung OK, the block is the old one plus AF.
     */
    public static class SplitVsMkyoung extends SplitVsOther {
        public SplitVsMkyoung() {
            super(Prot.RW);
            table.testClearYoung(A, M2, true);
        }

        @Operation
        public void t1() {
            run1(() -> table.mkyoung(A + 7 * K4, FAULT));
        }

        @Override
        void checkOther(boolean split, Leaf page7) {
            if (split) {
                require(s1 == Status.OK || s1 == Status.RACED || s1 == Status.NOT_MAPPED, "mkyoung %s", s1);
                require(page7.pte() == 0, "page 7 unmapped after the split: %s", page7);
            } else {
                require(s1 == Status.OK, "split RACED, so mkyoung changed the block, yet it is %s", s1);
                require(page7.pte() == leaf(P, Prot.RW, 2), "old block with AF: %s", page7);
            }
        }
    }

    @Test
    void splitOnMapAndMkyoungOfAnotherPageOfTheBlock() {
        LincheckRig.check(SplitVsMkyoung.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(SplitVsMkyoung.class)).as("outcomes explored")
                .contains("split OK, other OK", "split OK, other NOT_MAPPED", "split OK, other RACED", "block RACED, other OK");
    }

    /** ... vs relaxPerms of page 7 (block read-only, relaxed to rw): the same shape as mkyoung. */
    public static class SplitVsRelaxPerms extends SplitVsOther {
        public SplitVsRelaxPerms() {
            super(Prot.R);
        }

        @Operation
        public void t1() {
            run1(() -> table.relaxPerms(A + 7 * K4, Prot.RW, FAULT, tlb1));
        }

        @Override
        void checkOther(boolean split, Leaf page7) {
            if (split) {
                require(s1 == Status.OK || s1 == Status.RACED || s1 == Status.NOT_MAPPED, "relax %s", s1);
                require(page7.pte() == 0, "page 7 unmapped after the split: %s", page7);
            } else {
                require(s1 == Status.OK, "split RACED, so relax changed the block, yet it is %s", s1);
                require(page7.pte() == (leaf(P, Prot.R, 2) | Stage2Descriptor.S2AP_W), "old block made writable: %s", page7);
            }
        }
    }

    @Test
    void splitOnMapAndRelaxPermsOfAnotherPageOfTheBlock() {
        LincheckRig.check(SplitVsRelaxPerms.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(SplitVsRelaxPerms.class)).as("outcomes explored")
                .contains("split OK, other OK", "split OK, other NOT_MAPPED", "block RACED, other OK");
    }

    /**
     * ... vs a fault on page 7 that maps it (same PA as the block): both must break the block.
     * Legal: at least one is OK; a RACED one met LOCKED or lost the CAS; an OK one that came after
     * the other's table was published installs its page in it. The block is always split; page 0
     * is Q exactly if the split map was OK, page 7 is mapped exactly if the fault was OK.
     */
    public static class SplitVsFault extends SplitVsOther {
        public SplitVsFault() {
            super(Prot.RW);
        }

        @Operation
        public void t1() {
            run1(() -> table.map(A + 7 * K4, K4, P + 7 * K4, Prot.RW, c1, FAULT));
        }

        @Override
        protected void end() {
            noErrors();
            require(s0 == Status.OK || s1 == Status.OK, "one of them breaks the block: %s/%s", s0, s1);
            Leaf l0 = table.getLeaf(A), l7 = table.getLeaf(A + 7 * K4);
            require(l0.level() == 3 && l7.level() == 3, "block split: %s %s", l0, l7);
            require(l0.pte() == (s0 == Status.OK ? leaf(Q, Prot.RW, 3) : 0), "page 0 %s after split map %s", l0, s0);
            require(l7.pte() == (s1 == Status.OK ? leaf(P + 7 * K4, Prot.RW, 3) : 0), "page 7 %s after fault %s", l7, s1);
            outcome(s0 + "/" + s1);
            framesAccountedFor(3);
        }

        @Override
        void checkOther(boolean split, Leaf page7) {
            throw new UnsupportedOperationException();
        }
    }

    @Test
    void splitOnMapAndAFaultOnAnotherPageOfTheBlock() {
        LincheckRig.check(SplitVsFault.class, INVOCATIONS);
        assertThat(LincheckRig.outcomes(SplitVsFault.class)).as("outcomes explored").contains("OK/OK", "OK/RACED", "RACED/OK");
    }

    // ---- mutations: broken variants Lincheck must catch ----

    /**
     * relaxPerms done as a plain read-modify-write: the walker's read, then a blind release store
     * of {@code old | W} instead of a CAS. A hardware AF update landing in between is lost.
     */
    public static class BlindRelaxVsHardwareAf extends RelaxVsHardwareAfBase {
        @Override
        Status relax() {
            table.walk(A, K4, (ctx, visit) -> {
                if (Pte.isValid(ctx.old())) ctx.publish(ctx.old() | Stage2Descriptor.S2AP_W); // BROKEN: no CAS
                return Status.OK;
            }, WalkFlags.LEAF | FAULT, WalkPolicy.FAULT);
            return Status.OK;
        }
    }

    @Test
    void mutationPlainReadModifyWriteInsteadOfCasLosesTheHardwareAfUpdate() {
        assertThatThrownBy(() -> LincheckRig.options(BlindRelaxVsHardwareAf.class, INVOCATIONS).check(BlindRelaxVsHardwareAf.class))
                .isInstanceOf(LincheckAssertionError.class)
                .hasMessageContaining("relax OK, hardware AF updates 1");
    }

    /**
     * A leaf replaced by break-before-make through a test visitor, against a fault on the same
     * page (real map). The break is a CAS to {@code breakValue}: LOCKED in the control, 0 in the
     * mutant, which a concurrent fault takes for an empty entry and fills.
     */
    public abstract static class HandBbmVsFault extends LincheckRig {
        final long breakValue;

        HandBbmVsFault(long breakValue) {
            this.breakValue = breakValue;
            setupMap(A, K4, P, Prot.R);
        }

        @Operation
        public void t0() {
            run0(() -> table.walk(A, K4, (ctx, visit) -> {
                long old = ctx.old();
                if (!Pte.isValid(old) || !ctx.trySet(breakValue)) return Status.RACED;
                tlbs.flushVmidIpa(VMID, A, 3);
                ctx.putRef();
                ctx.getRef();
                ctx.publish(leaf(Q, Prot.R, 3));
                return Status.OK;
            }, WalkFlags.LEAF | FAULT, WalkPolicy.FAULT));
        }

        @Operation
        public void t1() {
            run1(() -> table.map(A, K4, P, Prot.RW, c1, FAULT));
        }

        @Override
        protected void end() {
            noErrors();
            long pte = table.getLeaf(A).pte();
            require(s0 == Status.OK || s1 == Status.OK, "one of them changes the page: %s/%s", s0, s1);
            require(pte == leaf(Q, Prot.R, 3) || pte == leaf(P, Prot.RW, 3), "final page %s", hex(pte));
            framesAccountedFor(3);
        }
    }

    public static class LockedBbmVsFault extends HandBbmVsFault {
        public LockedBbmVsFault() {
            super(Pte.LOCKED);
        }
    }

    public static class UnlockedBbmVsFault extends HandBbmVsFault {
        public UnlockedBbmVsFault() {
            super(0);
        }
    }

    @Test
    void controlBreakBeforeMakeThroughLockedPassesAgainstAFault() {
        LincheckRig.check(LockedBbmVsFault.class, INVOCATIONS);
    }

    @Test
    void mutationBreakThatSkipsLockedIsCaught() {
        assertThatThrownBy(() -> LincheckRig.options(UnlockedBbmVsFault.class, INVOCATIONS).check(UnlockedBbmVsFault.class))
                .isInstanceOf(LincheckAssertionError.class)
                .hasMessageContaining("threw");
    }

    /** Scenario 4 with the subtree freed at once instead of after a grace period. */
    public static class CoalesceVsFaultImmediateFree extends CoalesceVsFault {
        public CoalesceVsFaultImmediateFree() {
            table.setFreeUnlinkedHook(FreeUnlinkedHook.IMMEDIATE);
        }

        @Override
        long expectedDeferred() {
            return 0; // freed at once: in the serial orders that is harmless, so only an interleaving can fail
        }
    }

    @Test
    void mutationSubtreeFreedWithoutAGracePeriodIsAUseAfterFreeCaught() {
        // Whichever interleaving Lincheck reaches first: the faulting walker reads the freed
        // subtree (FrameAccessException), or the early teardown finds the walker's reference still
        // on the table it frees. Both are the use-after-free the grace period prevents.
        assertThatThrownBy(() -> LincheckRig.options(CoalesceVsFaultImmediateFree.class, INVOCATIONS).check(CoalesceVsFaultImmediateFree.class))
                .isInstanceOf(LincheckAssertionError.class)
                .hasMessageMatching("(?s).*(t1 threw dev\\.ptlab\\.core\\.mem\\.FrameAccessException"
                        + "|t0 threw java\\.lang\\.IllegalStateException: unlinked table 0x[0-9a-f]+ has refcount 2 after teardown).*");
    }
}
