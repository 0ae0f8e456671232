/**
 * Host memory: a host ({@link dev.ptlab.mm.Host}: data pages, table memory, swap) and its
 * address spaces ({@link dev.ptlab.mm.AddressSpace}: VMAs, an mmap lock, an arm64 process page
 * table built on ptlab's walker), folios with reference and map counts, COW, THP, hugetlb and
 * shared memory, GUP, reclaim to swap, MMU notifiers ({@code notify}) and device-exclusive
 * entries in the kernel's 6.15 design.
 */
package dev.ptlab.mm;
