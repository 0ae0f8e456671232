package dev.ptlab.core.walk;

/**
 * A {@link Visitor} that can also take a run of consecutive leaf entries of one table in a single
 * call. A walk over a large range then pays one call through the (usually megamorphic) visitor
 * interface per run instead of one per entry; nothing else about the walk changes.
 *
 * <p>The walker offers a run only in exclusive walks with {@link WalkFlags#LEAF}, at an entry it
 * has just read and found not to be a table: the context is positioned exactly as for a LEAF
 * visit of that entry. The visitor then handles entries one after the other, moving on with
 * {@link VisitContext#nextInRun()}, and returns when that reports no further leaf in range, or
 * earlier, leaving the context on the first entry it does not handle.
 *
 * <p>Contract: for every entry it handles, {@link #visitLeafRun} must do exactly what
 * {@link #visit visit(ctx, Visit.LEAF)} would do in a call that returns {@link Status#OK} and
 * leaves a non-table entry behind (in practice both call the same code). It must not touch an
 * entry it does not handle; the walker visits that entry normally, so a visitor may handle only
 * its simplest cases here, or none (returning at once).
 *
 * <p>During a run, {@link VisitContext#getRef()} and {@link VisitContext#putRef()} on the run's
 * table may be summed and applied in one update when the run returns (never letting the count
 * reach 0 in between, so no table is freed at a different point). {@link VisitContext#count}
 * and {@link VisitContext#put} apply them first; a visitor must not read reference counts
 * through {@link dev.ptlab.core.mem.PhysicalMemory} directly during a run.
 */
public interface LeafRunVisitor extends Visitor {
    void visitLeafRun(VisitContext ctx);
}
