package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ptlab run} without FILE: the kvm_page_table_test simulation, its table, JSON and errors. */
class SimulationCommandTest {
    @TempDir
    Path dir;

    @Test
    void aSmallThpRunPrintsWhatTheSelftestPrintsThenOneRowPerPhaseAndTheChecks() {
        // The selftest's own command line: mode 6 (P40V48_4K), 64M of THP, one vCPU. Aligned 2M:
        // base = align_down(2^40 - 64M - 4K, 2M) = 0xfffbe00000; 32 blocks: create T1 + 31 x T2;
        // update 32 x P2 (each block broken for a page) + 32 x 256 T3; adjust 32 x T3 (coalesced).
        Cli.Result r = Cli.run("run", "-m", "6", "-b", "64M", "-s", "anonymous_thp", "-v", "1");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("memory 64M (anonymous_thp), 1 vCPU; host 4k pages, IPA limit 40 bits, guest granules 4k; faults shared",
                "Testing guest mode: PA-bits:40, VA-bits:48, 4K pages",
                "Testing memory backing src type: anonymous_thp",
                "Testing memory backing src granularity: 0x200000 (stage-2 maps it with 2M blocks)",
                "Testing memory size(aligned): 0x4000000", "Guest physical test memory offset: 0xfffbe00000",
                "Number of testing vCPUs: 1").doesNotContain("PA-bits:36", "log-harvest");
        assertThat(r.out()).containsPattern("(?m)^create +[0-9.]+ +32 +32 +0 ");
        assertThat(r.out()).containsPattern("(?m)^update +[0-9.]+ +8224 +8192 +32 ");
        assertThat(r.out()).containsPattern("(?m)^adjust +[0-9.]+ +32 +32 +0 ");
        assertThat(r.out()).contains("dirty log: 32 pages written in update, 32 logged (exact)",
                "adjust: the table equals the one create built", "table memory after destroy: 0 frames in use");
    }

    @Test
    void dashPPlacesTheRegion() {
        // -p 0x40000000 (2M-aligned): 16384 pages in 32 full 2M regions, all written in create.
        Cli.Result r = Cli.run("run", "-p", "0x40000000", "-m", "6", "-b", "64M", "-s", "anonymous");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("Guest physical test memory offset: 0x40000000", "Testing memory backing src granularity: 0x1000 "
                + "(stage-2 maps it with 4K pages)").containsPattern("(?m)^create +[0-9.]+ +16384 +16384 +0 ");
    }

    @Test
    void withoutDashMEveryModeOfTheHostRunsInTurn() {
        // The default host (40-bit IPA, 4K guest pages) supports P40V48_4K then P36V48_4K; 8M of
        // anonymous memory (2048 pages) at 2^36 - 8M - 4K = 0xfff7ff000 in the second.
        Cli.Result r = Cli.run("run", "-b", "8M", "--schedule", "serial", "-v", "2");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("memory 8M (anonymous), 2 vCPUs, schedule serial;");
        int p40 = r.out().indexOf("Testing guest mode: PA-bits:40, VA-bits:48, 4K pages");
        int p36 = r.out().indexOf("Testing guest mode: PA-bits:36, VA-bits:48, 4K pages");
        assertThat(p40).isNotNegative();
        assertThat(p36).isGreaterThan(p40);
        assertThat(r.out()).contains("Guest physical test memory offset: 0xfff7ff000", "Number of testing vCPUs: 2");
        // Two vCPUs serially: vCPU 1 finds every page mapped as it needs it; every page is written (by both).
        assertThat(r.out()).containsPattern("(?m)^update +[0-9.]+ +2048 +0 +2048 ");
        assertThat(r.out().split("dirty log: 2048 pages written in update, 2048 logged \\(exact\\)", -1)).hasSize(3);
        // More modes: a 48-bit host with 4K and 64K guest pages runs P48V48_4K, P48V48_64K, P40..., P36... (6).
        Cli.Result wide = Cli.run("run", "-b", "2M", "--host-ipa-limit", "48", "--host-granules", "4k,64k");
        assertThat(wide.exit()).as(wide.err()).isZero();
        assertThat(wide.out().split("Testing guest mode: ", -1)).hasSize(7);
        assertThat(wide.out()).contains("PA-bits:48, VA-bits:48, 64K pages");
    }

