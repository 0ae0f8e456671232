package dev.ptlab.cli.scenario;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;

/** How many table frames a stage-2 operation can install: what the memory cache is topped up to. */
final class TableBound {
    private TableBound() {}

    /**
     * The most table frames mapping {@code [ipa, ipa + size)} to {@code pa} can install: at each
     * level, one table per entry the range touches that cannot hold a leaf. That is every entry
     * where IPA and PA are not congruent modulo the entry size; where they are, only the partial
     * entries at the two ends of each piece of the range still being split (at most two pieces).
     */
    static long map(Geometry g, long ipa, long size, long pa) {
        return bound(g, ipa, size, pa, false);
    }

    /** {@link #map} for an operation that writes page-sized entries only (set-owner). */
    static long pages(Geometry g, long ipa, long size) {
        return bound(g, ipa, size, ipa, true);
    }

    private static long bound(Geometry g, long ipa, long size, long pa, boolean pagesOnly) {
        long need = 0;
        long[] starts = {ipa};
        long[] ends = {ipa + size};
        int n = 1;
        for (int level = g.startLevel(); level < Granule.LAST_LEVEL; level++) {
            int shift = g.granule().levelShift(level);
            long span = 1L << shift;
            boolean fits = !pagesOnly && g.leafAllowed(level) && ((ipa ^ pa) & (span - 1)) == 0;
            long[] nextStarts = new long[2 * n];
            long[] nextEnds = new long[2 * n];
            int kept = 0;
            for (int i = 0; i < n; i++) {
                long s = starts[i], e = ends[i];
                long up = (s + span - 1) & -span;
                long down = e & -span;
                if (!fits || up >= down) {
                    // No entry of this piece holds a leaf: each one it touches gets a table.
                    need += ((e - 1) >>> shift) - (s >>> shift) + 1;
                    nextStarts[kept] = s;
                    nextEnds[kept++] = e;
                } else {
                    // Whole entries become blocks; only the partial head and tail entries need tables.
                    if (s < up) { need++; nextStarts[kept] = s; nextEnds[kept++] = up; }
                    if (down < e) { need++; nextStarts[kept] = down; nextEnds[kept++] = e; }
                }
            }
            starts = nextStarts;
            ends = nextEnds;
            n = kept;
        }
        return need;
    }
}
