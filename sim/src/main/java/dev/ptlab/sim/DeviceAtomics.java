package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Folio;
import dev.ptlab.mm.HostMemory;
import dev.ptlab.mm.HostPte;
import dev.ptlab.mm.device.MirrorDevice;
import dev.ptlab.mm.notify.NotifierEvent;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A VM and devices sharing one host process's memory (issue 7): the vCPUs make random reads and
 * writes over a hot set, as {@link RandomAccess}, while {@link MirrorDevice}s make atomic adds on
 * random pages of the same memory, each of which needs the page device-exclusive. Every guest
 * write adds 1 to the int it writes, through the host folio at the PA stage-2 gave it, and every
 * device add adds 1 too, so at the end the memory's sum equals guest writes + device adds: a lost
 * update would mean a guest or a device wrote through a mapping the host had already taken away
 * (a stage-2 leaf or mirror entry left behind by a missed invalidation).
 *
 * <p>The devices run as threads beside the vCPUs for the one phase, which ends when all of them
 * are done, so the phase's host-side counters (notifier events, conversions, restores, stage-2
 * leaves unmapped by notifiers) cover both.
 *
 * <p>A device adds in bursts of {@link #BURST} to one page (one device fault per burst unless the
 * guest takes the page back meanwhile) and keeps pace with the slowest vCPU: its n-th add waits
 * until every vCPU has made n accesses.
 *
 * <p>Each conversion unmaps the page from stage-2 (the VM's notifier sees the EXCLUSIVE event;
 * a THP block goes whole and the host splits the THP); the guest's next access faults, and its
 * GUP restores the host entry, revoking the device (CLEAR with no owner, 6.15+), which faults again
 * for its next add there.
 */
public final class DeviceAtomics {
    /** How often a vCPU publishes its progress (a power of two). */
    private static final int PROGRESS_STEP = 64;
    /** Atomic adds a device makes to one page before it picks another. */
    public static final int BURST = 16;
    /** Most devices one run may have. */
    public static final int MAX_DEVICES = 16;

    /** What the devices did and the memory's sum, beside the VM's phase report. */
    public static final class Result extends RunResult {
        /** Guest writes (each added 1 to memory) and reads. */
        public long guestWrites;
        public long guestReads;
        /** Device atomic adds (each added 1). */
        public long deviceAdds;
        /** The sum of every int of guest memory at the end. */
        public long memorySum;
        /** Wall time of the device threads (from the phase's start to the last one finishing). */
        public long deviceWallNanos;
        /** Each device's own counters, by device name. */
        public final Map<String, Map<MirrorDevice.Counter, Long>> devices = new java.util.LinkedHashMap<>();
        /** Invalidations the devices acted on, by event, summed over the devices. */
        public final Map<NotifierEvent, Long> deviceInvalidations = new EnumMap<>(NotifierEvent.class);

        /** Whether every add landed: the memory's sum is the number of guest writes plus device adds. */
        public boolean coherent() {
            return memorySum == guestWrites + deviceAdds;
        }

        /** The memory's sum is coherent, and every frame and page came back. */
        @Override
        public boolean passed() {
            return coherent() && memoryReturned();
        }

        /** {@code counter} summed over the devices. */
        public long total(MirrorDevice.Counter counter) {
            long n = 0;
            for (Map<MirrorDevice.Counter, Long> d : devices.values()) n += d.getOrDefault(counter, 0L);
            return n;
        }
    }

    private DeviceAtomics() {}

