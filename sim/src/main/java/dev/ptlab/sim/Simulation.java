package dev.ptlab.sim;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs phases of guest work on a VM's vCPUs, one thread per vCPU (inline when there is one, so a
 * single-vCPU run is fully deterministic), and measures each phase the way the kernel selftest
 * does: wall time from releasing all vCPUs to the last one finishing.
 */
public final class Simulation {
    private Simulation() {}

    /** One vCPU's share of a phase. */
    @FunctionalInterface
    public interface VcpuWork {
        void run(Vcpu vcpu, int index);
    }

    /** Runs {@code work} on every vCPU of {@code vm} at once and reports the phase. */
    public static PhaseReport runPhase(Vm vm, String name, VcpuWork work) {
        return runPhase(vm, name, work, false);
    }

    /**
     * Runs {@code work} on every vCPU of {@code vm} and reports the phase: at once, one thread
     * per vCPU, or with {@code serial} one vCPU after another on the calling thread (vCPU 0's
     * whole share, then vCPU 1's, ...), so that every count of a multi-vCPU phase is exact.
     */
    public static PhaseReport runPhase(Vm vm, String name, VcpuWork work, boolean serial) {
        List<Vcpu> vcpus = vm.vcpus();
        for (Vcpu v : vcpus) v.stats.reset();
        vm.tableMemory().resetPeak();
        PhaseReport.Snapshot before = new PhaseReport.Snapshot(vm);
        long wall;
        if (vcpus.size() == 1 || serial) {
            long t0 = System.nanoTime();
            for (int i = 0; i < vcpus.size(); i++) work.run(vcpus.get(i), i);
            wall = System.nanoTime() - t0;
        } else {
            wall = runThreads(vcpus, name, work);
        }
        VcpuStats total = new VcpuStats();
        for (Vcpu v : vcpus) total.add(v.stats);
        return PhaseReport.of(name, wall, total, before, new PhaseReport.Snapshot(vm));
    }

    /** Runs a VMM-side operation (dirty logging on or off) as a phase of its own. */
    public static PhaseReport runHostOp(Vm vm, String name, Runnable op) {
        for (Vcpu v : vm.vcpus()) v.stats.reset();
        vm.tableMemory().resetPeak();
        PhaseReport.Snapshot before = new PhaseReport.Snapshot(vm);
        long t0 = System.nanoTime();
        op.run();
        long wall = System.nanoTime() - t0;
        return PhaseReport.of(name, wall, new VcpuStats(), before, new PhaseReport.Snapshot(vm));
    }

    private static long runThreads(List<Vcpu> vcpus, String name, VcpuWork work) {
        int n = vcpus.size();
        AtomicLong start = new AtomicLong();
        CyclicBarrier go = new CyclicBarrier(n, () -> start.set(System.nanoTime()));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int idx = i;
            Vcpu v = vcpus.get(i);
            Thread t = new Thread(() -> {
                try {
                    go.await();
                    work.run(v, idx);
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                    go.reset();
                }
            }, "vcpu" + v.id() + "-" + name);
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for phase " + name, e);
            }
        }
        long wall = System.nanoTime() - start.get();
        Throwable f = failure.get();
        if (f != null) throw new IllegalStateException("phase " + name + " failed: " + f, f);
        return wall;
    }
}
