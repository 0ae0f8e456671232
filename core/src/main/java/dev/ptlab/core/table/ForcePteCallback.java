package dev.ptlab.core.table;

import dev.ptlab.core.arch.Prot;

/**
 * Decides, per map call, that only page-sized leaves may be used (pKVM's host stage-2 keeps
 * blocks only for plain memory, because anything else is state a later block-sized map would
 * destroy).
 */
@FunctionalInterface
public interface ForcePteCallback {
    boolean forcePages(long addr, long end, Prot prot);
}
