package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import java.util.BitSet;
import org.junit.jupiter.api.Test;

/** The guest-abort handler's exits, read-only slots, and dirty-log harvesting. */
class VmTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long GPA = 0x4000_0000L, HOST = 0x1_0000_0000L;

    @Test
    void faultsOutsideEveryMemslotAreMmioExitsAndBeyondTheIpaSizeAddressSizeErrors() {
        Vm vm = new Vm(VmConfig.defaults().withIpaBits(36));
        vm.addMemslot(GPA, M2, Backing.PAGE, HOST, false);
        Vcpu v = vm.createVcpu();
        assertThat(v.access(GPA + K4 + 8, Access.READ)).isEqualTo(HOST + K4 + 8);
        assertThat(v.access(GPA + M2, Access.READ)).as("first byte after the slot").isEqualTo(Vcpu.EXIT_MMIO);
        assertThat(v.access(1L << 36, Access.WRITE)).isEqualTo(Vcpu.EXIT_ADDRESS_SIZE);
        assertThat(v.stats().mmioExits()).isEqualTo(1);
        assertThat(v.stats().addressSizeErrors()).isEqualTo(1);
        assertThat(v.stats().exits(VmExit.MMIO)).isEqualTo(1);
        assertThat(v.stats().exits(VmExit.ADDRESS_SIZE)).isEqualTo(1);
        assertThat(v.stats().exits(VmExit.EFAULT)).isZero();
        assertThat(v.stats().faults(FaultType.TRANSLATION, 0)).as("the MMU reports IA >= limit as level 0").isEqualTo(1);
        vm.destroy();
        assertThat(vm.tableMemory().framesInUse()).isZero();
    }

    @Test
    void eachExitHasItsOwnNegativeCodeThatNoPaCanBe() {
        assertThat(VmExit.of(Vcpu.EXIT_MMIO)).isEqualTo(VmExit.MMIO);
        assertThat(VmExit.of(Vcpu.EXIT_ADDRESS_SIZE)).isEqualTo(VmExit.ADDRESS_SIZE);
        assertThat(VmExit.of(Vcpu.EXIT_EFAULT)).isEqualTo(VmExit.EFAULT);
        assertThat(VmExit.of(HOST)).as("a PA is no exit").isNull();
        assertThat(VmExit.of(0)).isNull();
        for (VmExit e : VmExit.values()) assertThat(e.code()).as(e.name()).isNegative();
        assertThat(java.util.Arrays.stream(VmExit.values()).mapToLong(VmExit::code).distinct().count()).isEqualTo(VmExit.values().length);
        for (AbortResult r : AbortResult.values()) {
            assertThat(r.exit() == null).as(r.name()).isEqualTo(r == AbortResult.RESUME || r.lostToInvalidation());
        }
    }

    @Test
    void aReadOnlySlotIsMappedReadOnlyAndItsWritesExitToTheVmm() {
        Vm vm = new Vm(VmConfig.defaults());
        vm.addMemslot(GPA, M2, Backing.THP, HOST, true);
        Vcpu v = vm.createVcpu();
        assertThat(v.access(GPA + 5 * K4, Access.READ)).isEqualTo(HOST + 5 * K4);
        long pte = vm.table().getLeaf(GPA).pte();
        assertThat(Stage2Descriptor.writable(pte)).isFalse();
        assertThat(vm.table().getLeaf(GPA).level()).isEqualTo(2);
        assertThat(v.access(GPA, Access.WRITE)).isEqualTo(Vcpu.EXIT_MMIO);
        assertThat(v.access(GPA + M2 - K4, Access.WRITE)).as("also when nothing is mapped yet").isEqualTo(Vcpu.EXIT_MMIO);
        assertThat(Stage2Descriptor.writable(vm.table().getLeaf(GPA).pte())).isFalse();
        vm.destroy();
    }

    @Test
    void aBlockIsDemotedWhenGuestAndHostAddressesAreNotCongruentOrItWouldLeaveTheSlot() {
        Vm vm = new Vm(VmConfig.defaults());
        Memslot congruent = vm.addMemslot(0x8000_0000L, 2 * M2, Backing.THP, HOST, false);
        Memslot skewed = vm.addMemslot(0xC000_1000L, 2 * M2, Backing.THP, HOST + 64 * M2, false);
        Memslot page = vm.addMemslot(GPA, 4 * M2, Backing.PAGE, HOST + 128 * M2, false);
        Vcpu v = vm.createVcpu();
        v.access(congruent.gpa() + 3 * K4, Access.READ);
        v.access(skewed.gpa() + 3 * K4, Access.READ);
        v.access(page.gpa() + 3 * K4, Access.READ);
        assertThat(vm.table().getLeaf(congruent.gpa()).level()).as("IPA and host PA congruent modulo 2M: a block").isEqualTo(2);
        assertThat(vm.table().getLeaf(skewed.gpa() + 3 * K4).level())
                .as("IPA 0xc0001000 vs host 0x108000000: not congruent modulo 2M, so pages").isEqualTo(3);
        assertThat(vm.table().getLeaf(page.gpa() + 3 * K4).level()).as("page backing").isEqualTo(3);
        vm.destroy();

        Vm w = new Vm(VmConfig.defaults());
        assertThatThrownBy(() -> w.addMemslot(GPA, M2, Backing.THP, HOST + K4, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("hostPa:");
        w.addMemslot(GPA, M2, Backing.PAGE, HOST, false);
        assertThatThrownBy(() -> w.addMemslot(GPA + K4, M2, Backing.PAGE, HOST, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlaps");
        // A page-backed slot whose IPA is 2M-aligned but whose host range is not: never a block,
        // even for a THP-sized request, because KVM's congruence check fails.
        Vm x = new Vm(VmConfig.defaults());
        Memslot odd = x.addMemslot(GPA + M2, M2, Backing.PAGE, HOST + K4, false);
        x.createVcpu().access(odd.gpa(), Access.READ);
        assertThat(x.table().getLeaf(odd.gpa()).level()).isEqualTo(3);
        x.destroy();
        w.destroy();
    }

    @Test
    void harvestingWithReprotectCatchesTheNextWriteAgain() {
        Vm vm = new Vm(VmConfig.defaults());
        Memslot slot = vm.addMemslot(GPA, M2, Backing.PAGE, HOST, false);
        Vcpu v = vm.createVcpu();
        v.access(GPA, Access.WRITE);
        v.access(GPA + K4, Access.READ);
        vm.enableDirtyLogging(slot);
        v.access(GPA, Access.WRITE);
        v.access(GPA + 2 * K4, Access.WRITE);
        assertThat(BitSet.valueOf(vm.getDirtyLog(slot))).isEqualTo(BitSet.valueOf(new long[] {0b101}));
        assertThat(BitSet.valueOf(vm.getDirtyLog(slot)).isEmpty()).as("harvest clears").isTrue();
        long faults = v.stats().faults();
        v.access(GPA, Access.WRITE);
        assertThat(v.stats().faults()).as("re-protected: the write faults again").isEqualTo(faults + 1);
        assertThat(BitSet.valueOf(vm.getDirtyLog(slot, false))).isEqualTo(BitSet.valueOf(new long[] {1}));
        v.access(GPA, Access.WRITE);
        assertThat(v.stats().faults()).as("not re-protected: no fault").isEqualTo(faults + 1);
        vm.disableDirtyLogging(slot);
        vm.destroy();
        assertThat(vm.tableMemory().framesInUse()).isZero();
    }
}
