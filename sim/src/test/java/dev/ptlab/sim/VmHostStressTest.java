package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.check.TlbChecker;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.table.Leaf;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.GupResult;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.HostPte;
import dev.ptlab.mm.MmException;
import dev.ptlab.mm.Mman;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * vCPU threads faulting through stage-2 while a host thread discards, write-protects, unmaps and
 * remaps, forks and ages the memory behind their memslot, with checking on. After every round,
 * with everyone stopped: every valid stage-2 leaf maps exactly the page the host page table maps
 * at that address (and is writable only if the host entry is), no TLB grants what the table
 * denies, refcounts are exact, no invalidation is left in progress; at the end every table frame
 * and host page is back.
 */
class VmHostStressTest {
    static final long K4 = 0x1000, M2 = 0x20_0000;
    static final long GPA = 0x4000_0000L, SIZE = 4 * M2;
    static final int RW = Mman.PROT_READ | Mman.PROT_WRITE;
    static final int ANON = Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS;
    static final int ROUNDS = Integer.getInteger("stress.rounds", 12), ACCESSES = 3000, HOST_OPS = 12;

    @ParameterizedTest
    @EnumSource(FaultLocking.class)
    void vcpusAndAHostThreadChangingTheBackingStayCoherent(FaultLocking locking) throws Exception {
        Host host = new Host(Granule.G4K, 64L << 20, 48, true);
        AddressSpace mm = host.newAddressSpace();
        long hva = mm.mmap(0, SIZE, RW, ANON);
        mm.madvise(hva, 2 * M2, Mman.MADV_HUGEPAGE); // half THP, half base pages
        Vm vm = new Vm(VmConfig.defaults().withChecking(true).withFaultLocking(locking));
        vm.addMemslot(GPA, SIZE, mm, hva, false);
        List<Vcpu> vcpus = List.of(vm.createVcpu(), vm.createVcpu());
        long pages = SIZE / K4;
        long efaults = 0, retries = 0;
        for (int round = 0; round < ROUNDS; round++) {
            AtomicReference<Throwable> failed = new AtomicReference<>();
            List<Thread> threads = new ArrayList<>();
            for (Vcpu v : vcpus) {
                long seed = round * 31L + v.id();
                threads.add(new Thread(() -> {
                    try {
                        SplittableRandom rnd = new SplittableRandom(seed);
                        for (int n = 0; n < ACCESSES; n++) {
                            long gpa = GPA + rnd.nextLong(pages) * K4 + (rnd.nextInt(512) << 3);
                            long r = v.access(gpa, rnd.nextInt(3) == 0 ? Access.WRITE : Access.READ);
                            assertThat(r).as("only EFAULT can exit from this slot").isGreaterThanOrEqualTo(Vcpu.EXIT_EFAULT)
                                    .isNotIn(Vcpu.EXIT_MMIO, Vcpu.EXIT_ADDRESS_SIZE);
                        }
                    } catch (Throwable t) {
                        failed.compareAndSet(null, t);
                    }
                }, "vcpu" + v.id()));
            }
            long hostSeed = round;
            threads.add(new Thread(() -> {
                try {
                    SplittableRandom rnd = new SplittableRandom(hostSeed);
                    for (int k = 0; k < HOST_OPS; k++) hostOp(mm, hva, rnd);
                } catch (Throwable t) {
                    failed.compareAndSet(null, t);
                }
            }, "host"));
            for (Thread t : threads) t.start();
            for (Thread t : threads) t.join(60_000);
            if (failed.get() != null) throw new AssertionError("round " + round + ": " + failed.get(), failed.get());

            assertThat(vm.mmuInvalidateInProgress()).isZero();
            checkCoherent(vm, mm, hva);
            for (Vcpu v : vcpus) {
                assertThat(TlbChecker.staleGrants(vm.table(), v.tlb(), vm.config().vmid())).as("round " + round).isEmpty();
                efaults += v.stats().efaultExits();
                retries += v.stats().seqRetries();
                v.stats().reset();
            }
            vm.table().checkRefcounts();
            host.checkInvariants(true);
        }
        assertThat(vm.tlbs().conflicts()).isZero();
        vm.destroy();
        mm.close();
        assertThat(vm.tableMemory().framesInUse()).isZero();
        assertThat(host.memory().pagesInUse()).isZero();
        assertThat(host.tableMemory().framesInUse()).isZero();
        // Not asserted (they depend on the interleaving), reported when the test is run by hand.
        System.out.println("stress (faults " + locking + "): " + efaults + " EFAULT exits, " + retries + " sequence retries over " + ROUNDS + " rounds");
    }

    /** One host-side change, leaving the area mapped read-write again afterwards. */
    private static void hostOp(AddressSpace mm, long hva, SplittableRandom rnd) {
        long first = rnd.nextLong(SIZE / K4);
        long len = Math.min(SIZE / K4 - first, 1 + rnd.nextLong(64)) * K4;
        long at = hva + first * K4;
        switch (rnd.nextInt(5)) {
            case 0:
                mm.madvise(at, len, Mman.MADV_DONTNEED);
                break;
            case 1:
                mm.mprotect(at, len, Mman.PROT_READ);
                Thread.yield();
                mm.mprotect(at, len, RW);
                break;
            case 2:
                mm.munmap(at, len);
                Thread.yield();
                mm.mmap(at, len, RW, ANON | Mman.MAP_FIXED);
                break;
            case 3:
                mm.fork().close();
                break;
            default:
                mm.age(at, len);
                break;
        }
    }

    /** Every valid stage-2 leaf maps what the host maps at the same offset, and is writable only if the host entry is. */
    private static void checkCoherent(Vm vm, AddressSpace mm, long hva) {
        Geometry g = vm.table().geometry();
        GupResult gup = new GupResult();
        for (long off = 0; off < SIZE; off += K4) {
            Leaf leaf = vm.table().getLeaf(GPA + off);
            if (!leaf.valid()) continue;
            long span = g.granule().levelSize(leaf.level());
            long s2pa = g.outputAddress(leaf.pte()) + ((GPA + off) & (span - 1));
            long hostPa;
            try {
                mm.getUserPage(hva + off, Mman.FOLL_NOFAULT, gup);
                hostPa = gup.pa;
                gup.folio.put();
            } catch (MmException e) {
                hostPa = -1;
            }
            assertThat(s2pa).as("stage-2 vs host page at offset 0x%x (stage-2 level %d)", off, leaf.level()).isEqualTo(hostPa);
            if (Stage2Descriptor.writable(leaf.pte())) {
                assertThat(HostPte.isWrite(mm.pte(hva + off))).as("writable in stage-2 at offset 0x%x", off).isTrue();
            }
        }
    }
}
