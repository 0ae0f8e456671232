package dev.ptlab.mm;

/**
 * The object behind a shared anonymous mapping (shmem): its pages by offset, so every address
 * space that maps it (parent and child after fork) finds the same folios. Its folios are not
 * anonymous. (Skeleton: issue 7 in progress.)
 */
public final class SharedMemory {
    SharedMemory() {}
}
