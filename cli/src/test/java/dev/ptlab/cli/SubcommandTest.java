package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SubcommandTest {
    @TempDir
    Path dir;

    private String pagesScenario() throws Exception {
        return Cli.scenario(dir, "pages.scen",
                "stage2 granule=4k ipa-bits=40",
                "# PA 4K past the IPA's 2M alignment: no block fits, 262144 pages",
                "map 0x40000000 1G 0x80001000 rw",
                "map 0x100000000 2M 0x200000000 rx",
                "dump   # silent in translate and dump");
    }

    @Test
    void translatePrintsOneLinePerAddress() throws Exception {
        Cli.Result r = Cli.run("translate", pagesScenario(), "0x40000000", "0x7fffffff", "0x80000000", "0x100000800",
                "1099511627776");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.err()).isEmpty();
        assertThat(r.out()).isEqualTo(""
                + "0x40000000 read -> 0x80001000 (L3 4K page, rw, TLB miss)\n"
                + "0x7fffffff read -> 0xc0000fff (L3 4K page, rw, TLB miss)\n"
                + "0x80000000 read -> fault translation level 1\n"
                + "0x100000800 read -> 0x200000800 (L2 2M block, rx, TLB miss)\n"
                + "0x10000000000 read -> fault translation level 0\n");
    }

    @Test
    void translateWithAccess() throws Exception {
        Cli.Result r = Cli.run("translate", "--access", "write", pagesScenario(), "0x40000000", "0x100000000");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).isEqualTo(""
                + "0x40000000 write -> 0x80001000 (L3 4K page, rw, TLB miss)\n"
                + "0x100000000 write -> fault permission level 2\n");
        r = Cli.run("translate", "-a", "exec", pagesScenario(), "0x100000000");
        assertThat(r.out()).isEqualTo("0x100000000 exec -> 0x200000000 (L2 2M block, rx, TLB miss)\n");
    }

    @Test
    void translateUsageErrors() throws Exception {
        Cli.Result r = Cli.run("translate", pagesScenario(), "0xzz");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).startsWith("ptlab translate: ADDR: \"0xzz\" is not a number; expected decimal digits or 0x followed by hex digits")
                .hasLineCount(1);
        r = Cli.run("translate", "--access", "fetch", pagesScenario(), "0");
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("ptlab translate: --access: \"fetch\" is not one of read, write, exec (try ptlab translate --help)\n");
        r = Cli.run("translate", pagesScenario());
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("ptlab translate: ADDR: missing; it is required (try ptlab translate --help)\n");
    }

    @Test
    void translateAndDumpReportFailedExpectationsWithExitOne() throws Exception {
        String f = Cli.scenario(dir, "bad.scen", "stage2", "map 0 4K 0x1000 r", "expect 0 -> 0x2000");
        Cli.Result r = Cli.run("translate", f, "0");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.out()).isEqualTo("0x0 read -> 0x1000 (L3 4K page, r, TLB hit)\n");
        assertThat(r.err()).isEqualTo(f + ":3: expected 0x0 read -> 0x2000, got 0x1000\n");
        r = Cli.run("dump", f);
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).isEqualTo(f + ":3: expected 0x0 read -> 0x2000, got 0x1000\n");
    }

    @Test
    void dumpCollapsesAGigabyteOfPagesIntoOneLine() throws Exception {
        Cli.Result r = Cli.run("dump", pagesScenario());
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.err()).isEmpty();
        // 262144 pages in 512 L3 tables under one L2 table: one run line, not 262144 lines.
        assertThat(r.out()).matches("(?s)"
                + "stage-2 table: 4k granule, 40-bit IPA, levels 1\\.\\.3, 2 concatenated root frames, PA48 descriptors, vmid 1\n"
                + "table frames: 516 \\(2064K\\): L1 2, L2 2, L3 512\n"
                + "L1 root table 0x1000000000 \\(2 concatenated frames\\)\n"
                + "  0x40000000-0x7fffffff +262144 x 4K pages -> 0x80001000\\.\\. rw  \\[1 L2 table \\+ 512 L3 tables\\]\n"
                + "  0x100000000-0x13fffffff +L2 table 0x[0-9a-f]+\n"
                + "    0x100000000-0x1001fffff +1 x 2M block -> 0x200000000 rx\n");
    }

    @Test
    void dumpShowsHolesAsGapsAndSplitsRunsAtAttributeChanges() throws Exception {
        String f = Cli.scenario(dir, "holes.scen",
                "stage2",
                "map 0x40000000 2M 0x80001000 rw",
                "map 0x40200000 2M 0x80201000 r       # same PA stride, other rights: a new run",
                "unmap 0x40001000 8K",
                "map 0x40400000 4K 0x90000000 rw      # PA not consecutive: a new run");
        Cli.Result r = Cli.run("dump", f);
        assertThat(r.exit()).as(r.toString()).isZero();
        String tree = r.out().substring(r.out().indexOf("L1 root"));
        assertThat(tree).matches("(?s)L1 root table 0x1000000000 \\(2 concatenated frames\\)\n"
                + "  0x40000000-0x7fffffff +L2 table 0x[0-9a-f]+\n"
                + "    0x40000000-0x401fffff +L3 table 0x[0-9a-f]+\n"
                + "      0x40000000-0x40000fff +1 x 4K page -> 0x80001000 rw\n"
                + "      0x40003000-0x401fffff +509 x 4K pages -> 0x80004000\\.\\. rw\n"
                + "    0x40200000-0x403fffff +512 x 4K pages -> 0x80201000\\.\\. r  \\[L3 table 0x[0-9a-f]+\\]\n"
                + "    0x40400000-0x405fffff +L3 table 0x[0-9a-f]+\n"
                + "      0x40400000-0x40400fff +1 x 4K page -> 0x90000000 rw\n");
    }

    @Test
    void dumpOfAnEmptyTable() throws Exception {
        Cli.Result r = Cli.run("dump", Cli.scenario(dir, "e.scen", "hyp va-bits=39"));
        assertThat(r.exit()).isZero();
        assertThat(r.out()).isEqualTo(""
                + "hyp table: 4k granule, 39-bit VA, levels 1..3, 1 root frame, PA48 descriptors\n"
                + "table frames: 1 (4K): L1 1\n"
                + "L1 root table 0x1000000000\n"
                + "  (no entries)\n");
    }

    @Test
    void benchPrintsEveryFigure() {
        Cli.Result r = Cli.run("bench", "--reps", "1", "--warmup", "0");
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out())
                .contains("48-bit IPA (levels 0..3), flags FWB|RANGE_TLBI, checking off")
                .containsPattern("map +1G as 262144 x 4K pages .*ns .*/page")
                .contains("TLBIs per unmap: 1 range, 514 by IPA (one per freed table), 0 VMID")
                .contains("TLB miss, 4-level walk, 262144 pages in address order")
                .contains("(262144 walks in 262144 lookups)")
                .contains("TLB hit, 256 resident pages, 1048576 lookups per rep")
                .contains("(1048576 hits, 0 misses)")
                .contains("515 table frames x 4K = 2060K of table memory")
                .contains("heap/table ratio 1.0071");
        assertThat(Cli.run("bench", "--reps", "0").exit()).isEqualTo(2);
    }

    @Test
    void helpVersionAndUsageErrors() {
        Cli.Result r = Cli.run("--help");
        assertThat(r.exit()).isZero();
        assertThat(r.out().replaceAll("\\s+", " ")).contains("run", "translate", "dump", "bench", "Exit codes: 0 success, 1 an expectation or check failed, 2 bad input or a resource limit, 3 internal error");
        r = Cli.run("--version");
        assertThat(r.exit()).isZero();
        assertThat(r.out()).startsWith("ptlab ").doesNotContain("${");
        r = Cli.run("run", "--help");
        assertThat(r.exit()).isZero();
        assertThat(r.out()).contains("Usage: ptlab run [-hq] [--builtin-scenario]", "[-b=SIZE]", "[--host-memory=MODEL]", "[-v=N]",
                "[-s=KIND]", "[-p=GPA]", "[--schedule=HOW]", "[--partition]", "[--host-ipa-limit=BITS]", "[-m=ID[,ID...]]... [FILE]").doesNotContain("[picocli WARN]");
        assertThat(r.err()).doesNotContain("[picocli WARN]");
        r = Cli.run();
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("ptlab: COMMAND: missing; expected one of run, compare, translate, dump, export, bench, help "
                + "(try ptlab --help)\n");
        r = Cli.run("frob");
        assertThat(r.exit()).isEqualTo(2);
        r = Cli.run("run", "--bogus");
        assertThat(r.exit()).isEqualTo(2);
        // One line, not the usage after it, and no picocli warnings.
        assertThat(r.err()).isEqualTo("ptlab run: --bogus: unknown option (try ptlab run --help)\n");
    }
}
