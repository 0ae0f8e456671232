package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ptlab.sim.PhaseCounter;
import dev.ptlab.sim.VmCounter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every counter shows where its registry entry says, and with the same value everywhere: in
 * every phase of the JSON by key, in a column of the text table or the non-zero list, and in a
 * row of {@code ptlab compare}. And every registered workload can be named, runs and reports.
 */
class SimulationOutputTest {
    @TempDir
    Path dir;

    private static Set<PhaseCounter> marked(java.util.function.Predicate<PhaseCounter> p) {
        return SimulationRun.ALL_COUNTERS.stream().filter(p).collect(Collectors.toSet());
    }

    @Test
    void theTableColumnsAndCompareRowsShowExactlyTheCountersMarkedForThem() {
        Set<PhaseCounter> inColumns = new HashSet<>();
        for (SimulationRun.Column c : SimulationRun.COLUMNS) inColumns.addAll(c.counters);
        for (SimulationRun.Column c : SimulationRun.CMO_COLUMNS) inColumns.addAll(c.counters);
        assertThat(inColumns).isEqualTo(marked(c -> c.text() == PhaseCounter.Text.COLUMN));
        Set<PhaseCounter> compared = new HashSet<>();
        for (CompareCommand.Metric m : CompareCommand.METRICS) compared.addAll(m.counters);
        assertThat(compared).isEqualTo(marked(PhaseCounter::compared));
        for (PhaseCounter c : SimulationRun.ALL_COUNTERS) {
            assertThat(c.text() == PhaseCounter.Text.JSON_ONLY || inColumns.contains(c) || c.text() == PhaseCounter.Text.NON_ZERO)
                    .as(c.key()).isTrue();
        }
    }

    @Test
    void everyCounterIsInTheJsonAndTheTextShowsTheSameValues() throws Exception {
        Path json = dir.resolve("m.json");
        // Without FWB, so the cache-maintenance table is printed too; one guest mode (-m 6).
        Cli.Result r = Cli.run("run", "-m", "6", "--memory", "16M", "--backing", "thp", "--vcpus", "1", "--fwb=off", "--json", json.toString());
        assertThat(r.exit()).as(r.err()).isZero();
        JsonNode root = new ObjectMapper().readTree(Files.readString(json));
        List<String> rows = r.out().lines().collect(Collectors.toList());
        int header = rows.indexOf(rows.stream().filter(l -> l.startsWith("phase ")).findFirst().orElseThrow());
        int cmoHeader = rows.indexOf(rows.stream().skip(header + 1).filter(l -> l.startsWith("phase ")).findFirst().orElseThrow());
        for (JsonNode phase : root.path("phases")) {
            String name = phase.path("name").asText();
            for (PhaseCounter c : SimulationRun.ALL_COUNTERS) assertThat(phase.has(c.key())).as(name + " " + c.key()).isTrue();
            // The table row: one whitespace-free cell per column.
            String[] cells = rows.stream().skip(header + 1).filter(l -> l.startsWith(name + " ")).findFirst().orElseThrow().trim()
                    .split(" +");
            assertThat(cells).hasSameSizeAs(SimulationRun.COLUMNS.toArray());
            for (int i = 0; i < cells.length; i++) {
                SimulationRun.Column col = SimulationRun.COLUMNS.get(i);
                if (col.counters.isEmpty()) continue;
                if (col.counters.contains(VmCounter.DCACHE_BYTES)) {
                    double mib = (phase.path("dcache-bytes").asLong() + phase.path("icache-bytes").asLong()) / 1048576.0;
                    assertThat(cells[i]).as(name + " " + col.header).isEqualTo(String.format(Locale.ROOT, "%.1f", mib));
                    continue;
                }
                List<String> values = new ArrayList<>();
                for (PhaseCounter c : col.counters) values.add(phase.path(c.key()).asText());
                assertThat(cells[i]).as(name + " " + col.header).isEqualTo(String.join("/", values));
            }
            // The cache-maintenance table: a row for each phase that issued any, MiB to one decimal.
            Optional<String> cmoRow = rows.stream().skip(cmoHeader + 1).filter(l -> l.startsWith(name + " ")).findFirst();
            boolean anyCmo = phase.path("dcache-ops").asLong() + phase.path("icache-ops").asLong() != 0;
            assertThat(cmoRow.isPresent()).as(name + " cache-maintenance row").isEqualTo(anyCmo);
            if (anyCmo) {
                String[] cmo = cmoRow.get().trim().split(" +");
                assertThat(cmo).hasSameSizeAs(SimulationRun.CMO_COLUMNS.toArray());
                for (int i = 1; i < cmo.length; i++) {
                    PhaseCounter c = SimulationRun.CMO_COLUMNS.get(i).counters.get(0);
                    long v = phase.path(c.key()).asLong();
                    assertThat(cmo[i]).as(name + " " + c.key())
                            .isEqualTo(c.key().endsWith("bytes") ? String.format(Locale.ROOT, "%.1f", v / 1048576.0) : Long.toString(v));
                }
            }
            // The non-zero list: exactly the NON_ZERO counters whose JSON value is not zero.
            Set<String> expected = new LinkedHashSet<>();
            for (PhaseCounter c : SimulationRun.ALL_COUNTERS) {
                long v = phase.path(c.key()).asLong();
                if (c.text() == PhaseCounter.Text.NON_ZERO && v != 0) expected.add(c.label() + " " + v);
            }
            String listed = r.out().lines().filter(l -> l.startsWith("  " + name + " ")).findFirst()
                    .map(l -> l.substring(2 + name.length()).trim()).orElse("");
            assertThat(listed.isEmpty() ? List.of() : List.of(listed.split(", "))).as(name).containsExactlyElementsOf(expected);
        }
        assertThat(root.path("phases").get(0).path("host-thp-page").asLong()).as("the host side is not all zero").isEqualTo(8);
    }

