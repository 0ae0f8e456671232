package dev.ptlab.sim;

import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.Arrays;

/**
 * Every non-zero leaf-level entry of a table (address, level, descriptor), to compare two states
 * of a table: "ADJUST restores what CREATE built".
 */
public final class TableSnapshot {
    private final long[] addrs;
    private final int[] levels;
    private final long[] ptes;
    private final int size;

    private TableSnapshot(long[] addrs, int[] levels, long[] ptes, int size) {
        this.addrs = addrs;
        this.levels = levels;
        this.ptes = ptes;
        this.size = size;
    }

    /** Takes the snapshot with one shared read-only walk over the whole input range. */
    public static TableSnapshot of(PageTable table) {
        long[][] a = {new long[1024]};
        int[][] l = {new int[1024]};
        long[][] p = {new long[1024]};
        int[] n = {0};
        table.walk(0, table.geometry().iaLimit(), (ctx, visit) -> {
            long pte = ctx.old();
            if (pte == 0) return Status.OK;
            int i = n[0]++;
            if (i == a[0].length) {
                a[0] = Arrays.copyOf(a[0], i * 2);
                l[0] = Arrays.copyOf(l[0], i * 2);
                p[0] = Arrays.copyOf(p[0], i * 2);
            }
            a[0][i] = ctx.entryBase();
            l[0][i] = ctx.level();
            p[0][i] = pte;
            return Status.OK;
        }, WalkFlags.LEAF | WalkFlags.SHARED, WalkPolicy.RANGE);
        return new TableSnapshot(a[0], l[0], p[0], n[0]);
    }

    public int entries() { return size; }

    /** Number of non-zero entries at {@code level}. */
    public int entriesAt(int level) {
        int c = 0;
        for (int i = 0; i < size; i++) if (levels[i] == level) c++;
        return c;
    }

    /** Null if equal, else the first difference in words. */
    public String differenceFrom(TableSnapshot o) {
        return differenceFrom(o, 0);
    }

    /** {@link #differenceFrom(TableSnapshot)} ignoring the descriptor bits in {@code ignored}. */
    public String differenceFrom(TableSnapshot o, long ignored) {
        int n = Math.min(size, o.size);
        for (int i = 0; i < n; i++) {
            if (addrs[i] != o.addrs[i] || levels[i] != o.levels[i] || ((ptes[i] ^ o.ptes[i]) & ~ignored) != 0) {
                return "at 0x" + Long.toHexString(Math.min(addrs[i], o.addrs[i])) + ": level " + levels[i] + " 0x" + Long.toHexString(ptes[i])
                        + " vs level " + o.levels[i] + " 0x" + Long.toHexString(o.ptes[i]);
            }
        }
        if (size != o.size) return size + " entries vs " + o.size;
        return null;
    }
}
