package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.TlbiScope;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.table.TableCounter;
import org.junit.jupiter.api.Test;

/**
 * The hardware features as VM options ({@link VmConfig} class comment): their defaults, and
 * what each one changes in a VM's costs, with counts derived by hand.
 */
class VmFeaturesTest {
    static final long K4 = 0x1000, M2 = 0x20_0000, M = 1L << 20;
    static final long GPA = 0x4000_0000L, HOST = 0x1_0000_0000L;
    /** 64 MiB of 2M THP-backed memory: 32 blocks. */
    static final long SIZE = 64 * M, BLOCKS = SIZE / M2;

    @Test
    void everyFeatureIsOnByDefaultAndEachReachesTheTableOrTheMmu() {
        VmConfig d = VmConfig.defaults();
        assertThat(d.fwb()).isTrue();
        assertThat(d.rangeTlbi()).isTrue();
        assertThat(d.hardwareAf()).as("as kvm_get_vtcr sets VTCR_EL2.HA").isTrue();
        assertThat(d.xnx()).isTrue();
        assertThat(d.tableFlags()).isEqualTo(Stage2PageTable.FWB | Stage2PageTable.RANGE_TLBI);
        assertThat(d.toString()).contains("fwb on, range-tlbi on, hardware-af on, xnx on");

        VmConfig off = d.withFwb(false).withRangeTlbi(false).withHardwareAf(false).withXnx(false);
        Vm vm = new Vm(off);
        assertThat(vm.table().tableFlags()).isEqualTo(Stage2PageTable.NO_XNX);
        assertThat(vm.table().fwb()).isFalse();
        assertThat(off.toString()).contains("fwb off, range-tlbi off, hardware-af off, xnx off");
        assertThat(off.withXnx(true).tableFlags()).as("xnx on clears NO_XNX only").isZero();
        vm.destroy();
    }

    /** Per vCPU, the counters {@link #selftestLike} reads before and after each step. */
    private static final class Costs {
        long vmid, range, dcacheOps, dcacheBytes, bbmOps, bbmBytes;

        Costs(Vm vm) {
            CacheMaintenance c = vm.tableMemory().cacheMaintenance();
            vmid = vm.tlbs().flushes(TlbiScope.VMID);
            range = vm.tlbs().flushes(TlbiScope.RANGE);
            dcacheOps = c.dcacheOps();
            dcacheBytes = c.dcacheBytes();
            bbmOps = c.bbmCmoOps();
            bbmBytes = c.bbmCmoBytes();
        }

        Costs minus(Costs b) {
            Costs d = this;
            Costs r = new Costs();
            r.vmid = d.vmid - b.vmid;
            r.range = d.range - b.range;
            r.dcacheOps = d.dcacheOps - b.dcacheOps;
            r.dcacheBytes = d.dcacheBytes - b.dcacheBytes;
            r.bbmOps = d.bbmOps - b.bbmOps;
            r.bbmBytes = d.bbmBytes - b.bbmBytes;
            return r;
        }

        private Costs() {}
    }

    /**
     * The selftest's shape on 32 THP blocks, one vCPU: create (write each block), dirty logging
     * on, write the first page of each block (splits it), logging off, read the second page of
     * each (the fault maps the 2M block again: the L3 table is coalesced). Returns the costs of
     * create, log-enable and adjust.
     */
    private static Costs[] selftestLike(VmConfig config) {
        Vm vm = new Vm(config);
        Memslot slot = vm.addMemslot(GPA, SIZE, Backing.THP, HOST, false);
        Vcpu v = vm.createVcpu();
        Costs t0 = new Costs(vm);
        for (long b = 0; b < BLOCKS; b++) v.access(GPA + b * M2, Access.WRITE);
        Costs t1 = new Costs(vm);
        vm.enableDirtyLogging(slot);
        Costs t2 = new Costs(vm);
        for (long b = 0; b < BLOCKS; b++) v.access(GPA + b * M2, Access.WRITE);
        vm.disableDirtyLogging(slot);
        Costs t3 = new Costs(vm);
        for (long b = 0; b < BLOCKS; b++) v.access(GPA + b * M2 + K4, Access.READ);
        Costs t4 = new Costs(vm);
        assertThat(vm.table().counters().get(TableCounter.COALESCED)).isEqualTo(BLOCKS);
        vm.destroy();
        return new Costs[] {t1.minus(t0), t2.minus(t1), t4.minus(t3)};
    }

