package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every scenario error is one line {@code file:line: what is wrong; expected what}, exit code 2. */
class ScenarioErrorTest {
    @TempDir
    Path dir;

    private String error(String... lines) throws Exception {
        return Cli.scenarioError(dir, lines);
    }

    @Test
    void unknownCommand() throws Exception {
        assertThat(error("stage2", "# a comment", "mpa 0x40000000 4K 0x80000000 rw"))
                .isEqualTo(":3: unknown command \"mpa\"; expected one of stage2, hyp, vm, map, unmap, translate, expect, expect-leaf, "
                        + "expect-owner, leaf, dump, wrprotect, tlbi, dsb, mkyoung, mkold, young, relax, split, flush, set-owner, "
                        + "idmap-greedy, coalesce-policy, counters, memslot, vcpu-access, dirty-log");
    }

    @Test
    void tlbiInstructionLines() throws Exception {
        String usage = "expected tlbi IPA SIZE, tlbi all, tlbi ipas2e1|ipas2le1 IPA [ttl=L], tlbi ripas2e1|ripas2le1 IPA SIZE [ttl=L],"
                + " or tlbi vmalls12e1|vmalle1";
        assertThat(error("stage2", "tlbi ipas2e1")).isEqualTo(":2: tlbi is missing IPA; " + usage);
        assertThat(error("stage2", "tlbi ripas2le1 0x40000000")).isEqualTo(":2: tlbi is missing SIZE; " + usage);
        assertThat(error("stage2", "tlbi ipas2le1 0x1000 level=3")).isEqualTo(":2: \"level=3\" is not ttl=LEVEL; " + usage);
        assertThat(error("stage2", "tlbi ipas2e1 0x1000 ttl=-1"))
                .isEqualTo(":2: ttl level -1 cannot be encoded (no TTL hint exists for it); expected ttl=0..3");
        assertThat(error("stage2", "tlbi vmalle1 0x1000")).isEqualTo(":2: tlbi has an extra argument \"0x1000\"; " + usage);
        // 3 pages: no single (NUM + 1) * 2^(5 * SCALE + 1) fits (SCALE 0 steps by 2 pages).
        assertThat(error("stage2", "tlbi ripas2e1 0x40000000 12K")).isEqualTo(":2: tlbi ripas2e1 0x40000000 12K is not one range"
                + " operand; expected (NUM + 1) * 2^(5 * SCALE + 1) pages with NUM 0..31, SCALE 0..3, at a page-aligned IPA");
        assertThat(error("stage2", "tlbi ripas2e1 0x40000000 8K ttl=0")).startsWith(":2: tlbi ripas2e1: ttl: 0 is not a range TTL level 1..3");
        assertThat(error("stage2", "dsb now")).isEqualTo(":2: dsb has an extra argument \"now\"; expected dsb");
        assertThat(error("hyp", "dsb")).startsWith(":2: dsb ");
    }

    @Test
    void badNumber() throws Exception {
        assertThat(error("stage2", "map 0x4g000000 4K 0x80000000 rw"))
                .isEqualTo(":2: IPA \"0x4g000000\" is not a number; expected decimal digits or 0x followed by hex digits");
        assertThat(error("stage2", "translate 12ab"))
                .isEqualTo(":2: ADDR \"12ab\" is not a number; expected decimal digits or 0x followed by hex digits");
        assertThat(error("stage2", "map 0 4K 0x1_0000_0000_0000_0000 rw"))
                .isEqualTo(":2: PA \"0x1_0000_0000_0000_0000\" is too large; expected a value below 2^63");
    }

    @Test
    void missingArguments() throws Exception {
        assertThat(error("stage2", "map 0x40000000 4K"))
                .isEqualTo(":2: map is missing PA and PROT; expected map IPA SIZE PA PROT");
        assertThat(error("hyp", "unmap 0x40000000"))
                .isEqualTo(":2: unmap is missing SIZE; expected unmap VA SIZE");
        assertThat(error("stage2", "expect 0x1000 read"))
                .isEqualTo(":2: expect is missing \"-> PA\" or \"fault TYPE LEVEL\"; expected expect ADDR [read|write|exec] -> PA, "
                        + "or expect ADDR [read|write|exec] fault TYPE LEVEL");
        assertThat(error("stage2", "expect 0x1000 fault translation"))
                .isEqualTo(":2: expect is missing LEVEL after \"fault\"; expected expect ADDR [read|write|exec] -> PA, "
                        + "or expect ADDR [read|write|exec] fault TYPE LEVEL");
        assertThat(error("stage2", "map 0 4K 0 rw extra"))
                .isEqualTo(":2: map has an extra argument \"extra\"; expected map IPA SIZE PA PROT");
    }

    @Test
    void badSizeSuffix() throws Exception {
        assertThat(error("stage2", "map 0x40000000 4X 0x80000000 rw"))
                .isEqualTo(":2: SIZE \"4X\" has an unknown suffix \"X\"; expected a number with an optional K, M, G or T suffix "
                        + "(e.g. 4K, 2M, 1G, 0x3000)");
        assertThat(error("stage2", "unmap 0x40000000 2MB"))
                .isEqualTo(":2: SIZE \"2MB\" has an unknown suffix \"MB\"; expected a number with an optional K, M, G or T suffix "
                        + "(e.g. 4K, 2M, 1G, 0x3000)");
    }

