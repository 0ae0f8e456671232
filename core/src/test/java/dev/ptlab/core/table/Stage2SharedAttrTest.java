package dev.ptlab.core.table;

import static dev.ptlab.core.table.OpsLog.Kind.IC;
import static dev.ptlab.core.table.OpsLog.Kind.TLBI_IPA_LOCAL;
import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import org.junit.jupiter.api.Test;

/**
 * The fault-path attribute updates as shared fault walks (SHARED | HANDLE_FAULT), in one thread:
 * an entry another walker holds LOCKED, or that changes between the read and the
 * compare-and-swap, is RACED (the vCPU re-faults); otherwise OK. relaxPerms still issues its local
 * TLBI on RACED, with no level hint (kvm-pgtable.md §6.7, §7.4).
 */
class Stage2SharedAttrTest {
    static final int FAULT = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
    static final long A = 0x4000_0000L, P = 0x8000_0000L;
    static final long K4 = 0x1000, M2 = 2L << 20;

    @Test
    void sharedMkyoungIsOkOnAValidLeafRacedOnALockedOneNotMappedOnAHole() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, 2 * K4, P, "rw");
        r.map(A + M2, M2, P + M2, "rw");
        r.table.testClearYoung(A, 4 * M2, true);

        assertThat(r.table.mkyoung(A + 0x40, FAULT)).isEqualTo(Status.OK);
        assertThat(r.table.getLeaf(A).pte() & Stage2Descriptor.AF).isNotZero();
        assertThat(r.table.mkyoung(A + M2 + 0x1234, FAULT)).isEqualTo(Status.OK);
        assertThat(r.table.getLeaf(A + M2).pte() & Stage2Descriptor.AF).isNotZero();
        assertThat(r.table.mkyoung(A + 3 * K4, FAULT)).isEqualTo(Status.NOT_MAPPED);

        long old = r.lock(A + K4);
        assertThat(r.table.mkyoung(A + K4, FAULT)).isEqualTo(Status.RACED);
        assertThat(r.table.getLeaf(A + K4).pte()).as("a locked entry is not touched").isEqualTo(Pte.LOCKED);
        r.unlock(A + K4, old);
        assertThat(r.table.mkyoung(A + K4, FAULT)).isEqualTo(Status.OK);
        assertThat(r.table.getLeaf(A + K4).pte()).isEqualTo(old | Stage2Descriptor.AF);
        assertThat(r.log.hw.totalFlushes()).isZero();
        r.table.checkRefcounts();
    }

    @Test
    void sharedRelaxPermsIsOkRacedOrNotMappedAndInvalidatesLocallyEachWay() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, 2 * K4, P, "r");
        r.log.clear();

        assertThat(r.table.relaxPerms(A, Prot.RW, FAULT, r.tlb)).isEqualTo(Status.OK);
        assertThat(Stage2Descriptor.writable(r.table.getLeaf(A).pte())).isTrue();
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA_LOCAL);
        assertThat(r.log.events.get(0).level()).isEqualTo(3);

        long old = r.lock(A + K4);
        r.log.clear();
        assertThat(r.table.relaxPerms(A + K4, Prot.RW, FAULT, r.tlb)).isEqualTo(Status.RACED);
        assertThat(r.table.getLeaf(A + K4).pte()).isEqualTo(Pte.LOCKED);
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA_LOCAL);
        assertThat(r.log.events.get(0).addr()).isEqualTo(A + K4);
        assertThat(r.log.events.get(0).level()).as("no leaf level known on RACED").isEqualTo(TlbMaintenance.LEVEL_UNKNOWN);
        r.unlock(A + K4, old);
        assertThat(r.table.relaxPerms(A + K4, Prot.RW, FAULT, r.tlb)).isEqualTo(Status.OK);
        assertThat(r.mmu.translate(A + K4, Access.WRITE)).isEqualTo(P + K4);

        // Not mapped: still the local TLBI, level unknown, as the kernel's relax_perms does on
        // -EAGAIN (before: no TLBI).
        r.log.clear();
        assertThat(r.table.relaxPerms(A + 5 * K4, Prot.RW, FAULT, r.tlb)).isEqualTo(Status.NOT_MAPPED);
        assertThat(r.log.kinds()).containsExactly(TLBI_IPA_LOCAL);
        assertThat(r.log.events.get(0).level()).isEqualTo(TlbMaintenance.LEVEL_UNKNOWN);
        assertThat(r.log.hw.ipaFlushes() + r.log.hw.rangeFlushes() + r.log.hw.vmidFlushes()).isZero();
        r.table.checkRefcounts();
    }

    @Test
    void sharedRelaxPermsThatLosesTheCompareAndSwapIsRacedAndLeavesTheWinnersValue() {
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, K4, P, "r");
        long before = r.table.getLeaf(A).pte();
        // Another CPU's update lands between relaxPerms' read of the entry and its
        // compare-and-swap: here, while relaxPerms does the I-cache maintenance for added execute.
        long[] winner = {0};
        r.mem.cacheMaintenance().setListener(new CacheMaintenance.Listener() {
            @Override
            public void dcacheCleanInvalPoc(long pa, long size) {}

            @Override
            public void icacheInvalPou(long pa, long size) {
                r.table.walk(A, K4, (ctx, v) -> {
                    winner[0] = ctx.old() & ~Stage2Descriptor.AF; // e.g. another CPU's shared update making it old
                    ctx.trySet(winner[0]);
                    return Status.OK;
                }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE); // shared: the read lock is held by the fault
            }
        });

        assertThat(r.table.relaxPerms(A, Prot.RX, FAULT, r.tlb)).isEqualTo(Status.RACED);

        assertThat(winner[0]).isEqualTo(before & ~Stage2Descriptor.AF);
        assertThat(r.table.getLeaf(A).pte()).as("the winner's value stays").isEqualTo(winner[0]);
        r.mem.cacheMaintenance().setListener(r.log);
        r.log.clear();
        assertThat(r.table.relaxPerms(A, Prot.RX, FAULT, r.tlb)).as("the re-fault succeeds").isEqualTo(Status.OK);
        assertThat(Stage2Descriptor.isExecutable(r.table.getLeaf(A).pte())).isTrue();
        assertThat(r.log.kinds()).containsExactly(IC, TLBI_IPA_LOCAL);
        r.table.checkRefcounts();
    }

    @Test
    void outsideAFaultWalkALockedEntryIsRacedToo() {
        // Outside a fault walk the same calls report the same statuses (single entry, nothing to continue to).
        OpsRig r = new OpsRig(Granule.G4K, 40, 0);
        r.map(A, K4, P, "r");
        long old = r.lock(A);
        assertThat(r.table.mkyoung(A)).isEqualTo(Status.RACED);
        assertThat(r.table.relaxPerms(A, Prot.RW, 0, r.tlb)).isEqualTo(Status.RACED);
        r.unlock(A, old);
        assertThat(r.table.relaxPerms(A, Prot.RW, 0, r.tlb)).isEqualTo(Status.OK);
        r.table.checkRefcounts();
    }
}
