package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.mm.device.MirrorDevice;
import dev.ptlab.mm.notify.NotifierEvent;
import org.junit.jupiter.api.Test;

/** The device-atomics workload: a VM and devices adding to the same memory, no update lost, everything returned. */
class DeviceAtomicsTest {

    private static RandomAccess.Options options(Backing backing) {
        return RandomAccess.Options.defaults().memory(8L << 20).backing(backing).vcpus(2).accesses(20_000).hotFraction(0.01).seed(7);
    }

    private static void assertSharedAndCoherent(DeviceAtomics.Result r, int devices) {
        DeviceAtomics.Result d = r;
        System.out.println("device-atomics: guest writes " + d.guestWrites + ", device adds " + d.deviceAdds + ", sum " + d.memorySum
                + ", devices " + d.devices + ", phase " + r.phases.get(0).counters());
        assertThat(d.coherent()).as("sum %d = guest writes %d + device adds %d", d.memorySum, d.guestWrites, d.deviceAdds).isTrue();
        assertThat(d.deviceAdds).isEqualTo(devices * 20_000L);
        assertThat(d.guestWrites + d.guestReads).isEqualTo(2 * 20_000L);
        assertThat(d.guestWrites).isPositive();
        PhaseReport p = r.phase("device-atomics");
        // The VM and the devices really shared pages: conversions took pages from the guest and
        // the guest took them back.
        assertThat(d.total(MirrorDevice.Counter.CONVERSION)).isPositive();
        assertThat(d.total(MirrorDevice.Counter.ATOMIC_FAULT)).isEqualTo(d.total(MirrorDevice.Counter.CONVERSION));
        assertThat(p.counter("host-exclusive-conversion")).isGreaterThanOrEqualTo(d.total(MirrorDevice.Counter.CONVERSION));
        assertThat(p.counter("host-exclusive-restore")).isPositive();
        // Every conversion sends one EXCLUSIVE event and every restore one CLEAR (6.15+); a
        // conversion that found the entry changed under it, or a restore that lost to another,
        // sends one and starts again. Nothing else here sends EXCLUSIVE.
        assertThat(p.counter("notifier-exclusive")).isGreaterThanOrEqualTo(p.counter("host-exclusive-conversion"));
        assertThat(p.counter("notifier-clear")).isGreaterThanOrEqualTo(p.counter("host-exclusive-restore"));
        assertThat(p.counter("notifier-stage2-unmapped")).isPositive();
        assertThat(d.deviceInvalidations.get(NotifierEvent.CLEAR)).as("guest faults taking pages back").isPositive();
        assertThat(r.memoryReturned()).isTrue();
    }

    @Test
    void pagesAndTwoDevices() {
        DeviceAtomics.Result r = DeviceAtomics.run(VmConfig.defaults().withChecking(true), options(Backing.PAGE), 2, new Progress());
        assertSharedAndCoherent(r, 2);
        assertThat(r.total(MirrorDevice.Counter.CONVERSION_RESTORE)).as("two devices steal from each other").isPositive();
    }

    @Test
    void thpBackingSplitsTheBlocksTheDeviceTouches() {
        DeviceAtomics.Result r = DeviceAtomics.run(VmConfig.defaults().withChecking(true), options(Backing.THP), 1, new Progress());
        assertSharedAndCoherent(r, 1);
        assertThat(r.phase("device-atomics").counter("host-thp-split")).isPositive();
    }

    @Test
    void withoutDevicesTheGuestAloneAddsUp() {
        DeviceAtomics.Result r = DeviceAtomics.run(VmConfig.defaults(), options(Backing.PAGE), 0, new Progress());
        assertThat(r.coherent()).isTrue();
        assertThat(r.memorySum).isEqualTo(r.guestWrites).isPositive();
        assertThat(r.phase("device-atomics").counter("notifier-exclusive")).isZero();
    }

    @Test
    void refusesWhatCannotWork() {
        assertThatThrownBy(() -> DeviceAtomics.run(VmConfig.defaults().withHostMemory(HostMemoryModel.FIXED), options(Backing.PAGE), 1,
                new Progress())).isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("host memory: fixed has no host process");
        assertThatThrownBy(() -> DeviceAtomics.run(VmConfig.defaults(), options(Backing.HUGETLB), 1, new Progress()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("backing: hugetlb");
        // Shared memory (shmem) is not anonymous: make_device_exclusive refuses it as well.
        assertThatThrownBy(() -> DeviceAtomics.run(VmConfig.defaults(), options(Backing.parse("shmem")), 1, new Progress()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("backing: shmem: shared memory cannot be made device-exclusive");
        assertThatThrownBy(() -> DeviceAtomics.run(VmConfig.defaults(), options(Backing.PAGE), -1, new Progress()))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("devices: -1 is outside 0..16");
    }
}
