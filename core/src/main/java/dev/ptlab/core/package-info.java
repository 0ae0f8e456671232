/**
 * The library's error vocabulary, shared by every package below it.
 *
 * <p>{@link dev.ptlab.core.PageTableException} is the one type for a real error of a table
 * operation or a refused argument: it names the address and level where it happened, carries the
 * errno KVM would have returned ({@link dev.ptlab.core.Errno}), and for an argument error the
 * argument's name ({@link dev.ptlab.core.PageTableException#argument()}), which callers branch on
 * instead of the message text. Lost races and missing entries are not errors: visitors report
 * them as {@link dev.ptlab.core.walk.Status} values. {@link dev.ptlab.core.InvariantViolation} is
 * what a checker throws when a rule of the architecture or of the refcount model is broken: a
 * bug, never an outcome a caller handles. Nothing here takes a lock.
 */
package dev.ptlab.core;
