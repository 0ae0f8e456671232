/**
 * Checkers for quiescent points: {@link dev.ptlab.core.check.InvariantChecker} (reachable frames
 * live and linked once, reference counts right) and {@link dev.ptlab.core.check.TlbChecker}
 * (no TLB entry grants what the table denies).
 *
 * <p>Locks: they read frames directly and assume nothing changes the table meanwhile: call them
 * with the table's MMU lock held for writing ({@code PageTable.checkRefcounts} does) or with no
 * operation in progress.
 */
package dev.ptlab.core.check;
