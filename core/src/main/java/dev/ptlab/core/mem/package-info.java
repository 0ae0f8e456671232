/**
 * Simulated physical memory and what table frames need from it.
 *
 * <p>Owns: {@link dev.ptlab.core.mem.PhysicalMemory} (frames, reference counts, allocation),
 * {@link dev.ptlab.core.mem.MemCache} (pre-filled frames a walk allocates tables from),
 * {@link dev.ptlab.core.mem.Frames} (entry accesses, each named for the memory order it gives),
 * {@link dev.ptlab.core.mem.FrameAccess} (the core-only door to a frame's {@code long[]}),
 * {@link dev.ptlab.core.mem.Reclaimer} (grace periods for frames unlinked by shared walks) and
 * {@link dev.ptlab.core.mem.CacheMaintenance} with {@link dev.ptlab.core.mem.CacheMaintenanceBatch}
 * (the cache maintenance tables issue, counted; operations go through a batch).
 *
 * <p>Locks and order: {@code PhysicalMemory} allocation and freeing are synchronized; reference
 * counts are atomic read-modify-writes ({@code get}/{@code put}), with plain
 * {@code getExclusive}/{@code putExclusive} forms for callers holding the table's write lock.
 * {@code MemCache} and {@code CacheMaintenanceBatch} belong to one thread. The {@code Frames}
 * accessors give exactly the order in their names: opaque (exclusive walks), acquire/release
 * (shared and hardware walkers, publication), compare-and-exchange (shared updates).
 */
package dev.ptlab.core.mem;
