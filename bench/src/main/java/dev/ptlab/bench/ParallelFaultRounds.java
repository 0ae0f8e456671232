package dev.ptlab.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.concurrent.CyclicBarrier;

/**
 * A noise-resistant cross-check of {@link ParallelFaultBench} (not a replacement): the same
 * faults (same table, regions and checks) in many short rounds, 1-thread and 2-thread rounds
 * interleaved in one JVM. In a 2-thread round both threads start together at a barrier and the
 * round lasts until both have done their faults; throughput is all faults over that time.
 *
 * <p>Per configuration it prints the best and the median round's throughput at 1 and 2 threads
 * and their ratios, and the median CPU time per fault (each worker's thread CPU time over its
 * faults). On a machine shared with other work, wall-clock throughput also measures how often
 * the threads were descheduled; CPU time per fault does not, so "CPU ns per fault, 2 threads vs
 * 1" isolates what the two threads cost each other (contended cache lines, lock hand-offs):
 * equal CPU time per fault means the faults scale as far as the CPUs allow. The {@code control}
 * line runs a purely thread-local computation the same way, to show the scaling the machine
 * offers at that moment.
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar dev.ptlab.bench.ParallelFaultRounds [rounds
 * [faultsPerThread [kinds]]]} (default 40 rounds of 200000 faults per thread; kinds a
 * comma-separated subset of {@code control,distinct,block}).
 */
public final class ParallelFaultRounds {
    private ParallelFaultRounds() {}

    private static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 40;
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 200_000;
        String kinds = args.length > 2 ? args[2] : "control,distinct,block";
        for (String kind : kinds.split(",")) {
            if (!kind.equals("control") && !kind.equals("distinct") && !kind.equals("block")) {
                throw new IllegalArgumentException("kind: " + kind + " is none of control, distinct, block");
            }
            for (ParallelFaultBench.Protocol p : ParallelFaultBench.Protocol.values()) {
                Result r = run(kind, p, rounds, n);
                System.out.printf("%-8s %-10s 1T best %6.2f med %6.2f M/s | 2T best %6.2f med %6.2f M/s | 2T/1T x%.2f best x%.2f med"
                                + " | CPU ns/fault med 1T %6.1f 2T %6.1f%n",
                        kind, kind.equals("control") ? "-" : p, max(r.rate[0]) / 1e6, median(r.rate[0]) / 1e6,
                        max(r.rate[1]) / 1e6, median(r.rate[1]) / 1e6, max(r.rate[1]) / max(r.rate[0]),
                        median(r.rate[1]) / median(r.rate[0]), median(r.cpu[0]), median(r.cpu[1]));
                if (kind.equals("control")) break;
            }
        }
    }

    /** Per round, [0] one thread and [1] two threads: faults per second, CPU ns per fault. */
    static final class Result {
        final double[][] rate;
        final double[][] cpu;

        Result(int rounds) {
            rate = new double[2][rounds];
            cpu = new double[2][rounds];
        }
    }

    static Result run(String kind, ParallelFaultBench.Protocol p, int rounds, int n) throws Exception {
        ParallelFaultBench b = new ParallelFaultBench();
        b.protocol = p;
        b.trial();
        Result out = new Result(rounds);
        Worker[] w = new Worker[2];
        CyclicBarrier start = new CyclicBarrier(3);
        CyclicBarrier done = new CyclicBarrier(3);
        for (int t = 0; t < 2; t++) {
            w[t] = new Worker(b, kind, n, start, done);
            w[t].start();
        }
        for (int r = 0; r < 2 * rounds; r++) {
            int threads = 1 + (r & 1);
            w[0].active = true;
            w[1].active = threads == 2;
            start.await();
            done.await();
            // The workers' own clocks: the main thread may be descheduled around the barriers.
            long t0 = threads == 2 ? Math.min(w[0].t0, w[1].t0) : w[0].t0;
            long t1 = threads == 2 ? Math.max(w[0].t1, w[1].t1) : w[0].t1;
            out.rate[threads - 1][r / 2] = (double) threads * n / ((t1 - t0) / 1e9);
            long cpu = w[0].cpu + (threads == 2 ? w[1].cpu : 0);
            out.cpu[threads - 1][r / 2] = (double) cpu / ((long) threads * n);
        }
        for (Worker x : w) x.stop = true;
        start.await();
        for (Worker x : w) x.join();
        if (x(w[0]) || x(w[1])) throw new IllegalStateException("a worker failed", w[0].failure != null ? w[0].failure : w[1].failure);
        b.finish();
        return out;
    }

    private static boolean x(Worker w) {
        return w.failure != null;
    }

    /** One vCPU thread; its {@link ParallelFaultBench.Vcpu} is used by this thread only. */
    static final class Worker extends Thread {
        final ParallelFaultBench b;
        final String kind;
        final int n;
        final CyclicBarrier start;
        final CyclicBarrier done;
        volatile boolean active;
        volatile boolean stop;
        /** CPU time, start and end (nanoTime) of the last round (written before the done barrier). */
        long cpu, t0, t1;
        long sink;
        volatile Throwable failure;

        Worker(ParallelFaultBench b, String kind, int n, CyclicBarrier start, CyclicBarrier done) {
            this.b = b;
            this.kind = kind;
            this.n = n;
            this.start = start;
            this.done = done;
            setDaemon(true);
        }

        @Override
        public void run() {
            ParallelFaultBench.Vcpu v = new ParallelFaultBench.Vcpu();
            v.trial(b);
            try {
                for (;;) {
                    start.await();
                    if (stop) return;
                    if (active) {
                        long c0 = MX.getCurrentThreadCpuTime();
                        t0 = System.nanoTime();
                        switch (kind) {
                            case "distinct":
                                for (int i = 0; i < n; i++) b.distinct(v);
                                break;
                            case "block":
                                for (int i = 0; i < n; i++) b.block(v);
                                break;
                            default: {
                                // Thread-local work of roughly a fault's length.
                                long x = sink;
                                for (int i = 0; i < n * 64; i++) x = x * 6364136223846793005L + 1442695040888963407L;
                                sink = x;
                            }
                        }
                        t1 = System.nanoTime();
                        cpu = MX.getCurrentThreadCpuTime() - c0;
                    }
                    done.await();
                }
            } catch (Throwable e) {
                failure = e;
                start.reset();
                done.reset();
            }
        }
    }

    static double max(double[] a) {
        return Arrays.stream(a).max().orElse(0);
    }

    static double median(double[] a) {
        double[] s = a.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
