package dev.ptlab.cli;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.image.TableImage;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code ptlab export FILE --base PA --out DIR}: builds the scenario's table silently, then writes
 * it as a memory image starting at PA ({@code DIR/image.bin}) and the register values that make
 * hardware walk it ({@code DIR/registers.json}).
 */
@Command(name = "export",
        header = "Build a scenario's table, then write it as a memory image hardware can walk.",
        exitCodeOnInvalidInput = Main.EXIT_ERROR,
        exitCodeOnExecutionException = Main.EXIT_ERROR,
        description = {
            "Runs the scenario FILE silently, then lays its table out as a raw little-endian memory image that starts "
                + "at physical address PA: the root table(s) first, then every other table frame, each table "
                + "descriptor rewritten to its table's address in the image. Writes DIR/image.bin and "
                + "DIR/registers.json (the system-register values: VTCR_EL2, VTTBR_EL2 and HCR_EL2 for stage-2; "
                + "MAIR_EL2, TCR_EL2 and TTBR0_EL2 for hyp; docs/cli.md lists every field). Load image.bin at PA, "
                + "write the registers, and hardware (or QEMU) translates through the table."},
        footer = {"", "Exit codes: 0 success, 1 an expect line of FILE failed (the image is still written), "
                + "2 usage or scenario error, a base the image cannot start at, or an unwritable DIR."})
final class ExportCommand implements Callable<Integer> {
    static final String IMAGE = "image.bin";
    static final String REGISTERS = "registers.json";

    @Spec
    CommandSpec spec;

    @Mixin
    HelpOption help;

    @Parameters(index = "0", paramLabel = "FILE", description = "scenario file (- for standard input)")
    String file;

    @Option(names = "--base", required = true, paramLabel = "PA", converter = TranslateCommand.AddressConverter.class,
            description = "physical address of the image's first byte (the root table): granule-aligned, and aligned to "
                    + "the root's size when the stage-2 root is concatenated")
    long base;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "directory to write image.bin and registers.json into (created if missing)")
    Path out;

    @Option(names = "--pa-bits", paramLabel = "N",
            description = "physical-address size to program in VTCR_EL2.PS / TCR_EL2.PS: 32, 36, 40, 42, 44 or 48 "
                    + "(at least the IPA size for stage-2), or 52 with 52-bit descriptors (default: the descriptor format's)")
    Integer paBits;

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        // Checked before the scenario runs: an empty --out would write into the current directory.
        if (out.toString().isEmpty()) throw new Failures.UserError("ptlab export: --out: is empty; expected a directory name");
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new Failures.UserError("ptlab export: --out: " + out + " is a file; expected a directory (created if missing)");
        }
        return ScenarioSource.runThen(file, null, stdout, err, m -> {
            TableImage image;
            try {
                image = paBits == null ? TableImage.of(m.table(), base) : TableImage.of(m.table(), base, paBits);
            } catch (PageTableException e) {
                throw new ScenarioSource.Refusal("ptlab export: " + ("pa-bits".equals(e.argument()) ? "--pa-bits" : "--base") + ": "
                        + e.getMessage().replaceFirst("^(base|pa-bits): ", "") + "; expected " + ("pa-bits".equals(e.argument())
                        ? "--pa-bits 32, 36, 40, 42, 44 or 48 (not below a stage-2 table's IPA size), or 52 with 52-bit descriptors"
                        : "--base PA aligned to the granule (and to a concatenated root's size), with the image below 2^pa-bits"));
            }
            try {
                Files.createDirectories(out);
                Path img = out.resolve(IMAGE);
                Path regs = out.resolve(REGISTERS);
                image.write(img);
                Files.writeString(regs, registersJson(image) + "\n", StandardCharsets.UTF_8);
                stdout.println("export: " + describe(image) + " -> " + img);
                stdout.println("registers -> " + regs + ": " + registersLine(image));
            } catch (IOException | SecurityException e) {
                throw new ScenarioSource.Refusal("ptlab export: --out: cannot write to " + out + " ("
                        + (e instanceof IOException ? Failures.plain((IOException) e) : "not allowed") + "); expected a writable directory");
            }
        });
    }

    static String describe(TableImage im) {
        Geometry g = im.geometry();
        return (im.stage2() ? "stage-2" : "hyp") + " table (" + g.granule().label() + " granule, " + g.iaBits() + "-bit "
                + (im.stage2() ? "IPA" : "VA") + ", levels " + g.startLevel() + "..3, " + g.oaFormat() + ") as "
                + im.frames() + (im.frames() == 1 ? " frame" : " frames") + " (" + Numbers.size(im.size()) + ") at ["
                + Numbers.hex(im.base()) + ", " + Numbers.hex(im.base() + im.size()) + "), PS " + im.paBits() + " bits";
    }

    static String registersLine(TableImage im) {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, Long> e : im.registers().entrySet()) {
            sb.append(sb.length() == 0 ? "" : ", ").append(e.getKey()).append('=').append(Numbers.hex(e.getValue()));
        }
        return sb.toString();
    }

    /** The registers.json document (docs/cli.md, "ptlab export", lists every field). */
    static String registersJson(TableImage im) {
        Geometry g = im.geometry();
        Json regs = new Json();
        for (Map.Entry<String, Long> e : im.registers().entrySet()) regs.hex(e.getKey(), e.getValue());
        Json j = new Json()
                .put("kind", im.stage2() ? "stage2" : "hyp")
                .put("granule", g.granule().label())
                .put("ia_bits", g.iaBits())
                .put("start_level", g.startLevel())
                .put("root_tables", g.rootPages())
                .put("oa_format", g.oaFormat().name())
                .put("pa_bits", im.paBits())
                .put("image", IMAGE)
                .hex("base", im.base())
                .hex("size", im.size())
                .put("frames", im.frames());
        if (im.stage2()) j.put("vmid", im.vmid()).put("fwb", im.fwb());
        return j.put("registers", regs).toString();
    }
}