    @Test
    void jsonHasEveryPhaseWithFaultsByTypeAndLevel() throws Exception {
        Path json = dir.resolve("m.json");
        Cli.Result r = Cli.run("run", "-m", "6", "--memory", "16M", "--backing", "thp", "--vcpus", "2", "--schedule", "serial", "--granule", "4k", "--eager-split",
                "2M", "--coalesce", "legacy", "--fault-lock", "write", "--checking", "--json", json.toString());
        assertThat(r.exit()).as(r.err()).isZero();
        JsonNode root = new ObjectMapper().readTree(Files.readString(json));
        assertThat(root.path("config").path("faultLocking").asText()).isEqualTo("write");
        assertThat(root.path("config").path("coalesce").asText()).isEqualTo("unmap-first");
        assertThat(root.path("config").path("eagerSplitChunk").asLong()).isEqualTo(2 << 20);
        assertThat(root.path("phases")).hasSize(5);
        assertThat(root.path("guestModes")).hasSize(1);
        assertThat(root.path("guestModes").get(0).path("name").asText()).isEqualTo("P40V48_4K");
        assertThat(root.path("guestModes").get(0).path("gpa").asLong()).isEqualTo(0xff_fee0_0000L);
        JsonNode create = root.path("phases").get(0);
        assertThat(create.path("name").asText()).isEqualTo("create");
        // Serial: vCPU 0 writes the 8 blocks (T1 + 7 x T2), vCPU 1 then reads them mapped.
        assertThat(create.path("faults").path("translation").path("2").asLong()
                + create.path("faults").path("translation").path("1").asLong()).isEqualTo(8);
        assertThat(root.path("phases").get(1).path("splits").asLong()).isEqualTo(8);
        assertThat(root.path("dirtyLog").path("exact").asBoolean()).isTrue();
        assertThat(root.path("framesInUseAtEnd").asLong()).isZero();
    }

    @Test
    void theRandomWorkloadIsOnePhaseAndReproducibleWithOneVcpu() {
        String[] args = {"run", "--workload", "random", "--memory", "16M", "--vcpus", "1", "--accesses", "5000", "--seed", "7"};
        Cli.Result a = Cli.run(args);
        Cli.Result b = Cli.run(args);
        assertThat(a.exit()).as(a.err()).isZero();
        assertThat(a.out()).startsWith("ptlab run: random accesses on a simulated VM").contains("table at the end: ");
        java.util.function.Function<String, String> counts = out -> out.lines().filter(l -> l.startsWith("random "))
                .map(l -> l.replaceAll("^random +[0-9.]+", "").replaceAll(" +[0-9.-]+ +[0-9.-]+ +[0-9.-]+$", "")).findFirst().orElseThrow();
        assertThat(counts.apply(a.out())).isEqualTo(counts.apply(b.out()));
        Cli.Result bad = Cli.run("run", "--workload", "sequential");
        assertThat(bad.exit()).isEqualTo(2);
        assertThat(bad.err()).isEqualTo("ptlab run: --workload: sequential is not one of selftest, random, device-atomics"
                + System.lineSeparator());
    }

    @Test
    void processHostMemoryReportsTheHostSideAndFixedHostMemoryDoesNot() throws Exception {
        Path json = dir.resolve("h.json");
        Cli.Result p = Cli.run("run", "--memory", "16M", "--backing", "thp", "--vcpus", "1", "--json", json.toString());
        assertThat(p.exit()).as(p.err()).isZero();
        assertThat(p.out()).contains("host memory process", "host side (non-zero counts):",
                "host after the process exited: 0 pages and 0 page-table frames in use");
        assertThat(p.out()).as("8 guest blocks, 8 host THPs").containsPattern("(?m)^  create +.*host-thp-page 8\\b");
        JsonNode root = new ObjectMapper().readTree(Files.readString(json));
        assertThat(root.path("config").path("hostMemory").asText()).isEqualTo("process");
        assertThat(root.path("phases").get(0).path("host-thp-page").asLong()).isEqualTo(8);
        assertThat(root.path("phases").get(0).path("seqRetries").asLong()).isZero();
        assertThat(root.path("hostPagesInUseAtEnd").asLong()).isZero();

        Cli.Result f = Cli.run("run", "--memory", "16M", "--backing", "thp", "--vcpus", "1", "--host-memory", "fixed");
        assertThat(f.exit()).as(f.err()).isZero();
        assertThat(f.out()).contains("host memory fixed").doesNotContain("host side", "host after");
        assertThat(f.out()).containsPattern("(?m)^create +[0-9.]+ +8 +8 +0 ");
        assertThat(p.out()).containsPattern("(?m)^create +[0-9.]+ +8 +8 +0 ");
    }

