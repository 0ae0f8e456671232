/**
 * The VM simulator: a {@link dev.ptlab.sim.Vm} (memslots, MMU lock, guest-abort handler, dirty
 * logging, the bridge from the host's MMU notifiers) whose {@link dev.ptlab.sim.Vcpu}s each have
 * their own MMU, TLB and memory cache; the workloads that drive it
 * ({@link dev.ptlab.sim.KvmPageTableSelftest}, {@link dev.ptlab.sim.RandomAccess},
 * {@link dev.ptlab.sim.DeviceAtomics}: options extending {@link dev.ptlab.sim.WorkloadOptions},
 * a result extending {@link dev.ptlab.sim.RunResult}); and what a run measures, per phase
 * ({@link dev.ptlab.sim.PhaseReport}), as counters that are data: each family an enum or registry
 * of {@link dev.ptlab.sim.PhaseCounter}s ({@link dev.ptlab.sim.VmCounter},
 * {@link dev.ptlab.sim.HostCounter}, {@link dev.ptlab.sim.VcpuCounter}).
 *
 * <p>Threads and ordering: a workload's {@code run} is called on one thread and returns when the
 * VM is destroyed; {@link dev.ptlab.sim.Simulation} runs each phase's work on one thread per vCPU
 * (inline with one vCPU) and joins them before it reads the counters, so a
 * {@link dev.ptlab.sim.PhaseReport} and a result are plain, immutable-once-returned data. A
 * {@link dev.ptlab.sim.Vcpu} and its {@link dev.ptlab.sim.VcpuStats} belong to the thread running
 * it; a {@code Vm}'s public methods take its MMU lock themselves (faults shared or exclusive as
 * {@link dev.ptlab.sim.FaultLocking} says, host operations and notifiers exclusive). Counters are
 * read between phases, when no vCPU runs; a {@link dev.ptlab.sim.Progress} may be read from any
 * thread at any time (volatile fields, approximate while a phase runs).
 */
package dev.ptlab.sim;
