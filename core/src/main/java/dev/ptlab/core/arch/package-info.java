/**
 * The architecture as data: granules, table geometry, descriptor formats (stage-2, EL2 stage-1,
 * format-independent {@link dev.ptlab.core.arch.Pte} facts, output-address formats), access
 * rights ({@link dev.ptlab.core.arch.Prot}), the break-before-make rule and the system-register
 * values that make hardware walk a table.
 *
 * <p>Pure functions and immutable values: no locks, no shared state, safe from any thread.
 */
package dev.ptlab.core.arch;
