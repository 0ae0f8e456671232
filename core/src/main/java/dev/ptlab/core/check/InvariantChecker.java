package dev.ptlab.core.check;

import dev.ptlab.core.InvariantViolation;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.PageTable;
import java.util.HashSet;
import java.util.Set;

/**
 * Whole-table invariants, checked at quiescent points (no walk in progress):
 * <ul>
 *   <li>every table frame reachable from the root is allocated (none freed or reused while
 *       still linked);</li>
 *   <li>no frame is linked from two places;</li>
 *   <li>every table frame's reference count is 1 (its allocation) + its counted entries (stage-2:
 *       non-zero and not LOCKED; hyp: valid).</li>
 * </ul>
 * Reads frames directly (it is part of core); not for use while other threads change the table.
 */
public final class InvariantChecker {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    private InvariantChecker() {}

    /** Checks {@code table}; throws {@link InvariantViolation} naming the frame on the first failure. */
    public static void check(PageTable table) {
        Geometry g = table.geometry();
        PhysicalMemory memory = table.memory();
        long page = g.granule().pageSize();
        Set<Long> seen = new HashSet<>();
        // Each concatenated root table covers a whole table's worth of start-level entries.
        long rootSpan = g.granule().entriesPerTable() * g.granule().levelSize(g.startLevel());
        for (int i = 0; i < g.rootPages(); i++) {
            checkFrame(table, memory, g, table.rootPa() + i * page, g.startLevel(), seen, -1, i * rootSpan);
        }
    }

    /**
     * @param parentEntryAddr input address of the entry linking this frame (-1 for a root)
     * @param base first input address the frame translates
     */
    private static void checkFrame(PageTable table, PhysicalMemory memory, Geometry g, long framePa, int level,
                                   Set<Long> seen, long parentEntryAddr, long base) {
        if (!memory.contains(framePa) || !memory.isLive(framePa)) {
            throw new InvariantViolation("table frame 0x" + Long.toHexString(framePa) + " (level " + level + ")"
                    + (parentEntryAddr >= 0 ? " linked for address 0x" + Long.toHexString(parentEntryAddr) : "")
                    + " is not an allocated frame");
        }
        if (!seen.add(framePa)) {
            throw new InvariantViolation("table frame 0x" + Long.toHexString(framePa) + " (level " + level
                    + ") is linked from more than one entry");
        }
        long[] f = FRAMES.frame(memory, framePa);
        int counted = 0;
        for (long pte : f) {
            if (table.isCounted(pte)) counted++;
        }
        int c = memory.count(framePa);
        if (c != 1 + counted) {
            throw new InvariantViolation("table frame 0x" + Long.toHexString(framePa) + " (level " + level + ") has refcount "
                    + c + " but " + counted + " counted entries (expected " + (1 + counted) + ")");
        }
        long span = g.granule().levelSize(level);
        for (int i = 0; i < f.length; i++) {
            long pte = f[i];
            if (Pte.isTable(pte, level)) {
                checkFrame(table, memory, g, g.outputAddress(pte), level + 1, seen, base + i * span, base + i * span);
            }
        }
    }
}
