package dev.ptlab.core.table;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;

/**
 * The greedy identity map behind {@link Stage2PageTable#idmapGreedy} (pKVM's host stage-2 fault
 * path; seeds/002, kvm-pgtable.md §9.4): identity-map the largest single leaf around an address
 * that stays inside a range and covers nothing "pinned".
 *
 * <h2>Pinned entries</h2>
 * An entry is pinned if the new leaf must not cover it:
 * <ul>
 *   <li>a valid leaf whose permissions, memory type or software bits ({@link #COMPAT_MASK}) differ
 *       from what {@code prot} produces: covering it would change the attributes of memory that
 *       someone mapped on purpose (for pKVM: a page shared with or lent to the hypervisor);</li>
 *   <li>any non-zero invalid entry: an annotation (owner id, a donated page), or a LOCKED marker
 *       (which an exclusive caller should never meet; it is not covered either).</li>
 * </ul>
 * Zero entries and compatible leaves may be covered: {@link Stage2PageTable#map} coalesces a table
 * of them into the new block (install first, then free the old subtree) and leaves an identical
 * leaf alone. (In an IDMAP table every valid leaf maps its own address, so matching attributes
 * means the covering leaf translates the same way.)
 *
 * <h2>Algorithm</h2>
 * <ol>
 *   <li><b>Clip.</b> Take the first level from the start level down, among the levels that may
 *       hold a leaf, whose aligned block around {@code addr} lies inside the range; if none does
 *       (the range holds less than the page around {@code addr}), the page (level 3), as
 *       Linux 7.1-rc4 does. Testing
 *       {@link Geometry#leafAllowed} at the level being chosen matters: pKVM's
 *       {@code host_stage2_adjust_range} had to be fixed (2025) to test block support of the
 *       current level rather than the next, or it could pick a span no leaf can hold (a 512G
 *       "block" at 4K level 0).</li>
 *   <li><b>Scan</b> that block with a LEAF walk. At the first pinned entry, stop the walk.</li>
 *   <li><b>Reduce.</b> Move to the first deeper leaf level whose aligned block around {@code addr}
 *       no longer overlaps the pinned entry's span, and scan again. The new block is inside the
 *       old one (aligned blocks nest), so it is still inside the range. If no level down to the
 *       page avoids the pinned entry, {@code addr}'s own page overlaps it: fail.</li>
 *   <li><b>Map</b> the block found with one {@code map(start, size, start, prot)}.</li>
 * </ol>
 * The result is maximal: being inside the range and being free of pins are both kept when going
 * to a smaller aligned block around {@code addr}, and a reduction skips only levels whose block
 * overlaps a pin it has seen, so the first level passing both tests is the one returned.
 *
 * <h2>Termination</h2>
 * Every reduction moves to a strictly deeper level ({@link #levelAvoiding} only looks below the
 * current one) and levels are bounded (start level .. 3), so there are at most
 * {@code geometry.levels()} scans: scan {@code k} (from 1) runs at a level of at least
 * {@code startLevel + k - 1} and no level is deeper than 3. (Tighter: only leaf levels are ever
 * scanned, so at most 3 scans with 4K and 2 with 16K or 64K.) Below the page there is no level left
 * and the operation fails instead of scanning again. The main loop is written as a {@code for}
 * bounded by that count; falling out of it would be a bug and says so. Each scan is a walk of a
 * finite range, and it only reads (the walker's own RETRY budget is unused: the scan stops at the
 * first pin). The kernel version (seeds/002) loops on {@code -EAGAIN} with the same argument made
 * in review: EAGAIN is only returned after a successful reduction, which cannot happen forever.
 *
 * <p>Concurrency: exclusive, like pKVM's host stage-2 under the host lock. Nothing may change the
 * table between the scans and the map.
 */
final class GreedyIdmap {
    private GreedyIdmap() {}

    /** Leaf bits that must match for an existing leaf to be covered (the kernel's KVM_PTE_LEAF_S2_COMPAT_MASK). */
    static final long COMPAT_MASK = Stage2Descriptor.PERMS | Stage2Descriptor.MEMATTR_MASK | Pte.SW_BITS;

