/**
 * JMH benchmarks of the table library and the simulator, and {@link dev.ptlab.bench.DiffCheck},
 * the differential check that an optimisation changes no result. Never run by the test command;
 * bench/README.md says how to run each and what it measures. Benchmarks run with checking off
 * unless their name says otherwise, and build their fixtures outside the measured methods.
 */
package dev.ptlab.bench;
