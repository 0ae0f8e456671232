/**
 * The {@code ptlab} command (picocli): {@link dev.ptlab.cli.Main} and one class per subcommand
 * ({@code run}, {@code compare}, {@code translate}, {@code dump}, {@code export}, {@code bench}),
 * the simulation options and their output (text columns, {@code --json}, {@code compare}), and the
 * workloads {@code ptlab run --workload} chooses from ({@link dev.ptlab.cli.Workload#ALL}: one class
 * each). Scenario files live in {@code dev.ptlab.cli.scenario}.
 *
 * <p>Error rule: a user mistake (an option, a scenario line, a refused argument) is one line on
 * stderr naming the option or {@code file:line} and what was expected, exit code 2; failed
 * expectations exit 1. Library errors are told apart by type and
 * {@link dev.ptlab.core.PageTableException#argument()}, never by message text. Commands run on the
 * calling thread; only the simulation starts threads (one per vCPU or device).
 */
package dev.ptlab.cli;
