package dev.ptlab.core.check;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.InvariantViolation;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * The checks have teeth: each test breaks a table in one specific way, the way a buggy operation
 * would (through a visitor's context, or behind the table's back), and shows the checking-mode
 * store check or {@link InvariantChecker} reports it, naming where. The same visitor done
 * properly passes, so the failures come from the defect and not from the harness.
 */
class InvariantCheckerMutationTest {
    static final int VMID = 3;
    static final long A = 0x4020_0000L;          // second 2M of the second 1G: level-3 table at L2 index 1
    static final long P = 0x8000_0000L, Q = 0xC000_0000L;
    static final long K4 = 0x1000, M2 = 2L << 20;

    final TlbSystem tlbs = new TlbSystem();

    Stage2PageTable table(boolean checking) {
        PhysicalMemory mem = new PhysicalMemory(0x10_0000_0000L, 64L << 20, Granule.G4K, checking);
        return new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, VMID, 0);
    }

    static MemCache cache(Stage2PageTable t) {
        MemCache c = new MemCache(t.memory());
        c.topUp(16);
        return c;
    }

    /** Runs {@code action} on the entry at {@code level} on the walk path of {@code addr}. */
    static void atEntry(Stage2PageTable t, long addr, int level, Consumer<VisitContext> action) {
        boolean[] done = {false};
        t.walk(addr, 1, (ctx, v) -> {
            if (ctx.level() == level && !done[0]) {
                done[0] = true;
                action.accept(ctx);
            }
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
        assertThat(done[0]).as("walk reached level %d at 0x%x", level, addr).isTrue();
    }

    static long withOutput(Stage2PageTable t, long pte, long pa) {
        return (pte & ~t.geometry().addressMask()) | t.geometry().encodeAddress(pa);
    }

    static long tableFrameOf(Stage2PageTable t, long addr, int level) {
        long[] pa = {0};
        atEntry(t, addr, level, ctx -> pa[0] = ctx.tablePa());
        return pa[0];
    }

    // ------------------------------------------------------------------------------------------
    // (a) valid -> valid without break-before-make

    @Test
    void leafReplacedByAnotherLeafWithoutBreakIsCaughtOnTheStore() {
        for (int level : new int[] {3, 2}) {
            Stage2PageTable t = table(true);
            long size = level == 3 ? K4 : M2;
            long addr = A;
            t.map(addr, size, P, Prot.RW, cache(t));
            long old = t.getLeaf(addr + 0x10).pte();
            long other = withOutput(t, old, Q);
            assertThat(Pte.isValid(other)).isTrue();

            assertThatThrownBy(() -> atEntry(t, addr + 0x10, level, ctx -> ctx.trySet(other)))
                    .isInstanceOf(InvariantViolation.class)
                    .hasMessage("break-before-make violated at 0x" + Long.toHexString(addr) + " level " + level + ": valid 0x"
                            + Long.toHexString(old) + " replaced by valid 0x" + Long.toHexString(other)
                            + " without an invalid entry in between");
            assertThat(t.getLeaf(addr).pte()).as("the bad store did not happen").isEqualTo(old);
            InvariantChecker.check(t);
        }
    }

    @Test
    void otherNonExemptChangesWithoutBreakAreCaughtToo() {
        Stage2PageTable t = table(true);
        t.map(A, M2, P, Prot.RW, cache(t));
        long block = t.getLeaf(A).pte();
        long device = (block & ~Stage2Descriptor.MEMATTR_MASK) | (Stage2Descriptor.MEMATTR_DEVICE_nGnRE << Stage2Descriptor.MEMATTR_SHIFT);
        assertThatThrownBy(() -> atEntry(t, A, 2, ctx -> ctx.trySet(device)))
                .isInstanceOf(InvariantViolation.class).hasMessageContaining("at 0x40200000 level 2");
        // block -> table with no break in between
        long child = t.memory().allocate();
        long tableDesc = Stage2Descriptor.table(t.geometry(), child);
        assertThatThrownBy(() -> atEntry(t, A, 2, ctx -> ctx.publish(tableDesc)))
                .isInstanceOf(InvariantViolation.class).hasMessageContaining("replaced by valid 0x" + Long.toHexString(tableDesc));
        t.memory().free(child);
        // exempt: permission, AF, software bits
        atEntry(t, A, 2, ctx -> ctx.trySet((block & ~Stage2Descriptor.S2AP_W & ~Stage2Descriptor.AF) | Pte.SW_BITS));
        InvariantChecker.check(t);
    }

    @Test
    void theSameReplacementDoneProperlyPasses() {
        for (long breakValue : new long[] {Pte.LOCKED, 0}) {
            Stage2PageTable t = table(true);
            t.map(A, K4, P, Prot.RW, cache(t));
            long old = t.getLeaf(A).pte();
            long other = withOutput(t, old, Q);
            atEntry(t, A, 3, ctx -> {
                assertThat(ctx.trySet(breakValue)).isTrue();
                ctx.putRef();
                tlbs.flushVmidIpa(VMID, A, 3);
                ctx.getRef();
                ctx.publish(other);
            });
            assertThat(t.getLeaf(A).pte()).isEqualTo(other);
            InvariantChecker.check(t);
        }
    }

    @Test
    void withoutCheckingModeTheBadStoreGoesThrough() {
        Stage2PageTable t = table(false);
        t.map(A, K4, P, Prot.RW, cache(t));
        long other = withOutput(t, t.getLeaf(A).pte(), Q);
        atEntry(t, A, 3, ctx -> ctx.trySet(other));
        assertThat(t.getLeaf(A).pte()).isEqualTo(other);
    }

    // ------------------------------------------------------------------------------------------
    // (b) counted entry without its reference (and the converse)

    @Test
    void countedEntryInstalledWithoutGetRefIsCaught() {
        Stage2PageTable t = table(true);
        t.map(A, K4, P, Prot.RW, cache(t));
        long l3 = tableFrameOf(t, A, 3);
        assertThat(t.memory().count(l3)).isEqualTo(2);
        InvariantChecker.check(t);

        atEntry(t, A + K4, 3, ctx -> ctx.trySet(Pte.ownerAnnotation(3))); // no getRef

        assertThatThrownBy(() -> InvariantChecker.check(t))
                .isInstanceOf(InvariantViolation.class)
                .hasMessage("table frame 0x" + Long.toHexString(l3) + " (level 3) has refcount 2 but 2 counted entries (expected 3)");
    }

    @Test
    void validLeafWithoutGetRefAndLockedEntryWithItsReferenceKeptAreCaught() {
        Stage2PageTable t = table(true);
        t.map(A, 2 * K4, P, Prot.RW, cache(t));
        long l3 = tableFrameOf(t, A, 3);
        long leaf = t.getLeaf(A).pte();
        atEntry(t, A + 2 * K4, 3, ctx -> ctx.trySet(withOutput(t, leaf, Q))); // no getRef
        assertThatThrownBy(() -> InvariantChecker.check(t))
                .hasMessage("table frame 0x" + Long.toHexString(l3) + " (level 3) has refcount 3 but 3 counted entries (expected 4)");

        Stage2PageTable u = table(true);
        u.map(A, 2 * K4, P, Prot.RW, cache(u));
        long l3u = tableFrameOf(u, A, 3);
        atEntry(u, A, 3, ctx -> ctx.trySet(Pte.LOCKED));                  // no putRef: LOCKED is not counted
        assertThatThrownBy(() -> InvariantChecker.check(u))
                .hasMessage("table frame 0x" + Long.toHexString(l3u) + " (level 3) has refcount 3 but 1 counted entries (expected 2)");
    }

    // ------------------------------------------------------------------------------------------
    // (c) table frame freed while linked

    @Test
    void tableFrameFreedBehindTheTablesBackIsCaughtWithTheAddressItTranslates() {
        Stage2PageTable t = table(true);
        MemCache c = cache(t);
        t.map(A, K4, P, Prot.RW, c);
        long far = 0x80_4020_0000L;                 // in the second of the two concatenated root tables
        t.map(far, K4, P, Prot.RW, c);
        InvariantChecker.check(t);
        long l3 = tableFrameOf(t, A, 3);

        t.memory().free(l3);

        assertThatThrownBy(() -> InvariantChecker.check(t))
                .isInstanceOf(InvariantViolation.class)
                .hasMessage("table frame 0x" + Long.toHexString(l3) + " (level 3) linked for address 0x40200000 is not an allocated frame");

        Stage2PageTable u = table(true);
        u.map(far, K4, P, Prot.RW, cache(u));
        long l2 = tableFrameOf(u, far, 2);
        u.memory().free(l2);
        assertThatThrownBy(() -> InvariantChecker.check(u))
                .hasMessage("table frame 0x" + Long.toHexString(l2) + " (level 2) linked for address 0x8040000000 is not an allocated frame");
    }

    // ------------------------------------------------------------------------------------------
    // (d) one frame linked from two entries

    @Test
    void frameLinkedFromTwoEntriesIsCaught() {
        Stage2PageTable t = table(true);
        t.map(A, K4, P, Prot.RW, cache(t));
        long l3 = tableFrameOf(t, A, 3);
        long desc = Stage2Descriptor.table(t.geometry(), l3);
        long second = A + 5 * M2;                   // an empty level-2 entry in the same level-2 table
        atEntry(t, second, 2, ctx -> {
            assertThat(ctx.old()).isZero();
            ctx.trySet(desc);
            ctx.getRef();                            // references right: only the double link is wrong
        });
        assertThatThrownBy(() -> InvariantChecker.check(t))
                .isInstanceOf(InvariantViolation.class)
                .hasMessage("table frame 0x" + Long.toHexString(l3) + " (level 3) is linked from more than one entry");
    }

    @Test
    void aHealthyTableAfterManyOperationsPasses() {
        Stage2PageTable t = table(true);
        MemCache c = cache(t);
        c.topUp(600);
        t.map(A - M2, 1L << 30, P, Prot.RW, c);
        t.map(A + 3 * K4, 5 * K4, Q, Prot.RWX, c);
        t.setOwner(A + 64 * K4, 2 * K4, c, 4);
        t.split(A - M2, 8 * M2, c);
        t.wrprotect(A, M2);
        t.unmap(A + 4 * K4, 3 * K4);
        t.map(0, 1L << 30, 0, Prot.RW, c);
        assertThatCode(() -> InvariantChecker.check(t)).doesNotThrowAnyException();
        t.destroy();
        c.release();
        assertThat(t.memory().framesInUse()).isZero();
    }
}
