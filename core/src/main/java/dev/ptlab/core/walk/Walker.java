package dev.ptlab.core.walk;

import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.Frames;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.mem.Reclaimer;

/**
 * The one walker every table operation is built on.
 *
 * <p>Rules (SPEC.md, "Walker contract"):
 * <ul>
 *   <li>Invalid entries are leaves. LEAF visits leaves; TABLE_PRE and TABLE_POST visit table
 *       entries before and after their subtree.</li>
 *   <li>After a PRE or LEAF visit the entry is read again: a leaf the visitor turned into a table
 *       is descended into; a table it turned into a block is not (its old subtree is detached).</li>
 *   <li>The address advances only at leaves, to the end of the leaf's span. Descending does not
 *       move it.</li>
 *   <li>A POST visit sees the value observed before descending and the address at which the entry
 *       was first reached.</li>
 *   <li>The range is widened to whole pages at both ends: {@code [alignDown(addr), alignUp(addr +
 *       size))}. (The kernel aligns the end from the rounded-down start and can miss the last page of
 *       an unaligned range.)</li>
 *   <li>Each non-OK status goes through the walk's {@link WalkPolicy}; RETRY is bounded.</li>
 * </ul>
 *
 * <p>Allocation: one {@link VisitContext} per walk; nothing per visited entry.
 *
 * <p>Speed: a plain leaf visit is handled in the table loop itself; everything else goes
 * through {@link #visitEntry}. In exclusive walks a {@link LeafRunVisitor} gets whole runs of
 * leaves in one call (and may fill or clear them with {@link VisitContext#fillRun} /
 * {@link VisitContext#clearRun}), which is what makes stage-2 map and unmap of large ranges
 * cost about a nanosecond per page.
 */
public final class Walker {
    private static final FrameAccess FRAMES = FrameAccess.grant();
    private Walker() {}

    /**
     * Walks {@code walk}'s range of the table rooted at {@code rootPa} (the first of
     * {@code geometry.rootPages()} contiguous root frames). A {@link WalkFlags#SHARED} walk runs
     * inside a read section of the walk's reclaimer from its first read to its last (the kernel's
     * walk_begin/walk_end taking the RCU read lock), so a table another shared walker unlinks
     * stays readable until this walk is done with it.
     *
     * @return {@link Status#OK} if the walk covered the range, else the status that stopped it
     * @throws PageTableException ERANGE if the range leaves the input-address space; EINVAL if a
     *     SHARED walk has no reclaimer, the visitor is null or returns null, or the flags have a bit
     *     {@link WalkFlags} does not define
     */
    public static Status walk(Geometry geometry, PhysicalMemory memory, long rootPa, Walk walk, Visitor visitor) {
        final long addr = walk.addr();
        final long size = walk.size();
        final int flags = walk.flags();
        final WalkPolicy policy = walk.policy();
        final Reclaimer reclaimer = walk.reclaimer();
        Granule g = geometry.granule();
        checkVisitorAndFlags(visitor, flags);
        boolean shared = (flags & WalkFlags.SHARED) != 0;
        if (shared && reclaimer == null) {
            throw PageTableException.invalidArgument("reclaimer", "null", "is required for a SHARED walk");
        }
        if (size < 0) throw PageTableException.invalidArgument("size", size, "is negative");
        long limit = geometry.iaLimit();
        long last = addr + size;
        if (addr < 0 || addr >= limit || last < addr || last > limit) {
            throw new PageTableException(Errno.ERANGE, addr, PageTableException.NO_LEVEL,
                    "range [0x" + Long.toHexString(addr) + ", 0x" + Long.toHexString(last) + ") is outside the "
                            + geometry.iaBits() + "-bit input-address space (limit 0x" + Long.toHexString(limit) + ")");
        }
        if (size == 0) return Status.OK;
        long start = addr & ~g.pageMask();
        long end = (last + g.pageMask()) & ~g.pageMask();
        VisitContext c = new VisitContext(geometry, memory, flags, start, end, shared ? reclaimer : null);
        c.addr = start;
        c.active = true;
        try (Reclaimer.ReadSection section = shared ? reclaimer.enter() : null) {
            int level = geometry.startLevel();
            long pageSize = g.pageSize();
            while (c.addr < end) {
                int page = geometry.rootPageIndex(c.addr);
                Status s = walkTable(c, rootPa + page * pageSize, level, visitor, policy);
                if (s != null) return s;
            }
            return Status.OK;
        } finally {
            c.active = false;
        }
    }

