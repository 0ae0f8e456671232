package dev.ptlab.cli;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * The {@code ptlab} command. Exit codes: 0 success, 1 failed expectations, 2 usage or scenario
 * errors (and unexpected internal errors).
 */
@Command(name = "ptlab",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "ARMv8-A translation tables as a hypervisor (KVM/arm64) manages them: simulate a VM's parallel stage-2 "
                + "faults (the kernel's kvm_page_table_test) and compare policies; build a stage-2 or EL2 stage-1 table from a "
                + "scenario file, translate through it with a software MMU, dump it, export it as a memory image, time it.",
            ""},
        subcommands = {RunCommand.class, CompareCommand.class, TranslateCommand.class, DumpCommand.class, ExportCommand.class, BenchCommand.class,
            CommandLine.HelpCommand.class},
        footer = {"", "Exit codes: 0 success, 1 failed expectations, 2 usage or scenario errors.",
            "Scenario language and examples: docs/scenario-language.md; every command: docs/cli.md."})
public final class Main implements Callable<Integer> {
    static final int EXIT_OK = 0;
    static final int EXIT_FAILED_EXPECTATIONS = 1;
    static final int EXIT_ERROR = 2;

    @Spec
    CommandSpec spec;

    /** Without a subcommand: print usage to stderr, usage error. */
    @Override
    public Integer call() {
        spec.commandLine().getErr().println("ptlab: missing subcommand; expected one of run, compare, translate, dump, export, bench, help");
        spec.commandLine().usage(spec.commandLine().getErr());
        return EXIT_ERROR;
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Main()).execute(args));
    }

    /** Version from the build (a filtered resource), plus the JVM it runs on. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() throws IOException {
            Properties p = new Properties();
            try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
                if (in != null) p.load(in);
            }
            return new String[] {
                "ptlab " + p.getProperty("version", "(unknown version)"),
                "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vm.name") + ")"
            };
        }
    }
}
