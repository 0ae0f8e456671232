/**
 * The hardware side: each CPU's {@link dev.ptlab.core.hw.Mmu} and {@link dev.ptlab.core.hw.Tlb},
 * and the {@link dev.ptlab.core.hw.TlbSystem} through which tables issue TLB maintenance
 * ({@link dev.ptlab.core.hw.TlbMaintenance}).
 *
 * <p>Locks and order: an MMU walk takes no lock and reads descriptors with acquire loads
 * (pairing with the tables' store-release publication); hardware AF updates are a
 * compare-and-swap that re-walks when it loses. Only the owning CPU looks up and fills its TLB;
 * any thread may invalidate. A broadcast invalidation returns only after every MMU walk in flight
 * when it began has finished (TLBI + DSB), so a table freed after its TLBI is never read by
 * hardware.
 */
package dev.ptlab.core.hw;
