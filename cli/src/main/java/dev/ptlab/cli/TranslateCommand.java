package dev.ptlab.cli;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.image.TableImage;
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
                + "TLB hit/miss, or the fault type and level.",
            "With --pa-bits N the addresses are checked as hardware checks them (Arm ARM AArch64 walk): the root "
                + "(VTTBR/TTBR base) address, every next-table address and every leaf output address at or above 2^N is an "
                + "address-size fault (the root's at level 0, the others at the level of the descriptor holding them). The "
                + "addresses checked are those hardware sees: the table laid out as `export --pa-bits N` lays it out (its "
                + "frames compacted from physical address 0), not where the scenario's mem-base= put them. An exported image "
                + "always ends below 2^N, so only leaf output addresses can fault there, exactly as on hardware (or QEMU) "
                + "walking that image.",
            "With --json each line is one JSON object instead, for comparing results mechanically: "
                + "{\"address\",\"access\",\"pa\",\"level\",\"size\",\"descriptor\",\"readable\",\"writable\","
                + "\"executable\",\"memattr\"} for an output address, {\"address\",\"access\",\"fault\",\"level\"} for a "
                + "fault (translation, access-flag, permission or address-size). Addresses and descriptors are \"0x...\" strings."},
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

    @Option(names = "--json", description = "print one JSON object per address instead of a sentence")
    boolean json;

    @Option(names = "--pa-bits", paramLabel = "N",
            description = "physical-address size VTCR_EL2.PS / TCR_EL2.PS selects (32, 36, 40, 42, 44, 48, 52, not below a "
                    + "stage-2 table's IPA size; default: the descriptor format's): translates through the table as exported "
                    + "with the same --pa-bits, where root, table and leaf addresses at or above 2^N are address-size faults")
    Integer paBits;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        return ScenarioSource.runThen(file, null, out, err, m -> {
            Mmu mmu = null;
            if (paBits != null) {
                try {
                    // The exported layout at PA 0: where hardware would find the tables.
                    mmu = Mmu.overImage(TableImage.of(m.table(), 0, paBits), new Tlb("pa" + paBits, m.table().geometry().granule()));
                } catch (PageTableException e) {
                    throw new ScenarioSource.Refusal("translate: " + e.getMessage() + "; expected " + ("pa-bits".equals(e.argument())
                            ? "--pa-bits 32, 36, 40, 42, 44 or 48 (not below a stage-2 table's IPA size), or 52 with 52-bit descriptors"
                            : "a table whose exported image fits below 2^pa-bits"));
                }
            }
            for (long a : addresses) {
                Translation t = mmu == null ? m.translate(a, access) : mmu.translateDetailed(a, access);
                out.println(json ? json(m.table().geometry(), m.fwb(), t) : m.describe(t));
            }
        });
    }

    /** One translation as a one-line JSON object. */
    static String json(Geometry g, boolean fwb, Translation t) {
        Json j = new Json().hex("address", t.address()).put("access", t.access().label());
        if (t.isFault()) {
            return j.put("fault", t.fault().label()).put("level", t.level()).toString();
        }
        return j.hex("pa", t.pa()).put("level", t.level()).hex("size", g.granule().levelSize(t.level()))
                .hex("descriptor", t.pte()).put("readable", t.readable()).put("writable", t.writable())
                .put("executable", t.executable()).put("memattr", String.valueOf(t.memAttr())).toString();
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