    @Test
    void badProt() throws Exception {
        assertThat(error("stage2", "map 0x40000000 4K 0x80000000 rz"))
                .isEqualTo(":2: prot: \"rz\" has unknown permission 'z'; expected letters r, w, x (or px, ux), or none");
        // A prot that parses but the table refuses: the library's EINVAL, at run time.
        assertThat(error("stage2", "map 0x40000000 4K 0x80000000 rwx+device"))
                .isEqualTo(":2: map failed: prot: rwx+device is invalid for stage-2: device memory cannot be executable (EINVAL); "
                        + "expected IPA, SIZE and PA aligned to the 4k granule and a prot the stage-2 table accepts");
    }

    @Test
    void operationBeforeTable() throws Exception {
        assertThat(error("# no table yet", "map 0x40000000 4K 0x80000000 rw"))
                .isEqualTo(":2: map before any table line; expected a \"stage2 ...\", \"hyp ...\" or \"vm ...\" line first");
    }

    @Test
    void unalignedMapArgumentReportedByTheLibrary() throws Exception {
        assertThat(error("stage2 granule=4k ipa-bits=40", "map 0x40000000 4K 0x80000800 rw"))
                .isEqualTo(":2: map failed: pa: 0x80000800 is not aligned to the 4k granule (EINVAL); "
                        + "expected IPA, SIZE and PA aligned to the 4k granule and a prot the stage-2 table accepts");
        assertThat(error("stage2", "map 0x40000000 0x1800 0x80000000 rw"))
                .isEqualTo(":2: map failed: size: 0x1800 is not aligned to the 4k granule (EINVAL); "
                        + "expected IPA, SIZE and PA aligned to the 4k granule and a prot the stage-2 table accepts");
    }

    @Test
    void duplicateTableLine() throws Exception {
        assertThat(error("stage2 granule=4k ipa-bits=40", "map 0 4K 0 rw", "hyp granule=4k va-bits=48"))
                .isEqualTo(":3: a second table line (the stage2 table is already defined at line 1); expected one table per scenario");
    }

    @Test
    void otherErrors() throws Exception {
        assertThat(error("stage2 granule=8k"))
                .isEqualTo(":1: granule \"8k\" is not a granule; expected granule=4k, 16k or 64k");
        assertThat(error("stage2 ipa-bits=60"))
                .isEqualTo(":1: ipa-bits: 60 is outside 32..52; expected ipa-bits=32..52 that the granule can reach");
        assertThat(error("hyp vmid=2"))
                .isEqualTo(":1: unknown hyp option \"vmid=2\"; expected granule=4k|16k|64k, va-bits=N, mem-base=ADDR, "
                        + "mem-size=SIZE, checking");
        assertThat(error("stage2 fwb fwb"))
                .isEqualTo(":1: stage2 option fwb is given twice; expected each option at most once");
        assertThat(error("stage2", "expect 0x1000 fault bogus 3"))
                .isEqualTo(":2: fault type \"bogus\" is unknown; expected one of translation, access-flag, permission, address-size");
        assertThat(error("stage2", "translate 0x1000 fetch"))
                .isEqualTo(":2: access \"fetch\" is not one of read, write, exec; expected read, write or exec");
        assertThat(error("stage2", "map 0xfffffff000 8K 0 rw"))
                .isEqualTo(":2: map failed: at 0xfffffff000: range [0xfffffff000, 0x10000001000) is outside the 40-bit "
                        + "input-address space (limit 0x10000000000) (ERANGE); expected a range inside the 40-bit IPA space "
                        + "[0, 0x10000000000)");
        assertThat(error("stage2 mem-size=16K", "map 0 1G 0x1000 rw"))
                .isEqualTo(":2: map failed: at 0x200000 level 2: a table is needed and the memory cache is empty (ENOMEM); "
                        + "expected the tables to fit in table memory (raise mem-size= on the table line)");
        assertThat(error("stage2 granule=64k mem-base=0x1000"))
                .isEqualTo(":1: table memory mem-base=0x1000 is not aligned to the 64k granule; expected mem-base= a multiple of 64K");
        assertThat(error("stage2 mem-size=4K"))
                // Checked while parsing: a 40-bit 4K stage-2 table starts at level 1 with 2 concatenated root frames
                // (one level-1 frame maps 512 x 1G = 39 bits), and 4K is one frame.
                .isEqualTo(":1: table memory mem-size=4K holds 1 frame and the root table needs 2 aligned contiguous frames; "
                        + "expected mem-size= of at least 8K, e.g. 256M");
        assertThat(error("hyp", "map 0 2M 0 r", "map 0x1000 4K 0x5000 r"))
                .startsWith(":3: map failed: at 0x1000 level 2: hyp map would need a table under the live block")
                .endsWith("(EINVAL); expected VA, SIZE and PA aligned to the 4k granule and a prot the hyp table accepts,"
                        + " and no live mapping in the way (hyp map never replaces one: unmap it first)");
    }

    @Test
    void syntaxErrorsStopBeforeAnythingRuns() throws Exception {
        String f = Cli.scenario(dir, "late.txt", "stage2", "map 0 4K 0 rw", "dump", "frobnicate");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).startsWith(f + ":4: unknown command \"frobnicate\"");
    }

    @Test
    void missingFileAndEmptyScenario() throws Exception {
        Cli.Result r = Cli.run("run", dir.resolve("nope.txt").toString());
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo(dir.resolve("nope.txt") + ": cannot read (no such file or directory); expected a readable scenario file\n");
        String f = Cli.scenario(dir, "empty.txt", "# nothing but a comment", "");
        r = Cli.run("run", f);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).isEqualTo(f + ": no table line; expected a \"stage2 ...\", \"hyp ...\" or \"vm ...\" line\n");
    }
}