    @Test
    void compareShowsEachComparedCounterWithTheValueTheJsonHas() throws Exception {
        Path json = dir.resolve("c.json");
        // compare runs the selftest in its first guest mode only (P40V48_4K here), as -m 6 does.
        Cli.Result run = Cli.run("run", "-m", "6", "--memory", "8M", "--backing", "thp", "--vcpus", "1", "--eager-split", "2M", "--json",
                json.toString());
        assertThat(run.exit()).as(run.err()).isZero();
        JsonNode phases = new ObjectMapper().readTree(Files.readString(json)).path("phases");
        Cli.Result r = Cli.run("compare", "--policy", "eager-split=2M,2M", "--memory", "8M", "--backing", "thp", "--vcpus", "1", "--no-warmup");
        assertThat(r.exit()).as(r.err()).isZero();
        String phase = null;
        int checked = 0;
        for (String line : r.out().lines().skip(4).collect(Collectors.toList())) {
            if (!line.startsWith(" ")) phase = line.substring(0, 12).trim();
            String metric = line.substring(13, 35).trim();
            CompareCommand.Metric m = CompareCommand.METRICS.stream().filter(x -> x.name.equals(metric)).findFirst().orElseThrow();
            if (m.counters.size() != 1 || m.decimal) continue; // MiB rows: a conversion of the JSON's bytes
            String[] values = line.substring(35).trim().split(" +");
            long expected = findPhase(phases, phase).path(m.counters.get(0).key()).asLong();
            assertThat(Long.parseLong(values[0])).as(phase + " " + metric).isEqualTo(expected);
            checked++;
        }
        assertThat(checked).as("compare rows of single counters").isGreaterThan(5);
    }

    private static JsonNode findPhase(JsonNode phases, String name) {
        for (JsonNode p : phases) if (p.path("name").asText().equals(name)) return p;
        throw new AssertionError("no phase " + name);
    }

    @Test
    void everyRegisteredWorkloadIsNamedInTheHelpRunsAndReportsUnderItsName() throws Exception {
        String help = Cli.run("run", "--help").out().replaceAll("\\s+", " ");
        List<String> names = new ArrayList<>();
        for (Workload<?> w : Workload.ALL) {
            names.add(w.name);
            assertThat(help).as("--workload help").contains(w.name + " (");
            assertThat(Workload.named(w.name.toUpperCase(Locale.ROOT))).isSameAs(w);
            Path json = dir.resolve(w.name + ".json");
            // --accesses only where the workload reads it: elsewhere it is refused, not ignored.
            List<String> args = new ArrayList<>(List.of("run", "--workload", w.name, "--memory", "8M", "--vcpus", "1", "--json",
                    json.toString()));
            if (Workload.OWN_OPTIONS.get("--accesses").contains(w.name)) args.addAll(List.of("--accesses", "2000"));
            Cli.Result r = Cli.run(args.toArray(new String[0]));
            assertThat(r.exit()).as(w.name + ": " + r.err()).isZero();
            assertThat(r.out()).startsWith("ptlab run: " + w.title + " on a simulated VM");
            JsonNode root = new ObjectMapper().readTree(Files.readString(json));
            assertThat(root.path("workload").asText()).isEqualTo(w.jsonName());
            assertThat(root.path("phases").size()).isPositive();
        }
        Cli.Result bad = Cli.run("run", "--workload", "nonesuch");
        assertThat(bad.err()).isEqualTo("ptlab run: --workload: nonesuch is not one of " + String.join(", ", names) + System.lineSeparator());
    }

    @Test
    void theOptionNamesAndTheCopyComeFromPicoclisModel() {
        assertThat(SimulationOptions.names()).startsWith("--memory", "--vcpus").contains("--workload", "--devices", "--seed")
                .doesNotHaveDuplicates();
        SimulationOptions o = new SimulationOptions();
        picocli.CommandLine cl = new picocli.CommandLine(o);
        cl.parseArgs("--memory", "64M", "--coalesce", "legacy", "--checking", "--seed", "9", "--hot", "0.5", "--json", "x.json");
        SimulationOptions c = o.copy();
        assertThat(c).isNotSameAs(o);
        assertThat(c.memory).isEqualTo("64M");
        assertThat(c.coalesce).isEqualTo("legacy");
        assertThat(c.checking).isTrue();
        assertThat(c.seed).isEqualTo(9);
        assertThat(c.hot).isEqualTo(0.5);
        assertThat(c.json).isEqualTo(Path.of("x.json"));
        assertThat(c.vcpus).as("a default").isEqualTo(1);
        c.coalesce = "install-first";
        assertThat(o.coalesce).as("the copy is independent").isEqualTo("legacy");
    }
}