    /**
     * Scan walks stop at the first pinned entry. The visitor reports it as RACED, the kernel's
     * {@code -EAGAIN}, which is exactly what seeds/002's visitor returns to abort the walk and
     * have it redone on the reduced range; with this policy the walker stops, and the loop in
     * {@link #plan} does the redoing.
     */
    private static final WalkPolicy SCAN = WalkPolicy.of(WalkPolicy.Action.STOP, WalkPolicy.Action.STOP, 0);

    private static final int NONE = Integer.MIN_VALUE;

    /**
     * What {@link #plan} decided: the block to map, its level, and how many scan walks it took
     * (at most {@code geometry.levels()}; tests check this bound on random inputs).
     */
    record Plan(AddressRange range, int level, int scans) {}

    /** {@link Stage2PageTable#idmapGreedy}. */
    static AddressRange map(Stage2PageTable table, long addr, Prot prot, AddressRange range, MemCache cache) {
        return run(table, addr, prot, range, cache).range();
    }

    /** Plans and maps; returns the plan (for tests that look at the scan count). */
    static Plan run(Stage2PageTable table, long addr, Prot prot, AddressRange range, MemCache cache) {
        Plan p = plan(table, addr, prot, range);
        AddressRange r = p.range();
        table.map(r.start(), r.size(), r.start(), prot, cache);
        return p;
    }

    /**
     * Finds the block to map without changing the table.
     *
     * @throws PageTableException EINVAL for bad arguments (not an IDMAP table, null or invalid
     *     prot, null range, addr outside range); ERANGE if range leaves the IPA space; EPERM if
     *     addr's own page overlaps a pinned entry
     */
    static Plan plan(Stage2PageTable table, long addr, Prot prot, AddressRange range) {
        table.checkLive();
        Geometry g = table.geometry();
        long attr = checkArguments(table, g, addr, prot, range);

        int level = initialLevel(g, addr, range);
        if (level == NONE) {
            // Linux 7.1-rc4's host_stage2_adjust_range takes the level-3 page around addr when no
            // larger block fits, even if the range does not hold that page whole (it replaced a
            // WARN and -EINVAL): the fault's own page is always mappable.
            level = Granule.LAST_LEVEL;
        }
        PinFinder finder = new PinFinder(attr & COMPAT_MASK);
        int maxScans = g.levels();
        for (int scan = 1; scan <= maxScans; scan++) {
            AddressRange block = blockAround(g, addr, level);
            if (!finder.scan(table, block)) {
                return new Plan(block, level, scan);
            }
            int deeper = levelAvoiding(g, addr, level, finder.pinStart, finder.pinEnd);
            if (deeper == NONE) {
                // EPERM, not EINVAL: the arguments are fine; addr's page belongs to someone else
                // (an annotation) or is mapped with other attributes on purpose. pKVM's
                // host_stage2_adjust_range returns -EPERM for the same situation and injects an
                // abort into the host. (The v3 patch in seeds/002 returned -EINVAL; we keep EINVAL
                // for argument errors, as everywhere else in ptlab.)
                throw new PageTableException(Errno.EPERM, finder.pinBase, finder.pinLevel,
                        "idmapGreedy: addr 0x" + Long.toHexString(addr) + " cannot be mapped: its page overlaps the pinned entry ["
                                + "0x" + Long.toHexString(finder.pinBase) + ", 0x" + Long.toHexString(finder.pinBase + finder.pinSpan)
                                + ") at level " + finder.pinLevel + ", " + describePin(finder.pinPte, attr));
            }
            level = deeper;
        }
        // Unreachable: each scan runs at a strictly deeper level than the previous one, so scan
        // number maxScans + 1 would need a level below 3 (see the class comment).
        throw new IllegalStateException("idmapGreedy: more than " + maxScans + " scans for addr 0x"
                + Long.toHexString(addr) + " in " + range + " (levels must strictly deepen; this is a bug)");
    }