    /**
     * Walks a detached subtree: the table at {@code tablePa} is a level-{@code level} table
     * covering {@code [base, base + levelSize(level - 1))}. Used to build (create-unlinked) and
     * tear down (free-unlinked, destroy) trees that no hardware walker can reach. Always
     * exclusive and with the {@link WalkPolicy#RANGE} policy: nothing else can reach the
     * subtree, so nothing races.
     */
    public static Status walkSubtree(Geometry geometry, PhysicalMemory memory, long tablePa, int level, long base,
                                     int flags, Visitor visitor) {
        final WalkPolicy policy = WalkPolicy.RANGE;
        Granule g = geometry.granule();
        Granule.checkLevel(level);
        if (level == Granule.FIRST_LEVEL) throw PageTableException.invalidArgument("level", level, "has no parent entry");
        long span = g.levelSize(level - 1);
        if ((base & (span - 1)) != 0) {
            throw PageTableException.invalidArgument("base", base, "is not aligned to the subtree span 0x" + Long.toHexString(span));
        }
        if ((flags & WalkFlags.SHARED) != 0) {
            throw PageTableException.invalidArgument("flags", WalkFlags.toString(flags), "has SHARED: a detached subtree is walked exclusively");
        }
        checkVisitorAndFlags(visitor, flags);
        VisitContext c = new VisitContext(geometry, memory, flags, base, base + span, null);
        c.addr = base;
        c.active = true;
        try {
            Status s = walkTable(c, tablePa, level, visitor, policy);
            return s == null ? Status.OK : s;
        } finally {
            c.active = false;
        }
    }

    /** EINVAL for a null visitor or a flag bit {@link WalkFlags} does not define. */
    private static void checkVisitorAndFlags(Visitor visitor, int flags) {
        if (visitor == null) throw PageTableException.invalidArgument("visitor", "null", "is required");
        WalkFlags.check(flags, WalkFlags.ALL, "a walk");
    }

    /**
     * A visit returned null instead of a status: the walk cannot tell what to do next, so it
     * stops here (EINVAL naming the visitor). Entries the visitor changed stay as it left them.
     */
    private static PageTableException nullStatus(Visitor visitor, VisitContext c) {
        return PageTableException.invalidArgument("visitor", visitor, "returned null instead of a Status at 0x"
                + Long.toHexString(c.addr) + " level " + c.level());
    }

    /**
     * Returns null to go on, or the status that stops the walk.
     *
     * <p>The loop handles the common case inline: an entry that is not a table, visited (or not)
     * as a leaf, whose visit returns OK and leaves a non-table behind. Everything else (tables,
     * non-OK statuses, a leaf turned into a table) goes through {@link #visitEntry}, which
     * carries on from the point the fast path reached, so both paths follow the same rules.
     * Before a plain leaf visit, a {@link LeafRunVisitor} is offered the run starting there.
     */
    private static Status walkTable(VisitContext c, long tablePa, int level, Visitor visitor, WalkPolicy policy) {
        long[] frame = FRAMES.frame(c.memory, tablePa);
        final boolean checking = c.checking;
        // Checking mode: the frame's generation now; every read below re-checks it (use after free or reuse).
        final int gen = c.generationOf(tablePa);
        final int shift = c.shifts[level + 1];
        final long span = 1L << shift;
        final int entries = frame.length;
        final long end = c.end;
        final int flags = c.flags;
        final boolean shared = c.shared;
        final boolean visitLeaves = (flags & WalkFlags.LEAF) != 0;
        // Runs of leaves go to the visitor in one call where it supports that (exclusive walks only).
        final LeafRunVisitor run = visitLeaves && !shared && visitor instanceof LeafRunVisitor
                ? (LeafRunVisitor) visitor : null;
        int idx = (int) ((c.addr >>> shift) & (entries - 1));
        c.enterTable(frame, gen, tablePa, level, span);
        while (idx < entries) {
            final long entryAddr = c.addr;
            if (entryAddr >= end) break;
            if (checking) c.checkFrame(tablePa, gen);
            long old = shared ? Frames.getAcquire(frame, idx) : Frames.getOpaque(frame, idx);
            if (!Pte.isTable(old, level)) {
                if (!visitLeaves) {
                    c.addr = (entryAddr & -span) + span;
                    idx++;
                    continue;
                }
                c.index = idx;
                c.old = old;
                if (run != null) {
                    c.beginRun();
                    try {
                        run.visitLeafRun(c);
                    } finally {
                        c.endRun();
                    }
                    if (c.index != idx) {
                        // Entries [idx, c.index) were visited; c.addr is where the next one starts.
                        idx = c.index;
                        continue;
                    }
                    // Nothing taken: the context still describes entry idx; visit it normally.
                }
                Status st = visitor.visit(c, Visit.LEAF);
                // Re-read: the visitor may have turned the leaf into a table (descend into it).
                old = shared ? Frames.getAcquire(frame, idx) : Frames.getOpaque(frame, idx);
                c.old = old;
                if (st == Status.OK && !Pte.isTable(old, level)) {
                    c.addr = (entryAddr & -span) + span;
                    idx++;
                    continue;
                }
                if (st == null) throw nullStatus(visitor, c);
                Status s = visitEntry(c, frame, gen, tablePa, idx, level, visitor, policy, entryAddr, st, old);
                if (s != null) return leaveTable(c, tablePa, gen, s);
            } else {
                Status s = visitEntry(c, frame, gen, tablePa, idx, level, visitor, policy, entryAddr, null, 0);
                if (s != null) return leaveTable(c, tablePa, gen, s);
            }
            // The slow path may have descended: point the context back at this table.
            c.enterTable(frame, gen, tablePa, level, span);
            idx++;
        }
        return leaveTable(c, tablePa, gen, null);
    }

