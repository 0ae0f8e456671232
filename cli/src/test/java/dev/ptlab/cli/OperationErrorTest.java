package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad arguments of the stage-2 operation commands: one line {@code file:line: what is wrong;
 * expected what} on stderr, exit code 2. Syntax errors are found before anything runs.
 */
class OperationErrorTest {
    @TempDir
    Path dir;

    private String error(String... lines) throws Exception {
        return Cli.scenarioError(dir, lines);
    }

    @Test
    void stageTwoOperationsOnAHypTable() throws Exception {
        for (String cmd : new String[] {"wrprotect 0 4K", "tlbi all", "mkyoung 0", "mkold 0 4K", "young 0 4K", "relax 0 rw",
                "split 0 4K", "flush 0 4K", "set-owner 0 4K 1", "idmap-greedy 0 rw 0 4K", "coalesce-policy unmap-first",
                "expect-owner 0 1"}) {
            String keyword = cmd.substring(0, cmd.indexOf(' '));
            assertThat(error("hyp", cmd)).isEqualTo(":2: " + keyword + " is a stage-2 operation and the table (line 1) is hyp; "
                    + "expected a \"stage2 ...\" table line for it");
        }
        assertThat(error("wrprotect 0 4K")).isEqualTo(":1: wrprotect before any table line; expected a \"stage2 ...\", "
                + "\"hyp ...\" or \"vm ...\" line first");
    }

    @Test
    void wrprotect() throws Exception {
        assertThat(error("stage2", "wrprotect 0x1000")).isEqualTo(":2: wrprotect is missing SIZE; expected wrprotect IPA SIZE");
        assertThat(error("stage2", "wrprotect 0x1000 4K rw"))
                .isEqualTo(":2: wrprotect has an extra argument \"rw\"; expected wrprotect IPA SIZE");
        assertThat(error("stage2", "wrprotect 0x1001 4K")).isEqualTo(":2: wrprotect failed: ipa: 0x1001 is not aligned to the 4k "
                + "granule (EINVAL); expected IPA and SIZE aligned to the 4k granule, SIZE above 0");
        assertThat(error("stage2", "wrprotect 0x1000 4X")).isEqualTo(":2: SIZE \"4X\" has an unknown suffix \"X\"; expected a "
                + "number with an optional K, M, G or T suffix (e.g. 4K, 2M, 1G, 0x3000)");
    }

    @Test
    void tlbi() throws Exception {
        assertThat(error("stage2", "tlbi")).isEqualTo(":2: tlbi is missing IPA and SIZE (or \"all\"); expected tlbi IPA SIZE, "
                + "or tlbi all");
        assertThat(error("stage2", "tlbi 0x1000")).isEqualTo(":2: tlbi is missing SIZE; expected tlbi IPA SIZE, or tlbi all");
        assertThat(error("stage2", "tlbi all now")).isEqualTo(":2: tlbi has an extra argument \"now\"; expected tlbi IPA SIZE, "
                + "or tlbi all");
        assertThat(error("stage2", "tlbi everything 4K")).isEqualTo(":2: IPA \"everything\" is not a number; expected decimal "
                + "digits or 0x followed by hex digits");
        assertThat(error("stage2", "tlbi 0x1000 0")).isEqualTo(":2: tlbi SIZE is 0; expected a size above 0 (tlbi IPA SIZE, "
                + "or tlbi all)");
        assertThat(error("stage2", "tlbi 0xffffffffff 8K")).isEqualTo(":2: tlbi range [0xffffffffff, 0x10000001fff) reaches past the 40-bit "
                + "IPA space; expected a range inside [0, 0x10000000000)");
    }

    @Test
    void accessFlagCommands() throws Exception {
        assertThat(error("stage2", "mkyoung")).isEqualTo(":2: mkyoung is missing IPA; expected mkyoung IPA");
        assertThat(error("stage2", "mkyoung 0x1000 4K")).isEqualTo(":2: mkyoung has an extra argument \"4K\"; expected mkyoung IPA");
        assertThat(error("stage2", "mkold 0x1000")).isEqualTo(":2: mkold is missing SIZE; expected mkold IPA SIZE");
        assertThat(error("stage2", "young 0x1000 4K x")).isEqualTo(":2: young has an extra argument \"x\"; expected young IPA SIZE");
        assertThat(error("stage2", "mkold 0x1000 0")).isEqualTo(":2: mkold failed: size: 0x0 is not positive (EINVAL); expected "
                + "IPA and SIZE aligned to the 4k granule, SIZE above 0");
        assertThat(error("stage2", "young 0x1000 0x800")).isEqualTo(":2: young failed: size: 0x800 is not aligned to the 4k "
                + "granule (EINVAL); expected IPA and SIZE aligned to the 4k granule, SIZE above 0");
    }

