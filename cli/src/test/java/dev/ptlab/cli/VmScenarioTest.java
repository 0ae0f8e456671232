package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Scenario files in VM mode: {@code vm}, {@code memslot}, {@code vcpu-access}, {@code dirty-log}. */
class VmScenarioTest {
    /** The example the README shows (paths are relative to the cli module, Maven's working directory). */
    static final String EXAMPLE = "src/test/resources/scenarios/vm-example.scenario";

    @TempDir
    Path dir;

    @Test
    void exampleShowsThpFaultDirtyLoggingSplitReadOnlySlotAndAddressSizeError() {
        assertThat(Path.of(EXAMPLE)).exists();
        Cli.Result r = Cli.run("run", EXAMPLE);
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.err()).isEmpty();
        assertThat(r.out().split("\n")).containsExactly(
                "vm: 2 vCPUs (vcpu0..vcpu1), faults shared, coalesce install-first, eager split off, hardware AF; stage-2 table: 4k granule, "
                        + "40-bit IPA, levels 1..3, 2 concatenated root frames, PA48 descriptors, vmid 1, fwb, range-tlbi; "
                        + "table memory [0x7f0000000000, +1G); checking on",
                "memslot 0: 0x40000000-0x407fffff (8M) -> host 0x100000000, thp backing (faults map up to 2M blocks), read-write",
                "memslot 1: 0x80000000-0x8000ffff (64K) -> host 0x200000000, page backing (faults map up to 4K pages), "
                        + "read-only (writes exit to the VMM as MMIO)",
                // THP: one write fault maps the whole 2M block; the other vCPU uses it without faulting.
                "vcpu0 write 0x40001000 -> 0x100001000 (1 fault: translation L1): ok",
                "expect-leaf 0x40000000 level 2: ok",
                "vcpu1 read 0x40123458 -> 0x100123458 (no fault): ok",
                // Dirty logging: write-protect plus one range TLBI; the write fault maps one page in the block's place.
                "dirty-log enable slot 0 (0x40000000-0x407fffff): logging on; write permission removed from 1 leaf, 1 range TLBI; "
                        + "no eager split (write faults split blocks)",
                "vcpu1 write 0x40003000 -> 0x100003000 (1 fault: permission L2): ok",
                "vcpu1 write 0x40004000 -> 0x100004000 (1 fault: translation L3): ok",
                "vcpu0 read 0x40005000 -> 0x100005000 (1 fault: translation L3): ok",
                "expect-leaf 0x40003000 level 3: ok",
                "dirty-log get slot 0 (0x40000000-0x407fffff): 2 dirty pages: 0x40003000-0x40004fff; write-protected again "
                        + "(2 leaves, 1 range TLBI)",
                "vcpu1 write 0x40003000 -> 0x100003000 (1 fault: permission L3): ok",
                "dirty-log get slot 0 (0x40000000-0x407fffff): 1 dirty page: 0x40003000-0x40003fff; left writable (keep)",
                "dirty-log disable slot 0 (0x40000000-0x407fffff): logging off; later faults map blocks again (coalescing)",
                "vcpu0 read 0x40006000 -> 0x100006000 (1 fault: translation L3): ok",
                "expect-leaf 0x40000000 level 2: ok",
                "vcpu0 read 0x80000000 -> 0x200000000 (1 fault: translation L1): ok",
                "vcpu0 write 0x80000000 -> mmio exit (1 fault: permission L3): ok",
                "vcpu0 read 0x9000000 -> mmio exit (1 fault: translation L1): ok",
                "vcpu1 read 0x10000000000 -> address-size error (1 fault: translation L0): ok",
                "expect 0x40001000 read -> 0x100001000: ok",
                "counters: TLBIs 5 (by IPA 1, local 1, range 3, VMID 0)",
                "  table: BBMs 2, coalesced 1, invalid-window steps 0, splits 0, attribute updates 4, raced 0; leaves installed 6, "
                        + "removed 0; tables installed 4, freed 1",
                "  CMOs: D-cache 0 ops (0), I-cache 0 ops (0)",
                // Peak: 2 root frames + each vCPU's memory cache filled to its capacity of 40 on its
                // first fault (kvm_mmu_topup_memory_cache; the 4 tables come out of those caches,
                // which never drop below the minimum of 2 here, so no second fill): 2 + 2 x 40.
                "  table frames: 5 in use (20K), peak 82 (328K, memory-cache spares included)",
                "summary: 23 commands; expectations 15 passed, 0 failed; table frames 5 (20K); TLBIs 5 (1 by IPA, 3 range, "
                        + "1 local); BBMs 2; CMOs 0; vCPUs: 11 accesses, 10 stage-2 faults, 2 MMIO exits, 1 address-size error");
    }

    @Test
    void dumpAndTranslateReadAVmScenario() {
        Cli.Result d = Cli.run("dump", EXAMPLE);
        assertThat(d.exit()).as(d.toString()).isZero();
        assertThat(d.out()).containsPattern("0x40000000-0x401fffff +1 x 2M block -> 0x100000000 rw\n")
                .containsPattern("0x80000000-0x80000fff +1 x 4K page -> 0x200000000 r\n");
        Cli.Result t = Cli.run("translate", EXAMPLE, "-a", "write", "0x80000000");
        assertThat(t.out()).isEqualTo("0x80000000 write -> fault permission level 3\n");
    }

    @Test
    void failedVcpuAccessExpectationIsCountedAndNamesTheLine() throws Exception {
        String f = Cli.scenario(dir, "v.txt", "vm vcpus=2", "memslot 0x40000000 2M page 0x80000000",
                "vcpu-access vcpu1 0x40000000 read -> 0x80000000",
                "vcpu-access 0 0x50000000 write -> 0x90000000",
                "vcpu-access 1 0x40001000 write -> address-size");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isEqualTo(1);
        assertThat(r.out())
                .contains("vcpu1 read 0x40000000 -> 0x80000000 (1 fault: translation L1): ok\n")
                .contains("vcpu0 write 0x50000000 -> mmio exit (1 fault: translation L2): FAILED, expected -> 0x90000000\n")
                .contains("vcpu1 write 0x40001000 -> 0x80001000 (1 fault: translation L3): FAILED, expected -> address-size error\n")
                .contains("expectations 1 passed, 2 failed");
        assertThat(r.err()).isEqualTo(f + ":4: expected vcpu0 write 0x50000000 -> 0x90000000, got mmio exit\n"
                + f + ":5: expected vcpu1 write 0x40001000 -> address-size error, got 0x80001000\n");
    }

    @Test
    void accessWithoutExpectationOnlyPrints() throws Exception {
        String f = Cli.scenario(dir, "v.txt", "vm", "memslot 0 64K page 0x80000000", "vcpu-access 0 0x1000 exec");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out()).contains("vcpu0 exec 0x1000 -> 0x80001000 (1 fault: translation L1)\n")
                .contains("expectations 0 passed, 0 failed");
    }

    @Test
    void eagerSplitAndGetWithoutLogging() throws Exception {
        String f = Cli.scenario(dir, "v.txt", "vm eager-split=2M", "memslot 0x40000000 4M thp 0x80000000",
                "vcpu-access 0 0x40000000 write", "vcpu-access 0 0x40200000 read",
                "dirty-log get 0", "dirty-log enable 0", "expect-leaf 0x40000000 level 3",
                "vcpu-access 0 0x40000000 write -> 0x80000000", "vcpu-access 0 0x40001000 write -> 0x80001000",
                "vcpu-access 0 0x40201000 write -> 0x80201000", "dirty-log get 0", "dirty-log get 0");
        Cli.Result r = Cli.run("run", f);
        assertThat(r.exit()).as(r.toString()).isZero();
        assertThat(r.out())
                .contains("dirty-log get slot 0 (0x40000000-0x403fffff): no dirty pages (logging is off)\n")
                .contains("dirty-log enable slot 0 (0x40000000-0x403fffff): logging on; write permission removed from 2 leaves, "
                        + "3 TLBIs (2 by IPA, 1 range); eager split in 2M chunks: 2 blocks split, 2 tables installed\n")
                .contains("expect-leaf 0x40000000 level 3: ok")
                .contains("vcpu0 write 0x40000000 -> 0x80000000 (1 fault: permission L3): ok")
                .contains("dirty-log get slot 0 (0x40000000-0x403fffff): 3 dirty pages: 0x40000000-0x40001fff, "
                        + "0x40201000-0x40201fff; write-protected again (3 leaves, 1 range TLBI)\n")
                .contains("dirty-log get slot 0 (0x40000000-0x403fffff): no dirty pages\n");
    }

    // ------------------------------------------------------------------------------------------
    // errors: one line file:line: ...; expected ..., exit 2

    private String error(String... lines) throws Exception {
        return Cli.scenarioError(dir, lines);
    }

    @Test
    void badBacking() throws Exception {
        assertThat(error("vm", "memslot 0x40000000 2M huge 0x0"))
                .isEqualTo(":2: BACKING \"huge\" is not a backing; expected page, thp or hugetlb "
                        + "(memslot GPA SIZE BACKING HOSTPA [ro])");
    }

    @Test
    void vmCommandsNeedAVm() throws Exception {
        assertThat(error("memslot 0x40000000 2M thp 0x0"))
                .isEqualTo(":1: memslot before any vm line; expected a \"vm ...\" line first");
        assertThat(error("# a VM scenario", "", "dirty-log enable 0"))
                .isEqualTo(":3: dirty-log before any vm line; expected a \"vm ...\" line first");
        assertThat(error("stage2", "memslot 0x40000000 2M thp 0x0"))
                .isEqualTo(":2: memslot needs a VM and the table (line 1) is a plain stage2 table; expected a \"vm ...\" line "
                        + "instead of \"stage2 ...\" for it");
        assertThat(error("hyp", "vcpu-access 0 0x1000 read"))
                .isEqualTo(":2: vcpu-access needs a VM and the table (line 1) is a plain hyp table; expected a \"vm ...\" line "
                        + "instead of \"hyp ...\" for it");
        assertThat(error("map 0 4K 0 rw", "vm"))
                .isEqualTo(":1: map before any table line; expected a \"stage2 ...\", \"hyp ...\" or \"vm ...\" line first");
        assertThat(error("vm", "stage2"))
                .isEqualTo(":2: a second table line (the vm table is already defined at line 1); expected one table per scenario");
        assertThat(error("stage2", "vm"))
                .isEqualTo(":2: a second table line (the stage2 table is already defined at line 1); expected one table per scenario");
        assertThat(error("vm", "idmap-greedy 0 rw 0 0x1000"))
                .isEqualTo(":2: idmap-greedy needs an identity-map table and the vm line (line 1) has no idmap option; "
                        + "expected \"stage2 ... idmap\"");
    }

    @Test
    void unknownSlot() throws Exception {
        assertThat(error("vm", "memslot 0x40000000 2M thp 0x0", "dirty-log get 1"))
                .isEqualTo(":3: dirty-log SLOT 1 is not a memslot (the memslot lines so far create slot 0); expected a memslot id "
                        + "from 0 to 0 (memslot lines number their slots 0, 1, ... in order)");
        assertThat(error("vm", "dirty-log enable 0"))
                .isEqualTo(":2: dirty-log SLOT 0: no memslot exists yet; expected a memslot line before dirty-log");
    }

    @Test
    void wrongAccessWord() throws Exception {
        assertThat(error("vm", "memslot 0x40000000 2M thp 0x0", "vcpu-access 0 0x40000000 wrte"))
                .isEqualTo(":3: access \"wrte\" is not one of read, write, exec; expected read, write or exec");
        assertThat(error("vm", "vcpu-access 0 0x40000000 -> mmio"))
                .isEqualTo(":2: vcpu-access is missing ACCESS; expected vcpu-access VCPU ADDR read|write|exec "
                        + "[-> PA | -> mmio | -> address-size]");
        assertThat(error("vm", "vcpu-access 0 0x40000000 read -> mmoi"))
                .isEqualTo(":2: vcpu-access has \"mmoi\" after \"->\"; expected a PA, mmio or address-size "
                        + "(vcpu-access VCPU ADDR read|write|exec [-> PA | -> mmio | -> address-size])");
        assertThat(error("vm", "vcpu-access 0 0x40000000 read ->"))
                .isEqualTo(":2: vcpu-access is missing PA, mmio or address-size after \"->\"; expected vcpu-access VCPU ADDR "
                        + "read|write|exec [-> PA | -> mmio | -> address-size]");
    }

    @Test
    void overlappingSlot() throws Exception {
        assertThat(error("vm", "memslot 0x40000000 2M thp 0x0", "memslot 0x40100000 2M page 0x200000"))
                .isEqualTo(":3: memslot failed: gpa: [0x40100000, 0x40300000) overlaps memslot 0 [0x40000000, 0x40200000) thp "
                        + "at host 0x0; expected GPA, SIZE and HOSTPA aligned to the backing's page size, the slot inside the IPA "
                        + "space and overlapping no other slot");
        assertThat(error("vm", "memslot 0x40000000 3M thp 0x0"))
                .isEqualTo(":2: memslot failed: memory: 0x300000 is not a positive multiple of the thp backing's page size "
                        + "0x200000; expected GPA, SIZE and HOSTPA aligned to the backing's page size, the slot inside the IPA "
                        + "space and overlapping no other slot");
    }

    @Test
    void badVmLineAndArguments() throws Exception {
        assertThat(error("vm eager-split=4K"))
                .isEqualTo(":1: eager-split=4K is not a block size of the 4k granule; "
                        + "expected eager-split=0 or a block size of the 4k granule");
        assertThat(error("vm fault-lock=mutex"))
                .isEqualTo(":1: fault-lock \"mutex\" is unknown; expected fault-lock=shared or write");
        assertThat(error("vm vcpus=0")).isEqualTo(":1: vcpus=0 is outside 1..512; expected vcpus=1..512");
        assertThat(error("vm idmap")).startsWith(":1: unknown vm option \"idmap\"; expected granule=4k|16k|64k, ipa-bits=N");
        assertThat(error("vm vcpus=2", "vcpu-access vcpu2 0 read"))
                .isEqualTo(":2: VCPU vcpu2 does not exist (the vm line, line 1, creates 2 vCPUs: vcpu0..vcpu1); expected a vCPU "
                        + "id from 0 to 1 (vcpus=N on the vm line for more)");
        assertThat(error("vm", "memslot 0 4K page 0 rw"))
                .isEqualTo(":2: unknown memslot flag \"rw\"; expected ro (a read-only slot) or nothing "
                        + "(memslot GPA SIZE BACKING HOSTPA [ro])");
        assertThat(error("vm", "memslot 0 4K page 0", "dirty-log enable 0 keep"))
                .isEqualTo(":3: dirty-log enable has an extra argument \"keep\"; expected dirty-log enable|disable|get SLOT [keep] "
                        + "(keep: only with get)");
        assertThat(error("vm", "memslot 0 4K page 0", "dirty-log clear 0"))
                .isEqualTo(":3: dirty-log action \"clear\" is unknown; expected enable, disable or get "
                        + "(dirty-log enable|disable|get SLOT [keep])");
    }

    @Test
    void tableMemoryRunningOutIsAScenarioError() throws Exception {
        assertThat(error("vm mem-size=8K", "memslot 0x40000000 2M page 0", "vcpu-access 0 0x40000000 read"))
                .startsWith(":3: vcpu-access failed: ")
                .contains("ENOMEM")
                .endsWith("; expected the tables to fit in table memory (raise mem-size= on the vm line)");
    }

    /** docs/scenario-language.md shows the example's command, its text and its real output. */
    @Test
    void readmeShowsTheExampleAndItsOutput() throws Exception {
        String readme = Files.readString(Path.of("../docs/scenario-language.md"));
        assertThat(readme).contains("./ptlab run cli/" + EXAMPLE + "\n");
        assertThat(readme).contains("```\n" + Files.readString(Path.of(EXAMPLE)) + "```\n");
        assertThat(readme).contains("```\n" + Cli.run("run", EXAMPLE).out() + "```\n");
    }
}