    @Test
    void impossibleConfigurationsGetOneLineAndExitCode2() {
        String[][] cases = {
            {"--memory", "64G", "-m", "12"}, {"--ipa-bits", "32"}, {"--granule", "8k"},
            {"--eager-split", "3M"}, {"--coalesce", "sideways"}, {"--fault-lock", "none"}, {"--memory", "lots"},
            {"--vcpus", "0"}, {"--backing", "zram"}, {"--host-memory", "swap"}, {"-m", "0"}, {"-m", "9"}, {"--host-granules", "8k"},
            {"-s", "anonymous_hugetlb_512mb"}, {"-p", "0xffffff0000", "-b", "1G"}, {"--schedule", "random"},
            {"--workload", "random", "--partition"}, {"--workload", "random", "-m", "6"}, {"--host-ipa-limit", "33"}};
        String[] expected = {"memory: 64G does not fit below the top of the 36-bit IPA space", "--ipa-bits: the selftest takes",
            "granule", "--eager-split: 0x300000 is not 0 or a block size", "--coalesce: sideways", "--fault-lock: none", "--memory \"lots\"", "vcpus: 0",
            "backing: zram", "--host-memory: swap is not one of process, fixed",
            "-m: guest mode ID 0 (P52V48_4K, PA-bits:52, VA-bits:48, 4K pages) is not supported by the host (--host-ipa-limit 40",
            "-m: guest mode ID 9 is not an arm64 mode", "--host-granules: 8k", "not a hugetlb size of a 4k-page arm64 host",
            "-p: 0xffffff0000 puts the 1G region beyond the 40-bit IPA space", "schedule: random", "--partition applies to the selftest",
            "-m applies to the selftest", "--host-ipa-limit: no arm64 guest mode"};
        for (int i = 0; i < cases.length; i++) {
            String[] args = new String[cases[i].length + 1];
            args[0] = "run";
            System.arraycopy(cases[i], 0, args, 1, cases[i].length);
            Cli.Result r = Cli.run(args);
            assertThat(r.exit()).as(String.join(" ", args)).isEqualTo(2);
            assertThat(r.err()).as(String.join(" ", args)).startsWith("ptlab run: ").contains(expected[i]);
            assertThat(r.err().strip().lines().count()).as(String.join(" ", args)).isEqualTo(1);
        }
        Cli.Result r = Cli.run("run", "some.scenario", "--memory", "2G");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).contains("--memory applies to the simulation, not to scenario files");
    }

    @Test
    void deviceAtomicsReportsTheSharingAndTheSumCheck() throws Exception {
        Path json = dir.resolve("d.json");
        Cli.Result r = Cli.run("run", "--workload", "device-atomics", "--memory", "8M", "--vcpus", "2", "--devices", "2", "--accesses",
                "5000", "--hot", "0.01", "--checking", "--json", json.toString());
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).startsWith("ptlab run: device atomics on a simulated VM").containsPattern("(?m)^device-atomics +[0-9.]+ ")
                .containsPattern("devices: 2, 10000 atomic adds in [0-9.]+ s; [0-9]+ device faults, [1-9][0-9]* conversions")
                .containsPattern("(?m)^  device0 +atomic-fault [0-9]+, conversion [0-9]+")
                .containsPattern("sharing: [1-9][0-9]* pages made device-exclusive, [1-9][0-9]* restored \\([0-9]+ by guest faults, "
                        + "[0-9]+ by device conversions\\), [1-9][0-9]* stage-2 leaves unmapped by notifiers")
                // conversions send EXCLUSIVE, restores CLEAR (6.15+); events print in enum order
                .containsPattern("notifier events: clear [1-9][0-9]*, exclusive [1-9][0-9]*")
                .containsPattern("memory: sum [0-9]+ = [0-9]+ guest writes \\+ 10000 device adds \\(coherent\\)")
                .contains("host after the process exited: 0 pages and 0 page-table frames in use");
        JsonNode root = new ObjectMapper().readTree(Files.readString(json));
        assertThat(root.path("workload").asText()).isEqualTo("device-atomics");
        JsonNode d = root.path("deviceAtomics");
        assertThat(d.path("coherent").asBoolean()).isTrue();
        assertThat(d.path("memorySum").asLong()).isEqualTo(d.path("guestWrites").asLong() + d.path("deviceAdds").asLong());
        assertThat(d.path("deviceAdds").asLong()).isEqualTo(10_000);
        assertThat(d.path("devices").size()).isEqualTo(2);
        assertThat(d.path("devices").path("device1").path("atomic-add").asLong()).isEqualTo(5000);
        assertThat(d.path("deviceInvalidations").path("exclusive").asLong()).isPositive();
        assertThat(root.path("phases").get(0).path("host-exclusive-conversion").asLong()).isPositive();

        String[][] bad = {{"--devices", "17"}, {"--host-memory", "fixed"}, {"--backing", "hugetlb", "--memory", "1G", "--vcpus", "1"}};
        String[] expected = {"ptlab run: --devices: 17 is outside 0..16", "ptlab run: --host-memory: fixed has no host process",
            "ptlab run: --backing: hugetlb pages cannot be made device-exclusive"};
        for (int i = 0; i < bad.length; i++) {
            String[] args = new String[bad[i].length + 3];
            args[0] = "run";
            args[1] = "--workload";
            args[2] = "device-atomics";
            System.arraycopy(bad[i], 0, args, 3, bad[i].length);
            Cli.Result e = Cli.run(args);
            assertThat(e.exit()).as(String.join(" ", args)).isEqualTo(2);
            assertThat(e.err()).startsWith(expected[i]);
            assertThat(e.err().strip().lines().count()).isEqualTo(1);
        }
    }
}
