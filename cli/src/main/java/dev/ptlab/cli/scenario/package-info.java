/**
 * The scenario language of {@code ptlab run/translate/dump/export FILE}: one class per command
 * ({@code *Line}, each a {@link dev.ptlab.cli.scenario.ScenarioCommand} with its keyword, grammar
 * line, parser, executor and error hints), registered once in
 * {@link dev.ptlab.cli.scenario.ScenarioCommands}; a generic parser
 * ({@link dev.ptlab.cli.scenario.ScenarioParser}: the whole file into
 * {@link dev.ptlab.cli.scenario.Step}s before anything runs) and a generic machine
 * ({@link dev.ptlab.cli.scenario.Machine}: the table, its memory, TLBs and cpu0 the steps share,
 * and library refusals turned into {@code file:line: ...; expected ...} messages).
 *
 * <p>Adding a command: a new {@code ScenarioCommand} class here, one entry in
 * {@code ScenarioCommands}, its rule in docs/scenario-language.md's grammar block (checked by
 * {@code ScenarioCommandsTest}) and its tests.
 *
 * <p>Threading: single-threaded. A parse and a machine belong to the thread that runs the
 * scenario; a {@code vm} scenario's vCPUs run their accesses on that thread too, one step at a
 * time, so no lock or memory order is assumed beyond program order. The registry is immutable
 * after class initialisation.
 */
package dev.ptlab.cli.scenario;
