package dev.ptlab.mm;

import java.util.Arrays;

/**
 * The host's one swap device (type {@link HostPte#SWP_SWAPFILE}): slots holding a page's saved
 * contents and a use count, the number of swap entries naming the slot (the kernel's swap_map
 * count). A slot is freed when its count drops to zero.
 *
 * <p>Slot 0 is never handed out: {@code swapEntry(SWP_SWAPFILE, 0)} is the all-zero entry, which
 * means "none" (the kernel reserves slot 0 for the swap header for the same reason).
 *
 * <p>Thread-safe (every method synchronized): reclaim and swap-in run under the mmap read lock
 * of different address spaces at once.
 */
final class SwapSpace {
    private static final long[] ZERO_PAGE = new long[0];

    /** Contents by slot; {@link #ZERO_PAGE} for a page that was never written; null if free. */
    private long[][] contents = new long[64][];
    private int[] counts = new int[64];
    private int[] freeSlots = new int[16];
    private int freeTop;
    /** Next never-used slot. */
    private int bump = 1;
    private long inUse;

    /** Saves {@code words} (null for a page of zeros) in a new slot with count 1. */
    synchronized long allocate(long[] words) {
        int slot;
        if (freeTop > 0) {
            slot = freeSlots[--freeTop];
        } else {
            slot = bump++;
            if (slot == contents.length) {
                contents = Arrays.copyOf(contents, slot * 2);
                counts = Arrays.copyOf(counts, slot * 2);
            }
        }
        contents[slot] = words == null ? ZERO_PAGE : words;
        counts[slot] = 1;
        inUse++;
        return slot;
    }

    /** One more entry names {@code slot} (fork copying a swap entry). */
    synchronized void dup(long slot) {
        int s = live(slot);
        counts[s]++;
    }

    /** One entry naming {@code slot} is gone (swap-in or zap); the last one frees the slot. */
    synchronized void free(long slot) {
        int s = live(slot);
        if (--counts[s] == 0) {
            contents[s] = null;
            if (freeTop == freeSlots.length) freeSlots = Arrays.copyOf(freeSlots, freeTop * 2);
            freeSlots[freeTop++] = s;
            inUse--;
        }
    }

    /** A copy of the contents saved in {@code slot}, or null for a page of zeros. */
    synchronized long[] read(long slot) {
        long[] w = contents[live(slot)];
        return w == ZERO_PAGE ? null : w.clone();
    }

    /** The use count of {@code slot} (0 if free). */
    synchronized int count(long slot) {
        if (slot <= 0 || slot >= bump) return 0;
        return counts[(int) slot];
    }

    synchronized long slotsInUse() {
        return inUse;
    }

    /** Slots in use, each with its count, in slot order: {@code [slot0, count0, slot1, count1, ...]}. */
    synchronized long[] snapshot() {
        long[] out = new long[(int) inUse * 2];
        int k = 0;
        for (int s = 1; s < bump; s++) {
            if (contents[s] != null) {
                out[k++] = s;
                out[k++] = counts[s];
            }
        }
        return out;
    }

    private int live(long slot) {
        if (slot <= 0 || slot >= bump || contents[(int) slot] == null) {
            throw new IllegalStateException("swap slot " + slot + " is not in use");
        }
        return (int) slot;
    }
}