    /**
     * Checking mode, when the walk leaves a table: the frame is still the live frame it entered.
     * Each read is checked before it is made, so this catches a free that came after the last
     * one (during the visit of the last entry, or the re-read after it), which the next read's
     * check would have caught had there been one.
     */
    private static Status leaveTable(VisitContext c, long tablePa, int gen, Status s) {
        if (c.checking) c.checkFrame(tablePa, gen);
        return s;
    }

    /**
     * One entry, general case. If {@code leafStatus} is non-null, the first LEAF visit already
     * happened in {@link #walkTable}: it returned {@code leafStatus} and the entry was re-read as
     * {@code leafAfter}.
     */
    private static Status visitEntry(VisitContext c, long[] frame, int gen, long tablePa, int idx, int level,
                                     Visitor visitor, WalkPolicy policy, long entryAddr, Status leafStatus, long leafAfter) {
        final int flags = c.flags;
        final boolean shared = c.shared;
        int retries = 0;
        for (;;) {
            long old;
            boolean table;
            Status st = Status.OK;
            boolean visited = false;
            if (leafStatus != null) {
                old = leafAfter;
                table = Pte.isTable(old, level);
                st = leafStatus;
                visited = true;
                leafStatus = null;
            } else {
                if (c.checking) c.checkFrame(tablePa, gen);
                old = shared ? Frames.getAcquire(frame, idx) : Frames.getOpaque(frame, idx);
                table = Pte.isTable(old, level);
                c.position(frame, gen, idx, tablePa, level, entryAddr, old);
                if (table) {
                    if ((flags & WalkFlags.TABLE_PRE) != 0) {
                        st = visitor.visit(c, Visit.TABLE_PRE);
                        visited = true;
                    }
                } else if ((flags & WalkFlags.LEAF) != 0) {
                    st = visitor.visit(c, Visit.LEAF);
                    visited = true;
                }
                if (visited) {
                    // Re-read: a visitor may have turned a leaf into a table (descend into it) or a
                    // table into a block (skip the detached subtree).
                    old = shared ? Frames.getAcquire(frame, idx) : Frames.getOpaque(frame, idx);
                    table = Pte.isTable(old, level);
                    c.old = old;
                }
            }
            if (visited && st != Status.OK) {
                WalkPolicy.Action a = afterVisit(policy, st, retries, visitor, c);
                if (a == WalkPolicy.Action.STOP) return st;
                if (a == WalkPolicy.Action.RETRY) {
                    retries++;
                    continue;
                }
            }
            if (!table) {
                long span = 1L << c.shifts[level + 1];
                c.addr = (entryAddr & -span) + span;
                return null;
            }
            Status s = walkTable(c, c.geometry.outputAddress(old), level + 1, visitor, policy);
            if (s != null) return s;
            if ((flags & WalkFlags.TABLE_POST) != 0) {
                long next = c.addr;
                c.position(frame, gen, idx, tablePa, level, entryAddr, old);
                st = visitor.visit(c, Visit.TABLE_POST);
                c.addr = next;
                if (st != Status.OK) {
                    WalkPolicy.Action a = afterVisit(policy, st, retries, visitor, c);
                    if (a == WalkPolicy.Action.STOP) return st;
                    if (a == WalkPolicy.Action.RETRY) {
                        retries++;
                        c.addr = entryAddr;
                        continue;
                    }
                }
            }
            return null;
        }
    }

    /**
     * The one place a visit's status meets the walk's policy: CONTINUE (go on with the next
     * entry), RETRY (visit the entry again; only while {@code retries} is below the policy's
     * budget) or STOP (the walk ends with the status). A RETRY past the budget becomes STOP, so
     * every walk terminates.
     */
    private static WalkPolicy.Action afterVisit(WalkPolicy policy, Status st, int retries, Visitor visitor, VisitContext c) {
        if (st == null) throw nullStatus(visitor, c);
        WalkPolicy.Action a = policy.actionFor(st);
        if (a == WalkPolicy.Action.RETRY && retries >= policy.maxRetries()) return WalkPolicy.Action.STOP;
        return a;
    }
}