    /**
     * Runs the workload as one phase, {@code device-atomics}, on a fresh VM whose memory is a
     * host process's (the configuration must say {@link HostMemoryModel#PROCESS}); each of the
     * {@code devices} devices makes as many adds as each vCPU makes accesses.
     *
     * @throws IllegalArgumentException naming the option: fixed host memory (no process to
     *     share), hugetlb backing (device-exclusive needs ordinary anonymous memory), a device
     *     count outside 0..{@link #MAX_DEVICES}, or bad access options
     */
    public static Result run(VmConfig config, RandomAccess.Options o, int devices, Progress progress) {
        check(config, o, devices);
        long base = o.slotBase(config);
        Vm vm = new Vm(config);
        Result r = new Result();
        progress.start(vm, o.accesses * o.vcpus);
        GuestMemory memory = null;
        List<MirrorDevice> devs = new ArrayList<>();
        try {
            memory = GuestMemory.add(vm, base, o.memory, o.backing);
            AddressSpace mm = memory.mm;
            HostMemory host = memory.host.memory();
            long hva = memory.slot.hva();
            for (int i = 0; i < o.vcpus; i++) vm.createVcpu();
            for (int d = 0; d < devices; d++) devs.add(new MirrorDevice(mm, "device" + d));
            Granule g = config.granule();
            long page = g.pageSize();
            long pages = o.memory / page;
            long hot = Math.max(1, (long) (pages * o.hotFraction));

            // The devices start with the vCPUs (the first vCPU to start opens the gate).
            CountDownLatch go = new CountDownLatch(1);
            AtomicReference<Throwable> deviceFailure = new AtomicReference<>();
            AtomicLong deviceAdds = new AtomicLong();
            AtomicLong deviceStart = new AtomicLong();
            AtomicLong deviceEnd = new AtomicLong();
            // Accesses each vCPU has made so far, published every PROGRESS_STEP (devices pace on it).
            AtomicLongArray vcpuProgress = new AtomicLongArray(o.vcpus);
            List<Thread> threads = new ArrayList<>();
            for (int d = 0; d < devices; d++) {
                MirrorDevice dev = devs.get(d);
                long seed = o.seed * 0x9E3779B97F4A7C15L + 1000 + d;
                threads.add(new Thread(() -> {
                    try {
                        go.await();
                        deviceStart.compareAndSet(0, System.nanoTime());
                        SplittableRandom rnd = new SplittableRandom(seed);
                        for (long n = 0; n < o.accesses; ) {
                            awaitVcpus(vcpuProgress, n);
                            // A burst of adds to one page, as a device kernel works on a buffer:
                            // one device fault (conversion) at most per burst.
                            long p = RandomAccess.pickPage(rnd, hot, pages, o.hotProbability);
                            long burst = Math.min(BURST, o.accesses - n);
                            for (long k = 0; k < burst; k++) dev.atomicAdd(hva + p * page + (rnd.nextInt((int) page) & ~3), 1);
                            n += burst;
                            deviceAdds.addAndGet(burst);
                            // Let the vCPUs run between bursts (fewer cores than threads, often).
                            Thread.yield();
                        }
                    } catch (Throwable e) {
                        deviceFailure.compareAndSet(null, e);
                    } finally {
                        deviceEnd.accumulateAndGet(System.nanoTime(), Math::max);
                    }
                }, dev.name()));
            }
            for (Thread t : threads) t.start();
            AtomicLong writes = new AtomicLong();
            AtomicLong reads = new AtomicLong();
            try {
                r.phases.add(Simulation.runPhase(vm, "device-atomics", (v, i) -> {
                    go.countDown();
                    SplittableRandom rnd = new SplittableRandom(o.seed * 0x9E3779B97F4A7C15L + i);
                    long w = 0;
                    try {
                        for (long n = 0; n < o.accesses; n++) {
                            if ((n & (PROGRESS_STEP - 1)) == 0) vcpuProgress.set(i, n);
                            long p = RandomAccess.pickPage(rnd, hot, pages, o.hotProbability);
                            long gpa = base + p * page + (rnd.nextInt((int) page) & ~3);
                            if (rnd.nextDouble() < o.writeFraction) {
                                guestAdd(vm, v, gpa, host);
                                w++;
                            } else {
                                exitCheck(v, gpa, v.access(gpa, Access.READ));
                            }
                        }
                    } finally {
                        // Done (or failed): the devices no longer wait for this vCPU.
                        vcpuProgress.set(i, Long.MAX_VALUE);
                    }
                    writes.addAndGet(w);
                    reads.addAndGet(o.accesses - w);
                    // The phase ends when the devices are done too, so its counters cover their work.
                    if (i == 0) for (Thread t : threads) join(t);
                }));
            } finally {
                go.countDown();
                for (Thread t : threads) join(t);
            }
            if (deviceFailure.get() != null) {
                throw new IllegalStateException("a device failed: " + deviceFailure.get(), deviceFailure.get());
            }
            r.guestWrites = writes.get();
            r.guestReads = reads.get();
            r.deviceAdds = deviceAdds.get();
            r.deviceWallNanos = devices == 0 ? 0 : deviceEnd.get() - deviceStart.get();
            for (MirrorDevice dev : devs) {
                r.devices.put(dev.name(), dev.counts());
                dev.invalidationCounts().forEach((e, n) -> r.deviceInvalidations.merge(e, n, Long::sum));
                dev.close();
            }
            r.memorySum = sum(mm, host, hva, o.memory, page);
            r.tableAtEnd = TableSnapshot.of(vm.table());
            if (config.checking()) memory.host.checkInvariants(true);
        } finally {
            for (MirrorDevice dev : devs) dev.close();
            r.endRun(progress, vm, memory);
        }
        return r;
    }

