package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.cli.scenario.Step;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunCommandTest {
    @TempDir
    Path dir;

    @Test
    void defaultScenarioPassesAndShowsTranslationsAndDump() {
        Cli.Result r = Cli.run("run", "--builtin-scenario");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.err()).isEmpty();
        assertThat(r.out())
                .contains("translate 0x40001234 read -> 0x80001234 (L1 1G block, rw, TLB miss)")
                .contains("translate 0x40001234 write -> 0x80001234 (L1 1G block, rw, TLB hit)")
                .contains("translate 0x80010000 read -> fault translation level 3")
                .contains("translate 0x80000000 exec -> fault permission level 3")
                .contains("unmap 0x80010000-0x80010fff (4K): removed 1 leaf, freed 0 tables; 1 TLBI")
                .contains("map 0x40000000-0x7fffffff (1G) -> 0x80000000 rw: 1 x 1G block")
                .contains("map 0x80000000-0x803fffff (4M) -> 0xc0001000 rw: 1024 x 4K pages")
                .contains("L1 root table 0x1000000000 (2 concatenated frames)")
                .containsPattern("0x40000000-0x7fffffff +1 x 1G block -> 0x80000000 rw\n")
                .containsPattern("0x80000000-0x8000ffff +16 x 4K pages -> 0xc0001000\\.\\. rw\n")
                .containsPattern("0x80011000-0x801fffff +495 x 4K pages -> 0xc0012000\\.\\. rw\n")
                .containsPattern("0x80400000-0x805fffff +1 x 2M block -> 0xd0000000 rx\n")
                .contains("wrprotect 0x40000000-0x7fffffff (1G): write permission removed from 1 leaf; 0 TLBIs (the caller's TLBI "
                        + "is separate: until \"tlbi\" a CPU may still write through its TLB)")
                .contains("expect 0x7fffffff write -> 0xbfffffff: ok")
                .contains("tlbi 0x40000000-0x7fffffff (1G): range TLBI of vmid 1 on every CPU")
                .contains("expect 0x40000000 write fault permission level 1: ok")
                .contains("relax 0x40000000 rw: OK, the L1 1G block 0x40000000-0x7fffffff, now rw; 1 local TLBI by IPA on cpu0")
                .contains("counters: TLBIs 3 (by IPA 1, local 1, range 1, VMID 0)\n")
                .doesNotContain("FAILED");
        String[] lines = r.out().split("\n");
        assertThat(lines[lines.length - 1])
                .isEqualTo("summary: 35 commands; expectations 16 passed, 0 failed; table frames 7 (28K); TLBIs 3 (1 by IPA, "
                        + "1 range, 1 local); BBMs 0; CMOs 1027 D-cache (1.01G), 1 I-cache (2M)");
    }

    @Test
    void failedExpectationReportsFileLineAndExitsOneButTheScenarioGoesOn() throws Exception {
        String f = Cli.scenario(dir, "expect.scen",
                "stage2 granule=4k ipa-bits=40",
                "map 0x40000000 2M 0x80000000 rw",
                "expect 0x40001000 -> 0x90001000        # wrong PA",
                "expect 0x40001000 write fault permission 2   # it is writable",
                "expect 0x40400000 -> 0x80400000        # not mapped at all",
                "expect 0x40001000 -> 0x80001000        # right");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).isEqualTo(
                f + ":3: expected 0x40001000 read -> 0x90001000, got 0x80001000\n"
                + f + ":4: expected 0x40001000 write fault permission level 2, got 0x80001000\n"
                + f + ":5: expected 0x40400000 read -> 0x80400000, got fault translation level 2\n");
        assertThat(r.out())
                .contains("expect 0x40001000 read -> 0x90001000: FAILED, got 0x80001000")
                .contains("expect 0x40001000 read -> 0x80001000: ok")
                .contains("expectations 1 passed, 3 failed");
    }

    @Test
    void quietPrintsOnlyTheSummary() {
        Cli.Result r = Cli.run("run", "--builtin-scenario", "--quiet");
        assertThat(r.exit()).isZero();
        assertThat(r.out().trim().split("\n")).hasSize(1);
        assertThat(r.out()).startsWith("summary: ");
    }

    @Test
    void hypScenario() throws Exception {
        String f = Cli.scenario(dir, "hyp.scen",
                "hyp granule=4k va-bits=48 checking",
                "map 0x1000 2M 0x40001000 r",
                "map 0x40000000 4M 0x80000000 rx",
                "unmap 0x100000 2M          # stops at the first hole, 0x201000",
                "expect 0x40000000 exec -> 0x80000000",
                "expect 0x40000000 write fault permission 2",
                "expect 0x3000 -> 0x40003000",
                "expect 0x100000 fault translation 3",
                "leaf 0x40200000",
                "dump");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out())
                .contains("hyp table: 4k granule, 48-bit VA, levels 0..3, 1 root frame")
                .contains("map 0x40000000-0x403fffff (4M) -> 0x80000000 rx: 2 x 2M blocks")
                .contains("unmap 0x100000-0x2fffff (2M): removed 257 leaves, freed 0 tables; 257 TLBIs; stopped after 1028K")
                .contains("leaf 0x40200000: L2 2M block 0x40200000-0x403fffff -> 0x80200000 rx")
                .containsPattern("0x1000-0xfffff +255 x 4K pages -> 0x40001000\\.\\. r\n")
                .containsPattern("0x200000-0x3fffff +L3 table 0x[0-9a-f]+ \\(empty\\)\n")
                .contains("expectations 4 passed, 0 failed");
    }

    @Test
    void largeBlockMapsDoNotReserveTablesTheyNeverUse() throws Exception {
        // 1 TiB in 1G blocks needs no table below the root; the memory-cache bound must know that
        // (a per-page bound would ask for 2^19 frames and fail on the 256M default window).
        String f = Cli.scenario(dir, "big.scen",
                "stage2 ipa-bits=40",
                "map 0 1T 0 rw",
                "expect 0xfffffff000 -> 0xfffffff000");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).contains("1024 x 1G blocks").contains("table frames 2 (8K)");
    }

    @Test
    void tableOptionsKeywordCaseAndDeferredRangeTlbi() throws Exception {
        String f = Cli.scenario(dir, "opts.scen",
                "STAGE2 granule=64K ipa-bits=42 vmid=7 fwb range-tlbi checking mem-base=0x2_0000_0000 mem-size=64M",
                "MAP 0x2000_0000 512M 0x4000_0000 RW",
                "Map 0x1_0000_0000 1M 0x5001_0000 rw+nc",
                "unmap 0x1_0001_0000 64K    # fwb + range-tlbi: one range TLBI after the walk",
                "expect 0x100010000 fault translation 3",
                "expect 0x100020000 write -> 0x50030000",
                "expect 0x3fffffff Write -> 0x5fffffff");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out())
                .contains("stage-2 table: 64k granule, 42-bit IPA, levels 2..3, 1 root frame, PA48 descriptors, "
                        + "vmid 7, fwb, range-tlbi; table memory [0x200000000, +64M); checking on")
                .contains("(512M) -> 0x40000000 rw: 1 x 512M block")
                .contains("(1M) -> 0x50010000 rw+nc: 16 x 64K pages")
                .contains("unmap 0x100010000-0x10001ffff (64K): removed 1 leaf, freed 0 tables; 1 TLBI")
                .contains("TLBIs 1 (1 range)");
    }

    @Test
    void standardInputIsAScenarioToo() throws Exception {
        List<Step> steps = ScenarioSource.load("-", new ByteArrayInputStream(
                "stage2\nmap 0 4K 0 r\n".getBytes(StandardCharsets.UTF_8)));
        assertThat(steps).hasSize(2);
        assertThat(ScenarioSource.name("-")).isEqualTo("<stdin>");
    }
}
