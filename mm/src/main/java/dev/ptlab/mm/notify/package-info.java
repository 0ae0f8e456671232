/**
 * MMU notifiers of one address space (the kernel's mmu_notifier and mmu_interval_notifier):
 * whole-space subscribers, as KVM registers one per VM, and interval subscriptions with the
 * read-begin / read-retry sequence, as device drivers use.
 *
 * <p>Contract: the address-space operations call {@code invalidateRangeStart} before changing any
 * entry of the range and {@code invalidateRangeEnd} after, holding the mmap lock (read or write)
 * but never the page-table lock, so callbacks may take their own locks and block. The interval
 * sequence is guarded by the hub's monitor; a subscriber's read side
 * ({@code readBegin}/{@code readRetry}) needs no lock and pairs with the invalidation through that
 * monitor, so a reader that saw an even sequence before resolving a page and the same value after
 * taking its own lock knows no invalidation overlapped.
 */
package dev.ptlab.mm.notify;