    /**
     * A guest store that adds 1 to the int at {@code gpa}. The access and the add must be one
     * step with respect to invalidations, as a store is with respect to a TLBI that waits for it:
     * after the access faults in a mapping, the add is done under the MMU read lock and only if
     * the vCPU still translates {@code gpa} to the same PA; an invalidation needs the write lock
     * to unmap it, so the host still maps that folio there while the add runs.
     */
    static void guestAdd(Vm vm, Vcpu v, long gpa, HostMemory host) {
        MmuLock lock = vm.mmuLock();
        while (true) {
            long pa = v.access(gpa, Access.WRITE);
            exitCheck(v, gpa, pa);
            lock.readLock();
            try {
                if (v.mmu().translate(gpa, Access.WRITE) == pa) {
                    Folio f = host.folioOf(pa);
                    f.getAndAddInt(pa - f.pa(), 1);
                    return;
                }
            } finally {
                lock.readUnlock();
            }
        }
    }

    private static void exitCheck(Vcpu v, long gpa, long result) {
        if (result < 0) {
            throw new IllegalStateException("vcpu" + v.id() + ": access to 0x" + Long.toHexString(gpa) + " exited (" + result
                    + "): the host refused a page of an ordinary anonymous memslot");
        }
    }

    /** Sum of every int of {@code [hva, hva + size)}, read from the folios the host entries name (untouched pages are zero). */
    private static long sum(AddressSpace mm, HostMemory host, long hva, long size, long page) {
        long s = 0;
        for (long off = 0; off < size; off += page) {
            long pte = mm.pte(hva + off);
            long pa;
            if (HostPte.isPresent(pte)) {
                // A block entry (THP) maps several pages: the page's PA is at its offset inside.
                pa = HostPte.pa(mm.geometry(), pte) + ((hva + off) & (mm.geometry().granule().levelSize(mm.pteLevel(hva + off)) - 1));
            } else if (HostPte.isDeviceExclusive(pte)) {
                pa = HostPte.swapOffset(pte) * page;
            } else if (pte == 0) {
                continue;
            } else {
                throw new IllegalStateException("host entry at 0x" + Long.toHexString(hva + off) + " is " + HostPte.describe(mm.geometry(), pte)
                        + ": nothing in this workload swaps");
            }
            Folio f = host.folioOf(pa);
            long at = pa - f.pa();
            for (long b = 0; b < page; b += 8) {
                long w = f.readLong(at + b);
                s += (int) w + (int) (w >>> 32);
            }
        }
        return s;
    }

    /**
     * Paces a device to the guest: its adds number {@code done} so far, and it waits until every
     * vCPU has made as many accesses (or finished), so devices and vCPUs share pages for the
     * whole run instead of the faster side finishing alone.
     */
    private static void awaitVcpus(AtomicLongArray progress, long done) {
        while (true) {
            long slowest = Long.MAX_VALUE;
            for (int i = 0; i < progress.length(); i++) slowest = Math.min(slowest, progress.get(i));
            if (slowest >= done) return;
            LockSupport.parkNanos(20_000);
        }
    }

    private static void join(Thread t) {
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + t.getName(), e);
        }
    }

    private static void check(VmConfig config, RandomAccess.Options o, int devices) {
        if (config.hostMemory() != HostMemoryModel.PROCESS) {
            throw new IllegalArgumentException("host memory: " + config.hostMemory() + " has no host process for a device to share; "
                    + "device-atomics needs process");
        }
        if (o.backing.hugetlb() || o.backing.shared()) {
            throw new IllegalArgumentException("backing: " + o.backing + ": " + (o.backing.hugetlb() ? "hugetlb pages" : "shared memory")
                    + " cannot be made device-exclusive (EOPNOTSUPP); "
                    + "device-atomics needs page or thp");
        }
        if (devices < 0 || devices > MAX_DEVICES) {
            throw new IllegalArgumentException("devices: " + devices + " is outside 0.." + MAX_DEVICES);
        }
        RandomAccess.check(o);
    }
}