    @Test
    void withoutFwbEveryCoalescedBlockIsCleanedInsideItsBreakWindow() {
        Costs[] off = selftestLike(VmConfig.defaults().withFwb(false));
        // create: 32 blocks mapped into empty entries, each cleaned (2M), none inside a window.
        assertThat(off[0].dcacheOps).isEqualTo(BLOCKS);
        assertThat(off[0].dcacheBytes).isEqualTo(SIZE);
        assertThat(off[0].bbmBytes).isZero();
        // adjust: each 2M block replaces its L3 table with break-before-make and is cleaned
        // between the break and the make: 32 ops, 64 MiB, all of it inside the window.
        assertThat(off[2].dcacheOps).isEqualTo(BLOCKS);
        assertThat(off[2].bbmOps).isEqualTo(BLOCKS);
        assertThat(off[2].bbmBytes).isEqualTo(SIZE).isEqualTo(off[2].dcacheBytes);

        Costs[] on = selftestLike(VmConfig.defaults());
        for (Costs c : on) {
            assertThat(c.dcacheOps).isZero();
            assertThat(c.bbmBytes).isZero();
        }
    }

    @Test
    void withoutRangeTlbiTheLogEnableFlushAndEveryTableBreakInvalidateTheWholeVmid() {
        Costs[] range = selftestLike(VmConfig.defaults());
        assertThat(range[1].range).as("log-enable: one range TLBI over the slot").isEqualTo(1);
        assertThat(range[1].vmid).isZero();
        assertThat(range[2].range).as("adjust: one per coalesced table").isEqualTo(BLOCKS);
        assertThat(range[2].vmid).isZero();

        Costs[] vmid = selftestLike(VmConfig.defaults().withRangeTlbi(false));
        assertThat(vmid[1].vmid).as("log-enable: kvm_tlb_flush_vmid_range without range TLBI").isEqualTo(1);
        assertThat(vmid[1].range).isZero();
        assertThat(vmid[2].vmid).isEqualTo(BLOCKS);
        assertThat(vmid[2].range).isZero();
    }

    @Test
    void theLogEnableFlushOfASlotAboveMaxTlbiRangePagesIsSeveralRangeTlbis() {
        // kvm_tlb_flush_vmid_range splits at MAX_TLBI_RANGE_PAGES = 2^21 pages = 8 GiB of 4K
        // pages: a 20 GiB slot is flushed by ceil(20 / 8) = 3 range TLBIs (before: 1 of any size).
        Vm vm = new Vm(VmConfig.defaults().withIpaBits(40));
        Memslot slot = vm.addMemslot(1L << 36, 20L << 30, Backing.PAGE, HOST, false);
        long before = vm.tlbs().flushes(TlbiScope.RANGE);
        vm.enableDirtyLogging(slot);
        assertThat(vm.tlbs().flushes(TlbiScope.RANGE) - before).isEqualTo(3);
        vm.destroy();
    }

    @Test
    void withHardwareAfAnAgedPageIsMadeYoungByTheMmuWithoutAFault() {
        for (boolean ha : new boolean[] {true, false}) {
            Vm vm = new Vm(VmConfig.defaults().withHardwareAf(ha));
            vm.addMemslot(GPA, M2, Backing.PAGE, HOST, false);
            Vcpu v = vm.createVcpu();
            v.access(GPA, Access.READ);
            // Age the page as the host's clear_flush_young does: clear AF, then invalidate.
            assertThat(vm.table().testClearYoung(GPA, K4, true)).isTrue();
            vm.tlbs().flushVmid(vm.config().vmid());
            v.access(GPA, Access.READ);
            assertThat(v.stats().faults(FaultType.ACCESS_FLAG, 3)).as("hardware AF " + ha).isEqualTo(ha ? 0 : 1);
            assertThat(Stage2Descriptor.young(vm.table().getLeaf(GPA).pte())).as("young again").isTrue();
            vm.destroy();
        }
    }
}
