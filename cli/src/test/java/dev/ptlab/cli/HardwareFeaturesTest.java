package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.sim.Vm;
import dev.ptlab.sim.VmConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The hardware features (FWB, range TLBI, hardware AF, XNX) from the command line, the
 * {@code vm} and {@code stage2} scenario lines and {@code compare --policy}, with what each
 * changes in the report.
 */
class HardwareFeaturesTest {
    @TempDir
    Path dir;

    /** The lines of {@code phase}'s block in compare's output (its first row to the next phase's). */
    private static String phaseBlock(String out, String phase) {
        int from = out.indexOf("\n" + phase + " ");
        assertThat(from).as("phase " + phase + " in\n" + out).isNotNegative();
        Matcher next = Pattern.compile("\n\\S").matcher(out);
        int to = next.find(from + 1) ? next.start() + 1 : out.length();
        return out.substring(from + 1, to);
    }

    /** Column {@code column} (1: first value) of {@code metric}'s row in {@code phase}'s block; 0 if the row is left out (all zero). */
    private static double value(String out, String phase, String metric, int column) {
        Matcher m = Pattern.compile("(?m)^(?:" + Pattern.quote(phase) + ")?\\s+" + Pattern.quote(metric) + "\\s+(\\S+)\\s+(\\S+)")
                .matcher(phaseBlock(out, phase));
        return m.find() ? Double.parseDouble(m.group(column)) : 0;
    }

