/**
 * jcstress tests of the single-entry break-before-make protocol under the Java memory model: an
 * entry going old → LOCKED → new as an MMU and a shared walker see it, and a split's new table
 * published with a store-release and read fully initialised. {@code BrokenTornEntryWriteVsMmu} is
 * deliberately broken (a descriptor written in two halves) and kept out of the build's run; it
 * shows the harness catches a torn write (docs/concurrency.md).
 */
package dev.ptlab.jcstress;
