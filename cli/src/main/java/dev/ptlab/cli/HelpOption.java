package dev.ptlab.cli;

import picocli.CommandLine.Option;

/** {@code -h/--help} for subcommands (the version option lives on {@code ptlab} itself). */
final class HelpOption {
    @Option(names = {"-h", "--help"}, usageHelp = true, description = "Show this help message and exit.")
    boolean help;
}