    @Test
    void relax() throws Exception {
        assertThat(error("stage2", "relax 0x1000")).isEqualTo(":2: relax is missing PROT; expected relax IPA PROT");
        assertThat(error("stage2", "relax 0x1000 rw+device")).isEqualTo(":2: relax PROT \"rw+device\" carries more than access "
                + "rights (relax changes access rights only, not the memory type or software bits); expected letters r, w, x "
                + "(or px, ux) only, e.g. rw or rx");
        assertThat(error("stage2", "relax 0x1000 rq")).isEqualTo(":2: prot: \"rq\" has unknown permission 'q'; expected letters "
                + "r, w, x (or px, ux), or none");
    }

    @Test
    void split() throws Exception {
        assertThat(error("stage2", "split 0x1000")).isEqualTo(":2: split is missing SIZE; expected split IPA SIZE [frames=N]");
        assertThat(error("stage2", "split 0x1000 4K frame=3")).isEqualTo(":2: unknown split option \"frame=3\"; expected "
                + "frames=N (split IPA SIZE [frames=N])");
        assertThat(error("stage2", "split 0x1000 4K frames=")).isEqualTo(":2: split option frames has no value; expected "
                + "frames=N, a number of table frames");
        assertThat(error("stage2", "split 0x1000 4K frames=lots")).isEqualTo(":2: frames \"lots\" is not a number; expected "
                + "decimal digits or 0x followed by hex digits");
        assertThat(error("stage2", "split 0x1000 4K frames=0x80000000")).isEqualTo(":2: frames=0x80000000 is more than a memory "
                + "cache holds; expected frames=N below 2^31 - 8");
        assertThat(error("stage2", "split 0x1000 4K frames=1 x")).isEqualTo(":2: split has an extra argument \"x\"; expected "
                + "split IPA SIZE [frames=N]");
        assertThat(error("stage2", "split 0x1800 4K")).isEqualTo(":2: split failed: ipa: 0x1800 is not aligned to the 4k granule "
                + "(EINVAL); expected IPA and SIZE aligned to the 4k granule, SIZE above 0");
    }

    @Test
    void flush() throws Exception {
        assertThat(error("stage2", "flush")).isEqualTo(":2: flush is missing IPA and SIZE; expected flush IPA SIZE");
        assertThat(error("stage2", "flush 0x1000 3K")).isEqualTo(":2: flush failed: size: 0xc00 is not aligned to the 4k granule "
                + "(EINVAL); expected IPA and SIZE aligned to the 4k granule, SIZE above 0");
    }

    @Test
    void setOwnerAndExpectOwner() throws Exception {
        assertThat(error("stage2", "set-owner 0 4K")).isEqualTo(":2: set-owner is missing OWNER; expected set-owner IPA SIZE OWNER");
        assertThat(error("stage2", "set-owner 0 4K 256")).isEqualTo(":2: OWNER 256 is outside 0..255; expected an owner id from "
                + "0 to 255 (set-owner IPA SIZE OWNER)");
        assertThat(error("stage2", "set-owner 0 4K host")).isEqualTo(":2: OWNER \"host\" is not a number; expected decimal digits "
                + "or 0x followed by hex digits");
        assertThat(error("stage2", "set-owner 0x10000000000 4K 1")).isEqualTo(":2: set-owner failed: at 0x10000000000: range "
                + "[0x10000000000, 0x10000001000) is outside the 40-bit input-address space (limit 0x10000000000) (ERANGE); expected a range inside the "
                + "40-bit IPA space [0, 0x10000000000)");
        assertThat(error("stage2", "expect-owner 0x1000")).isEqualTo(":2: expect-owner is missing OWNER; expected expect-owner "
                + "ADDR OWNER");
        assertThat(error("stage2", "expect-owner 0x1000 300")).isEqualTo(":2: OWNER 300 is outside 0..255; expected an owner id "
                + "from 0 to 255 (expect-owner ADDR OWNER)");
    }

