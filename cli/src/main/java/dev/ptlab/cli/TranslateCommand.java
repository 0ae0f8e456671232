package dev.ptlab.cli;

import dev.ptlab.core.hw.Access;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code ptlab translate FILE ADDR...}: builds the scenario's table silently, then translates. */
@Command(name = "translate",
        header = "Build a scenario's table, then translate addresses through it.",
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "Runs the scenario FILE silently, then translates each ADDR through the table with the software MMU "
                + "and prints one line per address: the output address with the leaf's level, size, rights and "
                + "TLB hit/miss, or the fault type and level."},
        footer = {"", "Exit codes: 0 success (faults are results, not errors), 1 an expect line of FILE failed, "
                + "2 usage or scenario error."})
final class TranslateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    HelpOption help;

    @Parameters(index = "0", paramLabel = "FILE", description = "scenario file (- for standard input)")
    String file;

    @Parameters(index = "1..*", arity = "1..*", paramLabel = "ADDR", converter = AddressConverter.class,
            description = "input address (IPA or VA), decimal or 0x hex")
    List<Long> addresses;

    @Option(names = {"-a", "--access"}, paramLabel = "ACCESS", defaultValue = "read", converter = AccessConverter.class,
            description = "read, write or exec (default: ${DEFAULT-VALUE})")
    Access access;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        return ScenarioSource.runThen(file, null, out, spec.commandLine().getErr(), m -> {
            for (long a : addresses) out.println(m.describe(m.translate(a, access)));
        });
    }

    static final class AddressConverter implements CommandLine.ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            try {
                return Numbers.parseNumber("ADDR", value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    static final class AccessConverter implements CommandLine.ITypeConverter<Access> {
        @Override
        public Access convert(String value) {
            try {
                return Access.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException("\"" + value + "\" is not one of read, write, exec");
            }
        }
    }
}
