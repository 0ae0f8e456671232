/**
 * The one walker every table operation is built on, and what a visitor sees of it.
 *
 * <p>Owns: {@link dev.ptlab.core.walk.Walker} (the walk rules of SPEC.md's "Walker contract"),
 * {@link dev.ptlab.core.walk.Walk} (what one walk covers: range, flags, policy, reclaimer),
 * {@link dev.ptlab.core.walk.WalkPolicy} (what a non-OK visit status does, applied in one place),
 * {@link dev.ptlab.core.walk.VisitContext} (the only way a visitor reads or changes an entry) and
 * the visitor interfaces.
 *
 * <p>Locks: none are taken here. The caller holds the table's
 * {@link dev.ptlab.core.table.MmuLock} as the walk's flags require (read for
 * {@link dev.ptlab.core.walk.WalkFlags#SHARED}, write otherwise; {@code PageTable.walk} does
 * this), and a shared walk runs inside a read section of the walk's
 * {@link dev.ptlab.core.mem.Reclaimer}, which the walker opens itself.
 *
 * <p>Memory order of entry accesses through a {@link dev.ptlab.core.walk.VisitContext}:
 * <ul>
 *   <li>exclusive walks: opaque loads and stores (single-copy atomic, because hardware walkers
 *       may read the entry at any time; no other software walker can run);</li>
 *   <li>shared walks: acquire loads, compare-and-exchange for {@code trySet} (the winner owns the
 *       entry, a loser reports RACED);</li>
 *   <li>both: {@code publish} is a store-release, so a walker that sees a new table entry sees
 *       the table's contents (the make half of break-before-make).</li>
 * </ul>
 * Arguments: a null visitor, a flag bit {@link dev.ptlab.core.walk.WalkFlags} does not define,
 * and a visit that returns null instead of a status are argument errors (EINVAL naming "visitor"
 * or "flags"; the null status stops the walk where it happened, leaving entries as the visitor
 * left them). A null {@link dev.ptlab.core.walk.WalkPolicy} is the default for the flags.
 *
 * <p>In checking mode every read checks that its frame is live and not reused, and every store is
 * checked against the break-before-make rule.
 */
package dev.ptlab.core.walk;