    /** Validates the arguments; returns the leaf attributes for {@code prot}. */
    private static long checkArguments(Stage2PageTable table, Geometry g, long addr, Prot prot, AddressRange range) {
        if ((table.tableFlags() & Stage2PageTable.IDMAP) == 0) {
            throw new PageTableException(Errno.EINVAL, PageTableException.NO_ADDRESS, PageTableException.NO_LEVEL,
                    "idmapGreedy needs an identity-mapped table (flag IDMAP); this table's flags are 0x"
                            + Integer.toHexString(table.tableFlags()));
        }
        if (prot == null) throw PageTableException.invalidArgument("prot", "null", "is required");
        long attr = table.leafAttributes(prot); // EINVAL naming prot
        if (range == null) throw PageTableException.invalidArgument("range", "null", "is required");
        long limit = g.iaLimit();
        if (range.start() < 0 || range.end() > limit) {
            // ERANGE, as the walker and map report addresses outside the input-address space.
            throw new PageTableException(Errno.ERANGE, PageTableException.NO_ADDRESS, PageTableException.NO_LEVEL,
                    "range: " + range + " is outside the " + g.iaBits() + "-bit IPA space [0, 0x" + Long.toHexString(limit) + ")");
        }
        if (!range.contains(addr)) {
            throw PageTableException.invalidArgument("addr", addr, "is outside range " + range);
        }
        return attr;
    }

    /**
     * The first level, from the start level down, that may hold a leaf and whose aligned block
     * around {@code addr} lies inside {@code range}; {@link #NONE} if not even the page does.
     */
    static int initialLevel(Geometry g, long addr, AddressRange range) {
        for (int level = g.startLevel(); level <= Granule.LAST_LEVEL; level++) {
            if (!g.leafAllowed(level)) continue; // block support of *this* level (the 2025 fix)
            if (range.contains(blockAround(g, addr, level))) return level;
        }
        return NONE;
    }

    /**
     * The first leaf level strictly deeper than {@code level} whose aligned block around
     * {@code addr} does not overlap {@code [pinStart, pinEnd)}; {@link #NONE} if even the page
     * around {@code addr} overlaps it.
     */
    static int levelAvoiding(Geometry g, long addr, int level, long pinStart, long pinEnd) {
        for (int l = level + 1; l <= Granule.LAST_LEVEL; l++) {
            if (!g.leafAllowed(l)) continue;
            long size = g.granule().levelSize(l);
            long start = addr & -size;
            if (start + size <= pinStart || pinEnd <= start) return l;
        }
        return NONE;
    }

    /** The aligned block of {@code level}'s size that contains {@code addr}. */
    static AddressRange blockAround(Geometry g, long addr, int level) {
        long size = g.granule().levelSize(level);
        return AddressRange.ofSize(addr & -size, size);
    }

    private static String describePin(long pte, long attr) {
        if (Pte.isValid(pte)) {
            return "a valid leaf with other attributes (pte 0x" + Long.toHexString(pte) + ", compared bits 0x"
                    + Long.toHexString(pte & COMPAT_MASK) + ", wanted 0x" + Long.toHexString(attr & COMPAT_MASK) + ")";
        }
        if (Pte.isLocked(pte)) return "an entry LOCKED by another walker (pte 0x" + Long.toHexString(pte) + ")";
        return "an annotation (pte 0x" + Long.toHexString(pte) + ", owner " + Pte.owner(pte) + ")";
    }

    /** LEAF visitor of one scan: stops at the first pinned entry and remembers it. */
    private static final class PinFinder implements Visitor {
        private final long want;
        /** The pinned entry: base, span, level, value; and its span clipped to the scanned block. */
        long pinBase, pinSpan, pinPte, pinStart, pinEnd;
        int pinLevel;
        private boolean found;

        PinFinder(long want) {
            this.want = want;
        }

        /** Scans {@code block}; true if a pinned entry was found (its fields are then set). */
        boolean scan(Stage2PageTable table, AddressRange block) {
            found = false;
            Status s = table.walk(block.start(), block.size(), this, WalkFlags.LEAF, SCAN);
            if (found != (s == Status.RACED)) {
                throw new IllegalStateException("idmapGreedy scan of " + block + " ended with " + s
                        + (found ? " after finding a pin" : " without finding one"));
            }
            if (found) {
                pinStart = Math.max(pinBase, block.start());
                pinEnd = Math.min(pinBase + pinSpan, block.end());
            }
            return found;
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            long old = ctx.old();
            if (old == 0) return Status.OK;
            if (Pte.isValid(old) && (old & COMPAT_MASK) == want) return Status.OK;
            found = true;
            pinBase = ctx.entryBase();
            pinSpan = ctx.entrySpan();
            pinLevel = ctx.level();
            pinPte = old;
            return Status.RACED; // stops the walk (SCAN policy)
        }
    }
}
