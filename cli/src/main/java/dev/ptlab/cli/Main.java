package dev.ptlab.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The {@code ptlab} command. Exit codes ({@link Failures}, the one place that maps failures to
 * them): 0 success, 1 an expectation or check failed, 2 bad input or a resource limit, 3 an
 * internal error.
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
        footer = {"", "Exit codes: 0 success, 1 an expectation or check failed, 2 bad input or a resource limit, 3 internal error "
                + "(please report; --debug prints the trace).",
            "Scenario language and examples: docs/scenario-language.md; every command: docs/cli.md."})
public final class Main implements Callable<Integer> {
    static final int EXIT_OK = Failures.OK;
    static final int EXIT_FAILED_EXPECTATIONS = Failures.FAILED;
    static final int EXIT_ERROR = Failures.BAD_INPUT;

    /** Read by {@link Failures#debug} from the arguments; declared so every command accepts it and its help lists it. */
    @Option(names = Failures.DEBUG, scope = CommandLine.ScopeType.INHERIT,
            description = "on an internal error (exit code 3), also print the Java stack trace")
    boolean debug;

    @Spec
    CommandSpec spec;

    /** Without a subcommand: print usage to stderr, usage error. */
    @Override
    public Integer call() {
        spec.commandLine().getErr().println("ptlab: COMMAND: missing; expected one of run, compare, translate, dump, export, bench, "
                + "help (try ptlab --help)");
        return EXIT_ERROR;
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs {@code ptlab args} writing to {@code out} and {@code err}; returns the exit code (0..3). */
    static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = commandLine();
        cl.setOut(out);
        cl.setErr(err);
        return Failures.execute(cl, args);
    }

    /**
     * The command tree: integers as scenarios write them (decimal or 0x hex, {@code _}
     * separators, what docs/cli.md promises), and no {@code --json} on compare (it writes no
     * metrics file; the option comes with the simulation options it shares with run).
     */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.registerConverter(Integer.class, v -> (int) integer(v, Integer.MIN_VALUE, Integer.MAX_VALUE));
        cl.registerConverter(int.class, v -> (int) integer(v, Integer.MIN_VALUE, Integer.MAX_VALUE));
        cl.registerConverter(Long.class, v -> integer(v, Long.MIN_VALUE, Long.MAX_VALUE));
        cl.registerConverter(long.class, v -> integer(v, Long.MIN_VALUE, Long.MAX_VALUE));
        CommandSpec compare = cl.getSubcommands().get("compare").getCommandSpec();
        compare.remove(compare.findOption("--json"));
        return cl;
    }

    /** An integer option's value: optional minus, then decimal or 0x hex with _ separators, within [min, max]. */
    static long integer(String text, long min, long max) {
        boolean negative = text.startsWith("-");
        long v;
        try {
            v = Numbers.parseNumber("value", negative ? text.substring(1) : text);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.TypeConversionException("\"" + text + "\" is not an integer; expected decimal digits or 0x "
                    + "followed by hex digits (_ separators allowed)");
        }
        if (negative) v = -v;
        if (v < min || v > max) {
            throw new CommandLine.TypeConversionException("\"" + text + "\" is outside " + min + ".." + max);
        }
        return v;
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
