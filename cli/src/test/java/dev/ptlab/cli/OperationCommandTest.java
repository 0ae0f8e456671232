package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The scenario commands for the stage-2 operations beyond map and unmap: each one's effect is
 * proved with {@code expect} lines run through the scenario CPU's MMU and TLB, and its result
 * line is checked.
 */
class OperationCommandTest {
    @TempDir
    Path dir;

    /** Runs a scenario that must pass every expectation; returns its output. */
    private String passes(String... lines) throws Exception {
        Cli.Result r = Cli.run("run", Cli.scenario(dir, "ops.scen", lines));
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.err()).as(r.toString()).isEmpty();
        assertThat(r.out()).doesNotContain("FAILED");
        return r.out();
    }

    /** Output lines that start with {@code prefix}. */
    private static List<String> linesStarting(String out, String prefix) {
        return Arrays.stream(out.split("\n")).filter(l -> l.startsWith(prefix)).collect(Collectors.toList());
    }

    // ------------------------------------------------------------------------------------------
    // wrprotect, tlbi, relax

    @Test
    void wrprotectWithoutTlbiStillWritesThroughTheTlbAndTlbiMakesItFault() throws Exception {
        String out = passes(
                "stage2 checking",
                "map 0x40000000 2M 0x80000000 rw",
                "expect 0x40000000 write -> 0x80000000    # fills cpu0's TLB with a writable entry",
                "wrprotect 0x40000000 2M",
                "expect 0x40001000 write -> 0x80001000    # stale TLB entry: the write still goes through",
                "tlbi 0x40000000 2M",
                "expect 0x40001000 write fault permission 2",
                "expect 0x40001000 read -> 0x80001000",
                "relax 0x40000000 rw",
                "expect 0x40001000 write -> 0x80001000");
        assertThat(out)
                .contains("wrprotect 0x40000000-0x401fffff (2M): write permission removed from 1 leaf; 0 TLBIs (the caller's "
                        + "TLBI is separate: until \"tlbi\" a CPU may still write through its TLB)\n")
                .contains("tlbi 0x40000000-0x401fffff (2M): range TLBI of vmid 1 on every CPU; cpu0 TLB entries 1 -> 0\n")
                .contains("relax 0x40000000 rw: OK, the L2 2M block 0x40000000-0x401fffff, now rw; 1 local TLBI by IPA on cpu0 "
                        + "(the scenario's CPU; other CPUs are not invalidated)\n")
                .contains("TLBIs 2 (1 range, 1 local); BBMs 0");
    }

    @Test
    void wrprotectOfEntriesNeverCachedFaultsAtOnceAndTlbiAllFlushesTheVmid() throws Exception {
        String out = passes(
                "stage2",
                "map 0x40000000 16K 0x80000000 rw",
                "wrprotect 0x40000000 8K",
                "expect 0x40000000 write fault permission 3   # nothing cached: the walk sees the new entry",
                "expect 0x40002000 write -> 0x80002000         # outside the range: untouched",
                "tlbi all",
                "expect 0x40001000 write fault permission 3",
                "relax 0x40001000 rw",
                "expect 0x40001000 write -> 0x80001000",
                "expect 0x40000000 write fault permission 3   # relax fixes one page only");
        assertThat(out)
                .contains("wrprotect 0x40000000-0x40001fff (8K): write permission removed from 2 leaves; 0 TLBIs")
                .contains("tlbi all: TLBI of every entry of vmid 1 on every CPU; cpu0 TLB entries 2 -> 0\n")
                .contains("TLBIs 2 (1 VMID, 1 local)");
    }

    @Test
    void relaxReportsNotMappedWithALocalTlbiAndSetsExecuteToWhatIsAsked() throws Exception {
        // Linux 7.1-rc4 relax_perms: the local TLBI also on a not-mapped entry (before: none),
        // and the execute field rewritten from RIGHTS, so rw on an rwx page removes execute
        // (before: kept), which ptlab invalidates with a broadcast TLBI.
        String out = passes(
                "stage2",
                "map 0x40000000 4K 0x80000000 rw",
                "expect 0x40000000 exec fault permission 3",
                "relax 0x40000000 rwx",
                "expect 0x40000000 exec -> 0x80000000",
                "relax 0x50000000 rw",
                "relax 0x40000000 rw",
                "expect 0x40000000 exec fault permission 3",
                "counters");
        assertThat(out)
                .contains("relax 0x40000000 rwx: OK, the L3 4K page 0x40000000-0x40000fff, now rwx; I-cache invalidated (newly "
                        + "executable); 1 local TLBI by IPA on cpu0")
                .contains("relax 0x50000000 rw: NOT_MAPPED (no valid leaf translates it); 1 local TLBI by IPA on cpu0")
                .contains("relax 0x40000000 rw: OK, the L3 4K page 0x40000000-0x40000fff, now rw; 1 broadcast TLBI by IPA"
                        + " (an execute right was removed: every CPU is invalidated)\n")
                .contains("counters: TLBIs 3 (by IPA 1, local 2, range 0, VMID 0)\n")
                .contains("  CMOs: D-cache 1 op (4K), I-cache 1 op (4K)\n");
    }

    // ------------------------------------------------------------------------------------------
    // access flag

    @Test
    void mkoldMakesTheNextWalkTakeAnAccessFlagFaultAndMkyoungFixesIt() throws Exception {
        String out = passes(
                "stage2",
                "map 0x40000000 2M 0x80000000 rw",
                "young 0x40000000 2M",
                "mkold 0x40000000 2M",
                "expect 0x40000000 fault access-flag 2",
                "expect 0x40000000 write fault access-flag 2",
                "expect-leaf 0x40000000 level 2            # still mapped, only old",
                "young 0x40000000 2M",
                "mkold 0x40000000 2M",
                "mkyoung 0x40123456",
                "expect 0x40000000 -> 0x80000000",
                "young 0x40000000 2M",
                "mkyoung 0x50000000");
        assertThat(linesStarting(out, "young ")).containsExactly(
                "young 0x40000000-0x401fffff (2M): young (a valid leaf in the range has its access flag set)",
                "young 0x40000000-0x401fffff (2M): old (no valid leaf in the range has its access flag set)",
                "young 0x40000000-0x401fffff (2M): young (a valid leaf in the range has its access flag set)");
        assertThat(linesStarting(out, "mkold ")).containsExactly(
                "mkold 0x40000000-0x401fffff (2M): was young; access flag cleared on 1 leaf; no TLBI (an entry cached while "
                        + "young still translates until \"tlbi\")",
                "mkold 0x40000000-0x401fffff (2M): was old; access flag cleared on 0 leaves; no TLBI (an entry cached while "
                        + "young still translates until \"tlbi\")");
        assertThat(out)
                .contains("mkyoung 0x40123456: OK, access flag set on the L2 2M block 0x40000000-0x401fffff, now rw; no TLBI "
                        + "(an entry with AF=0 is never cached)\n")
                .contains("mkyoung 0x50000000: NOT_MAPPED (no valid leaf translates it); no TLBI")
                .contains("TLBIs 0; BBMs 0");
    }

    @Test
    void mkoldOfACachedEntryNeedsATlbiBeforeTheCpuSeesIt() throws Exception {
        passes(
                "stage2",
                "map 0x40000000 4K 0x80000000 rw",
                "expect 0x40000000 -> 0x80000000             # cached young",
                "mkold 0x40000000 4K",
                "expect 0x40000000 -> 0x80000000             # TLB hit on the young entry",
                "tlbi 0x40000000 4K",
                "expect 0x40000000 fault access-flag 3",
                "mkyoung 0x40000000",
                "expect 0x40000000 -> 0x80000000");
    }

    // ------------------------------------------------------------------------------------------
    // split

    @Test
    void splitKeepsEveryTranslationAndLeavesPages() throws Exception {
        String out = passes(
                "stage2 checking",
                "map 0x40000000 1G 0x80000000 rw",
                "map 0xc0000000 2M 0xd0000000 rx",
                "expect-leaf 0x40000000 level 1",
                "split 0x40000000 1G",
                "split 0xc0000000 2M",
                "expect-leaf 0x40000000 level 3",
                "expect-leaf 0x7ffff000 level 3",
                "expect-leaf 0xc01ff000 level 3",
                "expect 0x40000000 -> 0x80000000",
                "expect 0x4abcd123 write -> 0x8abcd123",
                "expect 0x7fffffff -> 0xbfffffff",
                "expect 0xc0100000 exec -> 0xd0100000     # the block's attributes are kept",
                "expect 0xc0100000 write fault permission 3",
                "counters");
        assertThat(out)
                .contains("split 0x40000000-0x7fffffff (1G) with 513 frames (enough for a full split): split 1 block, installed 513 "
                        + "tables; now 262144 x 4K pages; 1 BBM, 1 TLBI\n")
                .contains("split 0xc0000000-0xc01fffff (2M) with 1 frame (enough for a full split): split 1 block, installed 1 "
                        + "table; now 512 x 4K pages; 1 BBM, 1 TLBI\n")
                .contains("splits 2");
    }

    @Test
    void splitWithTooFewFramesStopsWithEnomemAndLeavesAValidTable() throws Exception {
        String out = passes(
                "stage2 checking",
                "map 0x40000000 1G 0x80000000 rw",
                "split 0x40000000 1G frames=0",
                "expect-leaf 0x40000000 level 1",
                "split 0x40000000 1G frames=1           # one level of 2M blocks, then the cache is empty",
                "expect-leaf 0x40000000 level 2",
                "expect-leaf 0x7fe00000 level 2",
                "expect 0x40201234 -> 0x80201234",
                "split 0x40000000 4M frames=2           # two of those 2M blocks to pages",
                "expect-leaf 0x40000000 level 3",
                "expect-leaf 0x40200000 level 3",
                "expect-leaf 0x40400000 level 2",
                "expect 0x40201234 -> 0x80201234");
        assertThat(out)
                .contains("split 0x40000000-0x7fffffff (1G) with frames=0: split 0 blocks, installed 0 tables; now 1 x 1G block; "
                        + "0 BBM, 0 TLBIs; then ENOMEM, the table stays valid: at 0x40000000 level 1: splitting a block needs at "
                        + "least one table frame and the memory cache is empty (ENOMEM)\n")
                .contains("split 0x40000000-0x7fffffff (1G) with frames=1: split 1 block, installed 1 table; now 512 x 2M blocks; "
                        + "1 BBM, 1 TLBI; then ENOMEM, the table stays valid: at 0x40000000 level 2: splitting a block needs at "
                        + "least one table frame and the memory cache is empty (ENOMEM)\n")
                .contains("split 0x40000000-0x403fffff (4M) with frames=2: split 2 blocks, installed 2 tables; now 1024 x 4K pages; "
                        + "2 BBM, 2 TLBIs\n");
    }

    // ------------------------------------------------------------------------------------------
    // flush

    @Test
    void flushCleansCacheableLeavesOnlyAndNothingWithFwb() throws Exception {
        String out = passes(
                "stage2",
                "map 0x40000000 2M 0x80000000 rw",
                "map 0x40200000 8K 0x80200000 rw",
                "map 0x09000000 4K 0x1c090000 rw+device",
                "flush 0x40000000 4M",
                "flush 0x09000000 4K",
                "counters");
        assertThat(out)
                .contains("flush 0x40000000-0x403fffff (4M): D-cache clean+invalidate of 3 cacheable leaves (2056K)\n")
                .contains("flush 0x9000000-0x9000fff (4K): D-cache clean+invalidate of 0 cacheable leaves (0)\n")
                // 2 maps of cacheable memory (1 block, 2 pages), then the flush of the same 3 leaves.
                .contains("  CMOs: D-cache 6 ops (4112K), I-cache 0 ops (0)\n");
        String fwb = passes(
                "stage2 fwb",
                "map 0x40000000 2M 0x80000000 rw",
                "flush 0x40000000 2M");
        assertThat(fwb)
                .contains("flush 0x40000000-0x401fffff (2M): nothing to do with fwb (the stage-2 attributes force write-back)\n")
                .contains("; CMOs 0\n");
    }

    // ------------------------------------------------------------------------------------------
    // owner annotations

    @Test
    void setOwnerAnnotatesInvalidEntriesThatExpectOwnerReads() throws Exception {
        String out = passes(
                "stage2 checking",
                "set-owner 0x40000000 16K 7",
                "expect-owner 0x40000000 7",
                "expect-owner 0x40003000 7",
                "expect-owner 0x40004000 0                  # next page: never annotated",
                "expect 0x40000000 fault translation 3      # an annotation is an invalid entry",
                "set-owner 0x40001000 4K 0                  # owner 0 is the plain zero entry",
                "expect-owner 0x40001000 0",
                "expect-owner 0x40002000 7");
        assertThat(out)
                .contains("set-owner 0x40000000-0x40003fff (16K) owner 7: 4 pages now invalid entries annotated with owner 7; "
                        + "installed 2 tables; 0 BBM, 0 TLBIs\n")
                .contains("set-owner 0x40001000-0x40001fff (4K) owner 0: 1 page now plain invalid entries; installed 0 tables")
                .contains("expect-owner 0x40000000 7: ok\n");
    }

    @Test
    void setOwnerInsideABlockBreaksItIntoATable() throws Exception {
        String out = passes(
                "stage2 checking",
                "map 0x40000000 2M 0x80000000 rw",
                "expect 0x40100000 -> 0x80100000",
                "set-owner 0x40000000 4K 3",
                "expect-owner 0x40000000 3",
                "expect 0x40000000 fault translation 3",
                "expect 0x40100000 fault translation 3     # the rest of the block is lost and refaults",
                "expect-owner 0x40100000 0");
        assertThat(out).contains("set-owner 0x40000000-0x40000fff (4K) owner 3: 1 page now invalid entries annotated with owner 3; "
                + "installed 1 table; 1 BBM, 1 TLBI\n");
    }

    @Test
    void expectLeafAndExpectOwnerFailuresAreReportedWithFileAndLine() throws Exception {
        String f = Cli.scenario(dir, "fail.scen",
                "stage2",
                "map 0x40000000 2M 0x80000000 rw",
                "expect-leaf 0x40000000 level 3",
                "expect-leaf 0x50000000 level 3",
                "expect-owner 0x40000000 0",
                "set-owner 0x50000000 4K 9",
                "expect-owner 0x50000000 8",
                "expect-leaf 0x40000000 level 2");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).isEqualTo(
                f + ":3: expected a valid leaf at level 3 for 0x40000000, got L2 2M block\n"
                + f + ":4: expected a valid leaf at level 3 for 0x50000000, got no leaf (L2 invalid entry)\n"
                + f + ":5: expected owner 0 at 0x40000000, got a valid L2 leaf\n"
                + f + ":7: expected owner 8 at 0x50000000, got owner 9 (L3 entry 0x24)\n");
        assertThat(r.out())
                .contains("expect-leaf 0x40000000 level 3: FAILED, got L2 2M block\n")
                .contains("expect-leaf 0x40000000 level 2: ok\n")
                .contains("expectations 1 passed, 4 failed");
    }

    // ------------------------------------------------------------------------------------------
    // coalescing policies

    private static String coalesce(String policy, String tableOptions) {
        return String.join("\n",
                "stage2 checking" + tableOptions,
                "coalesce-policy " + policy,
                "map 0x40000000 4K 0x80000000 rw",
                "map 0x40100000 4K 0x80100000 rw",
                "expect 0x40000000 -> 0x80000000",
                "map 0x40000000 2M 0x80000000 rw          # covers the whole L3 table: coalesced into one block",
                "expect-leaf 0x40000000 level 2",
                "expect 0x40000000 -> 0x80000000",
                "expect 0x40100000 write -> 0x80100000",
                "expect 0x401ff000 -> 0x801ff000",
                "counters");
    }

    @Test
    void bothCoalescePoliciesGiveTheSameTranslationsButDifferentCounters() throws Exception {
        for (String options : new String[] {"", " range-tlbi"}) {
            String install = passes(coalesce("install-first", options).split("\n"));
            String unmap = passes(coalesce("unmap-first", options).split("\n"));
            assertThat(linesStarting(unmap, "expect")).isEqualTo(linesStarting(install, "expect")).hasSize(5);
            assertThat(install).contains("1 BBM; coalesced 1 table into a block (install-first, invalid for 0 walker steps)\n")
                    .contains("coalesced 1, invalid-window steps 0,");
            assertThat(unmap).contains("1 BBM; coalesced 1 table into a block (unmap-first, invalid for 512 walker steps)\n")
                    .contains("coalesced 1, invalid-window steps 512,");
            // Install-first invalidates the table's span (a range TLBI when the CPU has them);
            // unmap-first always flushes the whole VMID.
            assertThat(unmap).contains("counters: TLBIs 1 (by IPA 0, local 0, range 0, VMID 1)\n");
            assertThat(install).contains(options.isEmpty() ? "counters: TLBIs 1 (by IPA 0, local 0, range 0, VMID 1)\n"
                    : "counters: TLBIs 1 (by IPA 0, local 0, range 1, VMID 0)\n");
        }
        assertThat(passes("stage2", "coalesce-policy install-first")).contains(
                "coalesce-policy install-first: map replaces a table by a block by breaking the table entry, installing the block, "
                + "then freeing the old tables (the range is never unmapped)\n");
    }

    // ------------------------------------------------------------------------------------------
    // counters, idmap, hyp

    @Test
    void countersPrintsEveryGroupAndTheSummaryHasTheTotals() throws Exception {
        String out = passes(
                "stage2",
                "map 0x40000000 2M 0x80000000 rwx",
                "unmap 0x40000000 2M",
                "counters");
        assertThat(out).contains(
                "counters: TLBIs 2 (by IPA 2, local 0, range 0, VMID 0)\n"
                + "  table: BBMs 0, coalesced 0, invalid-window steps 0, splits 0, attribute updates 0, raced 0; leaves installed 1, "
                + "removed 1; tables installed 1, freed 1\n"
                + "  CMOs: D-cache 2 ops (4M), I-cache 1 op (2M)\n"
                + "  table frames: 2 in use (8K), peak 3 (12K, memory-cache spares included)\n");
        // map: D-cache clean of the block and I-cache invalidate (executable); unmap: D-cache clean.
        assertThat(out).endsWith("TLBIs 2 (2 by IPA); BBMs 0; CMOs 2 D-cache (4M), 1 I-cache (2M)\n");
        Cli.Result quiet = Cli.run("run", "-q", Cli.scenario(dir, "q.scen", "stage2", "counters"));
        assertThat(quiet.out()).startsWith("summary: ");
    }

    @Test
    void countersOnAHypTableShowHypTlbis() throws Exception {
        String out = passes(
                "hyp",
                "map 0x1000 4K 0x40001000 rw",
                "unmap 0x1000 4K",
                "counters");
        assertThat(out).contains("counters: TLBIs 4 (hyp VA 4)\n")
                .contains("  CMOs: D-cache 0 ops (0), I-cache 0 ops (0)\n");
    }

    @Test
    void idmapGreedyMapsTheLargestIdentityLeafAroundAddrInsideTheRange() throws Exception {
        String out = passes(
                "stage2 idmap checking",
                "idmap-greedy 0x40001234 rwx 0x0 0x100000000     # a whole 1G block fits",
                "expect-leaf 0x40001000 level 1",
                "expect 0x40001234 exec -> 0x40001234",
                "idmap-greedy 0x80001000 rw 0x80000000 0x80300000  # the range clips it to 2M",
                "expect-leaf 0x80001000 level 2",
                "expect 0x80200000 fault translation 2",
                "map 0x90200000 4K 0x90200000 r                   # other attributes: a pin",
                "idmap-greedy 0x90000000 rw 0x90000000 0xa0000000",
                "expect-leaf 0x90000000 level 2                   # the 2M block beside the pin",
                "idmap-greedy 0x90201000 rw 0x90000000 0xa0000000",
                "expect-leaf 0x90201000 level 3                   # the pin's own 2M: pages only",
                "expect 0x90200000 write fault permission 3       # the pin is left alone",
                "idmap-greedy 0x90000000 rw 0x90000000 0xa0000000  # again: identical leaf, nothing changes",
                "expect-leaf 0x90000000 level 2");
        assertThat(out)
                .contains("PA48 descriptors, vmid 1, idmap; table memory")
                .contains("idmap-greedy 0x40001234 rwx in [0x0, 0x100000000): mapped 0x40000000-0x7fffffff (1G) as 1 x 1G block; "
                        + "installed 0 tables; 0 BBM, 0 TLBIs\n")
                .contains("idmap-greedy 0x80001000 rw in [0x80000000, 0x80300000): mapped 0x80000000-0x801fffff (2M) as 1 x 2M "
                        + "block; installed 1 table; 0 BBM, 0 TLBIs\n")
                .contains("idmap-greedy 0x90201000 rw in [0x90000000, 0xa0000000): mapped 0x90201000-0x90201fff (4K) as 1 x 4K "
                        + "page; installed 0 tables;");
    }

    @Test
    void idmapGreedyCoalescesCompatiblePagesIntoItsBlock() throws Exception {
        String out = passes(
                "stage2 idmap checking",
                "map 0x40000000 4K 0x40000000 rw",
                "map 0x40100000 4K 0x40100000 rw",
                "idmap-greedy 0x40000000 rw 0x40000000 0x40200000",
                "expect-leaf 0x40100000 level 2",
                "expect 0x40100000 -> 0x40100000");
        assertThat(out).contains("idmap-greedy 0x40000000 rw in [0x40000000, 0x40200000): mapped 0x40000000-0x401fffff (2M) as "
                + "1 x 2M block; installed 0 tables; 1 BBM, 1 TLBI; coalesced 1 table into a block\n");
    }
}
