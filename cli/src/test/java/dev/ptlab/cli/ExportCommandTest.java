package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ptlab export} and {@code ptlab translate --json}. */
class ExportCommandTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private String stage2Scenario() throws Exception {
        return Cli.scenario(dir, "guest.scen",
                "stage2 granule=4k ipa-bits=40 vmid=3",
                "map 0x40000000 1G 0x80000000 rw          # L1 block: entry 1 of root 0",
                "map 0x80000000 8K 0xc0001000 r           # two pages",
                "set-owner 0x90000000 4K 7",
                "mkold 0x80001000 4K");
    }

    private static long hex(JsonNode n) {
        assertThat(n.asText()).startsWith("0x");
        return Long.parseUnsignedLong(n.asText().substring(2), 16);
    }

    private static List<JsonNode> lines(String out) throws Exception {
        List<JsonNode> l = new ArrayList<>();
        for (String s : out.split("\n")) l.add(JSON.readTree(s));
        return l;
    }

    @Test
    void exportWritesTheImageAndTheRegisters() throws Exception {
        Path outDir = dir.resolve("out/nested");
        Cli.Result r = Cli.run("export", stage2Scenario(), "--base", "0x48000000", "--out", outDir.toString());
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.err()).isEmpty();
        // 2 concatenated roots + L2 (0x80000000 and 0x90000000 share it) + L3 (the pages) + L3 (the annotation) = 5 frames
        assertThat(r.out()).isEqualTo("export: stage-2 table (4k granule, 40-bit IPA, levels 1..3, PA48) as 5 frames (20K) at "
                + "[0x48000000, 0x48005000), PS 48 bits -> " + outDir.resolve("image.bin") + "\n"
                + "registers -> " + outDir.resolve("registers.json") + ": VTCR_EL2=0x800d3558, VTTBR_EL2=0x3000048000000, "
                + "HCR_EL2=0x80000001\n");
        byte[] image = Files.readAllBytes(outDir.resolve("image.bin"));
        assertThat(image).hasSize(5 * 4096);
        JsonNode regs = JSON.readTree(outDir.resolve("registers.json").toFile());
        assertThat(regs.get("kind").asText()).isEqualTo("stage2");
        assertThat(regs.get("granule").asText()).isEqualTo("4k");
        assertThat(regs.get("ia_bits").asInt()).isEqualTo(40);
        assertThat(regs.get("start_level").asInt()).isEqualTo(1);
        assertThat(regs.get("root_tables").asInt()).isEqualTo(2);
        assertThat(regs.get("oa_format").asText()).isEqualTo("PA48");
        assertThat(regs.get("pa_bits").asInt()).isEqualTo(48);
        assertThat(regs.get("image").asText()).isEqualTo("image.bin");
        assertThat(hex(regs.get("base"))).isEqualTo(0x4800_0000L);
        assertThat(hex(regs.get("size"))).isEqualTo(5 * 4096);
        assertThat(regs.get("frames").asInt()).isEqualTo(5);
        assertThat(regs.get("vmid").asInt()).isEqualTo(3);
        assertThat(regs.get("fwb").asBoolean()).isFalse();
        JsonNode r2 = regs.get("registers");
        assertThat(r2.fieldNames()).toIterable().containsExactly("VTCR_EL2", "VTTBR_EL2", "HCR_EL2");
        assertThat(hex(r2.get("VTTBR_EL2"))).isEqualTo(3L << 48 | 0x4800_0000L);
        assertThat(hex(r2.get("VTCR_EL2")) & 0x3F).as("T0SZ").isEqualTo(24);

        // The block descriptor in the image is the one translate --json reports for the same table.
        Cli.Result t = Cli.run("translate", "--json", stage2Scenario(), "0x40000000");
        long descriptor = hex(JSON.readTree(t.out()).get("descriptor"));
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b.getLong(8)).isEqualTo(descriptor);
        // Root 0's entry 2 is a table descriptor pointing into the image, right after the two roots.
        long table = b.getLong(16);
        assertThat(table & 3).isEqualTo(3);
        assertThat(table & 0xFFFF_FFFF_F000L).isEqualTo(0x4800_2000L);
    }

    @Test
    void exportHypTableWithAPaSize() throws Exception {
        String f = Cli.scenario(dir, "hyp.scen", "hyp granule=16k va-bits=36", "map 0x1000000 32M 0x80000000 rx   # not 32M-aligned: 2 L3 tables");
        Path outDir = dir.resolve("h");
        Cli.Result r = Cli.run("export", f, "--base", "0x40000000", "--out", outDir.toString(), "--pa-bits", "36");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).startsWith("export: hyp table (16k granule, 36-bit VA, levels 2..3, PA48) as 3 frames (48K) at "
                + "[0x40000000, 0x4000c000), PS 36 bits");
        JsonNode regs = JSON.readTree(outDir.resolve("registers.json").toFile());
        assertThat(regs.get("kind").asText()).isEqualTo("hyp");
        assertThat(regs.has("vmid")).isFalse();
        JsonNode r2 = regs.get("registers");
        assertThat(r2.fieldNames()).toIterable().containsExactly("MAIR_EL2", "TCR_EL2", "TTBR0_EL2");
        assertThat(hex(r2.get("TTBR0_EL2"))).isEqualTo(0x4000_0000L);
        assertThat((hex(r2.get("TCR_EL2")) >>> 16) & 7).as("PS = 36 bits").isEqualTo(1);
        assertThat(hex(r2.get("MAIR_EL2"))).isEqualTo(0x4_0044_F0FFL);
    }

    @Test
    void exportErrorsAreOneLineWithExitTwo() throws Exception {
        String f = stage2Scenario();
        String out = dir.resolve("x").toString();
        Cli.Result r = Cli.run("export", f, "--base", "0x48000800", "--out", out);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("ptlab export: --base: 0x48000800 is not a non-negative multiple of the 4k granule (EINVAL); "
                + "expected --base PA aligned to the granule (and to a concatenated root's size), with the image below 2^pa-bits\n");
        r = Cli.run("export", f, "--base", "0x48001000", "--out", out);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).startsWith("ptlab export: --base: 0x48001000 is not aligned to the 2 concatenated root tables (0x2000 bytes)")
                .hasLineCount(1);
        r = Cli.run("export", f, "--base", "0xfffffff000", "--out", out, "--pa-bits", "40");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).startsWith("ptlab export: --base: 0xfffffff000 is not aligned").hasLineCount(1);
        r = Cli.run("export", f, "--base", "0xffffffe000", "--out", out, "--pa-bits", "40");
        assertThat(r.err()).startsWith("ptlab export: --base: 0xffffffe000 + image size 0x5000 reaches past the 40-bit physical address space")
                .hasLineCount(1);
        r = Cli.run("export", f, "--base", "0x48000000", "--out", out, "--pa-bits", "36");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("ptlab export: --pa-bits: 36 is below the 40-bit IPA size (a stage-2 IPA cannot be larger than the PA"
                + " size) (EINVAL); expected --pa-bits 32, 36, 40, 42, 44 or 48 (not below a stage-2 table's IPA size), or 52 with"
                + " 52-bit descriptors\n");
        Path file = dir.resolve("plainfile");
        Files.writeString(file, "x");
        r = Cli.run("export", f, "--base", "0x48000000", "--out", file.toString());
        assertThat(r.exit()).isEqualTo(2);
        // Refused before the scenario runs.
        assertThat(r.err()).isEqualTo("ptlab export: --out: " + file + " is a file; expected a directory (created if missing)\n");
        r = Cli.run("export", f, "--base", "0x4800zz", "--out", out);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).startsWith("ptlab export: --base: \"0x4800zz\" is not a number").hasLineCount(1);
        r = Cli.run("export", f, "--out", out);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("ptlab export: --base: missing; it is required (try ptlab export --help)\n");
        String bad = Cli.scenario(dir, "bad.scen", "stage2", "map 0x1000 4K");
        r = Cli.run("export", bad, "--base", "0x48000000", "--out", out);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).startsWith(bad + ":2: map is missing PA and PROT").hasLineCount(1);
        assertThat(Files.exists(dir.resolve("x"))).as("nothing written on errors").isFalse();
    }

    @Test
    void translateJsonPrintsOneObjectPerAddress() throws Exception {
        Cli.Result r = Cli.run("translate", "--json", "--access", "write", stage2Scenario(),
                "0x40001234", "0x80000000", "0x80001000", "0x90000000", "0x10000000000");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).isEqualTo(""
                + "{\"address\":\"0x40001234\",\"access\":\"write\",\"pa\":\"0x80001234\",\"level\":1,\"size\":\"0x40000000\","
                + "\"descriptor\":\"0x400000800007fd\",\"readable\":true,\"writable\":true,\"executable\":false,\"memattr\":\"NORMAL_WB\"}\n"
                + "{\"address\":\"0x80000000\",\"access\":\"write\",\"fault\":\"permission\",\"level\":3}\n"
                + "{\"address\":\"0x80001000\",\"access\":\"write\",\"fault\":\"access-flag\",\"level\":3}\n"
                + "{\"address\":\"0x90000000\",\"access\":\"write\",\"fault\":\"translation\",\"level\":3}\n"
                + "{\"address\":\"0x10000000000\",\"access\":\"write\",\"fault\":\"translation\",\"level\":0}\n");
        for (JsonNode n : lines(r.out())) assertThat(n.get("access").asText()).isEqualTo("write");
        r = Cli.run("translate", "--json", "-a", "read", stage2Scenario(), "0x80000010");
        JsonNode n = JSON.readTree(r.out());
        assertThat(hex(n.get("pa"))).isEqualTo(0xc000_1010L);
        assertThat(n.get("level").asInt()).isEqualTo(3);
        assertThat(n.get("writable").asBoolean()).isFalse();
    }

    @Test
    void translateJsonWithASmallerPaSizeReportsAddressSizeFaults() throws Exception {
        String f = Cli.scenario(dir, "ps.scen",
                "stage2 granule=4k ipa-bits=32 mem-base=0x40000000 mem-size=16M   # tables below 4G",
                "map 0x1000 4K 0x100000000 rw",
                "map 0x2000 4K 0xfffff000 rw");
        Cli.Result r = Cli.run("translate", "--json", "--pa-bits", "32", f, "0x1000", "0x2000");
        assertThat(r.exit()).as(r.toString()).isZero();
        List<JsonNode> l = lines(r.out());
        assertThat(l.get(0).get("fault").asText()).isEqualTo("address-size");
        assertThat(l.get(0).get("level").asInt()).isEqualTo(3);
        assertThat(hex(l.get(1).get("pa"))).isEqualTo(0xffff_f000L);
        r = Cli.run("translate", "--json", f, "0x1000");
        assertThat(hex(JSON.readTree(r.out()).get("pa"))).as("PS 48 by default").isEqualTo(0x1_0000_0000L);
        r = Cli.run("translate", "--pa-bits", "52", f, "0x1000");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo("translate: pa-bits: 52 exceeds the 48-bit output format PA48 (52-bit physical addresses need"
                + " LPA2 or PA52_64K descriptors) (EINVAL); expected --pa-bits 32, 36, 40, 42, 44 or 48 (not below a stage-2"
                + " table's IPA size), or 52 with 52-bit descriptors\n");
        r = Cli.run("translate", "--pa-bits", "33", f, "0x1000");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).startsWith("translate: pa-bits: 33 is not one of 32, 36, 40, 42, 44, 48, 52 (EINVAL); expected --pa-bits")
                .hasLineCount(1);
    }

    @Test
    void translateWithAPaSizeChecksTheAddressesOfTheExportedLayout() throws Exception {
        // The example: tables at the default mem-base (2^36), PS 32. The image export
        // writes lies below 4G, and hardware (QEMU) walking it translates; so does ptlab now. The
        // old check of ptlab's own table addresses gave "address-size fault at level 2".
        String f = Cli.scenario(dir, "high.scen",
                "stage2 granule=4k ipa-bits=32",
                "map 0x40000000 4K 0x80000000 rw",
                "map 0x40001000 4K 0x100000000 rw    # OA at 2^32: a real address-size fault");
        Cli.Result r = Cli.run("translate", "--json", "--pa-bits", "32", f, "0x40000010", "0x40001000");
        assertThat(r.exit()).as(r.toString()).isZero();
        List<JsonNode> l = lines(r.out());
        assertThat(hex(l.get(0).get("pa"))).isEqualTo(0x8000_0010L);
        assertThat(l.get(1).get("fault").asText()).isEqualTo("address-size");
        assertThat(l.get(1).get("level").asInt()).as("the page's descriptor, at level 3").isEqualTo(3);
        r = Cli.run("translate", "--pa-bits", "36", stage2Scenario(), "0x1000");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).startsWith("translate: pa-bits: 36 is below the 40-bit IPA size").hasLineCount(1);
        r = Cli.run("translate", "--help");
        assertThat(r.out().replaceAll("\\s+", " ")).contains("the root (VTTBR/TTBR base) address, every next-table address and"
                + " every leaf output address at or above 2^N is an address-size fault").contains("as `export --pa-bits N` lays it out");
    }
}