    @Test
    void idmapGreedy() throws Exception {
        assertThat(error("stage2", "idmap-greedy 0 rw 0 4K")).isEqualTo(":2: idmap-greedy needs an identity-map table and the "
                + "stage2 line (line 1) has no idmap option; expected \"stage2 ... idmap\"");
        assertThat(error("stage2 idmap", "idmap-greedy 0x1000 rw 0x1000")).isEqualTo(":2: idmap-greedy is missing RANGE-END; "
                + "expected idmap-greedy ADDR PROT RANGE-START RANGE-END");
        assertThat(error("stage2 idmap", "idmap-greedy 0x1000 rw 0x2000 0x1000")).isEqualTo(":2: idmap-greedy range [0x2000, "
                + "0x1000) is empty or reversed; expected RANGE-START below RANGE-END (the range is [RANGE-START, RANGE-END))");
        assertThat(error("stage2 idmap", "idmap-greedy 0x0 rw 0x1000 0x2000")).isEqualTo(":2: idmap-greedy ADDR 0x0 is outside "
                + "the range [0x1000, 0x2000); expected RANGE-START <= ADDR < RANGE-END");
        assertThat(error("stage2 idmap", "idmap-greedy 0x1000 rw 0x1000 0x20000000000")).isEqualTo(":2: idmap-greedy range "
                + "[0x1000, 0x20000000000) reaches past the 40-bit IPA space; expected a range inside [0, 0x10000000000)");
        assertThat(error("stage2 idmap", "idmap-greedy 0x1000 rz 0x1000 0x2000")).isEqualTo(":2: prot: \"rz\" has unknown "
                + "permission 'z'; expected letters r, w, x (or px, ux), or none");
        // Well-formed, but ADDR's page is annotated: the library's EPERM, at run time.
        assertThat(error("stage2 idmap", "set-owner 0x1000 4K 2", "idmap-greedy 0x1000 rw 0x1000 0x2000")).isEqualTo(":3: "
                + "idmap-greedy failed: at 0x1000 level 3: idmapGreedy: addr 0x1000 cannot be mapped: its page overlaps the "
                + "pinned entry [0x1000, 0x2000) at level 3, an annotation (pte 0x8, owner 2) (EPERM); expected ADDR's own "
                + "page free of mappings with other attributes and of owner annotations");
        assertThat(error("stage2 idmap", "map 0x1000 4K 0x2000 rw")).isEqualTo(":2: map failed: pa: 0x2000 differs from ipa "
                + "0x1000 in an identity-mapped table (EINVAL); expected IPA, SIZE and PA aligned to the 4k granule and a prot "
                + "the stage-2 table accepts (idmap table: PA equal to IPA)");
        assertThat(error("hyp idmap")).isEqualTo(":1: unknown hyp option \"idmap\"; expected granule=4k|16k|64k, va-bits=N, "
                + "mem-base=ADDR, mem-size=SIZE, checking");
    }

    @Test
    void coalescePolicyAndCounters() throws Exception {
        assertThat(error("stage2", "coalesce-policy")).isEqualTo(":2: coalesce-policy is missing POLICY; expected "
                + "coalesce-policy install-first|unmap-first|legacy");
        assertThat(error("stage2", "coalesce-policy sideways")).isEqualTo(":2: coalesce policy \"sideways\" is unknown; expected "
                + "install-first, unmap-first or legacy");
        assertThat(error("stage2", "coalesce-policy unmap-first now")).isEqualTo(":2: coalesce-policy has an extra argument "
                + "\"now\"; expected coalesce-policy install-first|unmap-first|legacy");
        assertThat(error("stage2", "counters all")).isEqualTo(":2: counters has an extra argument \"all\"; expected counters");
    }

    @Test
    void expectLeaf() throws Exception {
        assertThat(error("stage2", "expect-leaf 0x1000")).isEqualTo(":2: expect-leaf is missing \"level\" and N; expected "
                + "expect-leaf ADDR level N");
        assertThat(error("stage2", "expect-leaf 0x1000 lvl 3")).isEqualTo(":2: expect-leaf has \"lvl\" where \"level\" belongs; "
                + "expected expect-leaf ADDR level N");
        assertThat(error("stage2", "expect-leaf 0x1000 level 4")).isEqualTo(":2: leaf level \"4\" is not a level; expected a "
                + "level from -1 to 3");
        assertThat(error("stage2", "expect-leaf 0x1000 level 3 page")).isEqualTo(":2: expect-leaf has an extra argument "
                + "\"page\"; expected expect-leaf ADDR level N");
    }

    @Test
    void syntaxErrorsStopTheRunBeforeAnythingRuns() throws Exception {
        String f = Cli.scenario(dir, "late.scen", "stage2", "map 0x40000000 2M 0x80000000 rw", "counters", "mkold 0x40000000");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo(f + ":4: mkold is missing SIZE; expected mkold IPA SIZE\n");
    }
}