    @Test
    void compareFwbShowsTheCacheMaintenancePerPhaseAndTheBreakWindowPart() {
        // 64 MiB of THP: 32 blocks, one vCPU.
        Cli.Result r = Cli.run("compare", "--policy", "fwb=on,off", "--backing", "thp", "--memory", "64M", "--vcpus", "1", "--no-warmup");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).startsWith("ptlab compare: fwb = on vs off");
        assertThat(r.out().lines().skip(1).findFirst().orElseThrow()).as("the varied feature is not in the description")
                .doesNotContain("fwb").contains("range-tlbi on");
        // create: 32 blocks into empty entries: 32 cleans of 2M = 64 MiB without FWB, none in a window.
        assertThat(value(r.out(), "create", "cmo ops", 1)).isZero();
        assertThat(value(r.out(), "create", "cmo ops", 2)).isEqualTo(32);
        assertThat(value(r.out(), "create", "cmo MiB", 2)).isEqualTo(64);
        assertThat(phaseBlock(r.out(), "create")).doesNotContain("cmo in bbm");
        // update: per block, the write maps page 0 under the split block and the 256 reads of the
        // second half map a page each: 32 x 257 = 8224 page cleans, all after a make.
        assertThat(value(r.out(), "update", "cmo ops", 2)).isEqualTo(32 * 257);
        assertThat(phaseBlock(r.out(), "update")).doesNotContain("cmo in bbm");
        // adjust: each L3 table is coalesced into its 2M block, cleaned between break and make:
        // 32 ops, 64 MiB, all of it inside the window; nothing with FWB.
        assertThat(value(r.out(), "adjust", "cmo ops", 2)).isEqualTo(32);
        assertThat(value(r.out(), "adjust", "cmo in bbm ops", 1)).isZero();
        assertThat(value(r.out(), "adjust", "cmo in bbm ops", 2)).isEqualTo(32);
        assertThat(value(r.out(), "adjust", "cmo in bbm MiB", 1)).isZero();
        assertThat(value(r.out(), "adjust", "cmo in bbm MiB", 2)).isEqualTo(64);
    }

    @Test
    void withoutRangeTlbiTheVmidWideTlbisTakeTheRangeOnesPlaces() throws Exception {
        JsonNode on = phases("--backing", "thp", "--memory", "8M", "--vcpus", "1");
        JsonNode off = phases("--backing", "thp", "--memory", "8M", "--vcpus", "1", "--range-tlbi=off");
        // log-enable: kvm_tlb_flush_vmid_range over the slot; adjust: one table break per block (4).
        assertThat(phase(on, "log-enable").path("tlbi-range").asLong()).isEqualTo(1);
        assertThat(phase(on, "log-enable").path("tlbi-vmid").asLong()).isZero();
        assertThat(phase(off, "log-enable").path("tlbi-range").asLong()).isZero();
        assertThat(phase(off, "log-enable").path("tlbi-vmid").asLong()).isEqualTo(1);
        assertThat(phase(on, "adjust").path("tlbi-range").asLong()).isEqualTo(4);
        assertThat(phase(off, "adjust").path("tlbi-range").asLong()).isZero();
        assertThat(phase(off, "adjust").path("tlbi-vmid").asLong()).isEqualTo(4);

        Cli.Result r = Cli.run("compare", "--policy", "range-tlbi=on,off", "--backing", "thp", "--memory", "8M", "--vcpus", "1",
                "--no-warmup");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(value(r.out(), "log-enable", "tlbi vmid", 2)).isEqualTo(1);
        assertThat(value(r.out(), "adjust", "tlbi range", 1)).isEqualTo(4);
        assertThat(value(r.out(), "adjust", "tlbi vmid", 2)).isEqualTo(4);
    }

    private JsonNode phases(String... args) throws Exception {
        Path json = dir.resolve("m" + args.length + ".json");
        String[] all = new String[args.length + 3];
        all[0] = "run";
        System.arraycopy(args, 0, all, 1, args.length);
        all[args.length + 1] = "--json";
        all[args.length + 2] = json.toString();
        Cli.Result r = Cli.run(all);
        assertThat(r.exit()).as(r.toString()).isZero();
        return new ObjectMapper().readTree(Files.readString(json));
    }

    private static JsonNode phase(JsonNode root, String name) {
        for (JsonNode p : root.path("phases")) if (p.path("name").asText().equals(name)) return p;
        throw new AssertionError("no phase " + name);
    }

    @Test
    void theOptionsReachTheVmAndItsTableAndDefaultToOn() throws Exception {
        SimulationOptions o = new SimulationOptions();
        new picocli.CommandLine(o).parseArgs();
        VmConfig d = o.config();
        assertThat(d.fwb() && d.rangeTlbi() && d.hardwareAf() && d.xnx()).as(d.toString()).isTrue();

        o = new SimulationOptions();
        new picocli.CommandLine(o).parseArgs("--fwb=off", "--range-tlbi", "off", "--hardware-af=off", "--xnx=off");
        VmConfig c = o.config();
        Vm vm = new Vm(c);
        assertThat(vm.table().tableFlags()).as("no FWB, no RANGE_TLBI, NO_XNX").isEqualTo(Stage2PageTable.NO_XNX);
        assertThat(c.hardwareAf()).isFalse();
        vm.destroy();
        assertThat(o.copy().config().tableFlags()).as("copied for compare").isEqualTo(Stage2PageTable.NO_XNX);

        o = new SimulationOptions();
        new picocli.CommandLine(o).parseArgs("--hardware-af", "--xnx");
        assertThat(o.config().hardwareAf()).as("bare option: on").isTrue();

        JsonNode cfg = phases("--memory", "4M", "--vcpus", "1", "--xnx=off", "--fwb=off").path("config");
        assertThat(cfg.path("xnx").asBoolean()).isFalse();
        assertThat(cfg.path("fwb").asBoolean()).isFalse();
        assertThat(cfg.path("rangeTlbi").asBoolean()).isTrue();
        assertThat(cfg.path("hardwareAf").asBoolean()).isTrue();

        Cli.Result bad = Cli.run("run", "--fwb=maybe");
        assertThat(bad.exit()).isEqualTo(2);
        assertThat(bad.err()).isEqualTo("ptlab run: --fwb: maybe is not on or off" + System.lineSeparator());
        bad = Cli.run("compare", "--policy", "xnx=on,maybe");
        assertThat(bad.exit()).isEqualTo(2);
        assertThat(bad.err()).startsWith("ptlab compare: --policy: xnx=maybe; expected on or off");
    }

    @Test
    void withoutFwbTheRunPrintsTheCacheMaintenanceTable() {
        Cli.Result r = Cli.run("run", "--fwb=off", "--backing", "thp", "--memory", "8M", "--vcpus", "1");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).contains("fwb off, range-tlbi on, hardware-af on, xnx on")
                .contains("cache maintenance (fwb off; in-bbm: issued while a valid entry was broken):");
        // adjust: 4 blocks coalesced, each 2M cleaned inside its window.
        assertThat(r.out()).containsPattern("(?m)^adjust\\s+4\\s+8\\.0\\s+0\\s+0\\.0\\s+4\\s+8\\.0$");
        assertThat(Cli.run("run", "--backing", "thp", "--memory", "8M", "--vcpus", "1").out())
                .as("with FWB nothing is cleaned: no table").doesNotContain("cache maintenance");
    }

    @Test
    void theVmAndStage2ScenarioLinesTakeTheFeatures() throws Exception {
        Cli.Result r = Cli.run("run", Cli.scenario(dir, "a.txt", "vm fwb=off range-tlbi=off hardware-af=off xnx=off"));
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).contains("eager split off; stage-2 table:").contains("vmid 1, no xnx;").doesNotContain("fwb")
                .doesNotContain("range-tlbi").doesNotContain("hardware AF");
        r = Cli.run("run", Cli.scenario(dir, "b.txt", "vm"));
        assertThat(r.out()).as("a vm line's defaults: every feature on")
                .contains("eager split off, hardware AF; stage-2 table:").contains("vmid 1, fwb, range-tlbi;");
        r = Cli.run("run", Cli.scenario(dir, "c.txt", "stage2 fwb=on range-tlbi xnx=off"));
        assertThat(r.out()).contains("vmid 1, fwb, range-tlbi, no xnx;");
        r = Cli.run("run", Cli.scenario(dir, "d.txt", "stage2"));
        assertThat(r.out()).as("a bare stage2 line: no FWB, no range TLBI, XNX").contains("vmid 1;");
        assertThat(Cli.scenarioError(dir, "vm xnx=maybe")).isEqualTo(":1: xnx=maybe is not on or off; expected xnx, xnx=on or xnx=off");
        assertThat(Cli.scenarioError(dir, "stage2 fwb=1")).isEqualTo(":1: fwb=1 is not on or off; expected fwb, fwb=on or fwb=off");
    }
}
