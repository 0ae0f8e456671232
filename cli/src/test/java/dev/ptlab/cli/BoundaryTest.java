package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Issue 18's inputs that reached the user as stack traces or raw exception text: each now gives
 * one line and a documented exit code (docs/cli.md, "Exit codes"). Every case here failed on the
 * old code (a trace, a Java class name, a silently ignored option, or a different exit code).
 */
class BoundaryTest {
    @TempDir
    Path dir;

    /** Exit code {@code exit}, nothing on stdout, exactly one stderr line, no trace; returns the line. */
    private static String oneLine(int exit, Cli.Result r) {
        assertThat(r.exit()).as(r.toString()).isEqualTo(exit);
        assertThat(r.err()).as(r.toString()).endsWith("\n").doesNotContain("\tat ", "Exception", "[picocli WARN]");
        assertThat(r.err().split("\n")).as(r.toString()).hasSize(1);
        return r.err().trim();
    }

    private String scenario(String... lines) throws Exception {
        return Cli.scenario(dir, "s.txt", lines);
    }

    @Test
    void vmTableMemoryTooSmallOrTooLargeIsTheLinesError() throws Exception {
        String f = scenario("vm mem-size=4K");
        // A 40-bit 4K stage-2 table starts at level 1 with 2 concatenated root frames (512 x 1G per frame = 39
        // bits); 4K is one frame. Old: a 22-line PageTableException trace from building the VM while parsing.
        assertThat(oneLine(2, Cli.run("run", f))).isEqualTo(f + ":1: table memory mem-size=4K holds 1 frame and the root table "
                + "needs 2 aligned contiguous frames; expected mem-size= of at least 8K, e.g. 256M");
        // 64T / 4K = 2^34 frames, above the 2^31 - 9 a table memory can index. Old (stage2): blamed alignment.
        for (String table : new String[] {"vm mem-size=64T", "stage2 mem-size=64T"}) {
            f = scenario(table);
            assertThat(oneLine(2, Cli.run("run", f))).isEqualTo(f + ":1: table memory mem-size=64T is 17179869184 frames of 4K, "
                    + "more than the 2147483639 a table memory can have; expected mem-size= below 8T");
        }
    }

    @Test
    void aVmLineIsValidatedWithoutBuildingTheVm() throws Exception {
        // 1T of table memory is 2^28 frames: building it (as the vm line used to, to validate itself) takes
        // 2^28 x 17 bytes of bookkeeping before line 2's typo is reported.
        String f = scenario("vm mem-size=1T", "mpa 0 4K 0 rw");
        String line = oneLine(2, Cli.run("run", f));
        if (Failures.exceedsHeap((1L << 28) * 17)) {
            assertThat(line).startsWith(f + ":1: out of memory: the Java heap is ");
        } else {
            assertThat(line).startsWith(f + ":2: unknown command \"mpa\"");
        }
    }

    @Test
    void tableMemoryIsCheckedAgainstTheHeap() throws Exception {
        // 4T / 4K = 2^30 frames x 17 bytes of bookkeeping = 17G: more than the test JVM's heap on most machines.
        Assumptions.assumeTrue(Failures.exceedsHeap((1L << 30) * 17));
        String f = scenario("stage2 mem-size=4T");
        String line = oneLine(2, Cli.run("dump", f));
        assertThat(line).startsWith(f + ":1: out of memory: the Java heap is " + Numbers.bytes(Runtime.getRuntime().maxMemory())
                + " and table memory mem-size=4T needs 17G of it for frame bookkeeping (17 bytes per 4K frame); expected a "
                + "smaller size, or a larger heap: PTLAB_JAVA_OPTS=-Xmx");
    }

    @Test
    void workloadOptionsAreRefusedByCompareAsByRun() {
        String[][] cases = {{"--workload", "random", "--hot", "0"}, {"--workload", "random", "--hot", "NaN"},
            {"--workload", "random", "--accesses", "-1"}, {"--workload", "device-atomics", "--hot", "2"},
            {"--workload", "device-atomics", "--backing", "hugetlb", "--memory", "1G"}};
        String[] expected = {"--hot: 0.0 is outside (0, 1]", "--hot: NaN is outside (0, 1]", "--accesses: -1 is negative",
            "--hot: 2.0 is outside (0, 1]", "--backing: hugetlb pages cannot be made device-exclusive"};
        for (int i = 0; i < cases.length; i++) {
            String[] run = join(new String[] {"run"}, cases[i]);
            String[] compare = join(new String[] {"compare", "--policy", "fwb=on,off"}, cases[i]);
            assertThat(oneLine(2, Cli.run(run))).startsWith("ptlab run: " + expected[i]);
            assertThat(oneLine(2, Cli.run(compare))).startsWith("ptlab compare: " + expected[i]);
        }
    }

    private static String[] join(String[] a, String[] b) {
        String[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    @Test
    void optionsAWorkloadDoesNotReadAreRefused() {
        // --devices on the selftest used to be ignored silently.
        assertThat(oneLine(2, Cli.run("run", "--devices", "99"))).isEqualTo("ptlab run: --devices: applies to --workload "
                + "device-atomics, not selftest; expected it left out");
        assertThat(oneLine(2, Cli.run("run", "--workload", "random", "--partition"))).startsWith("ptlab run: --partition applies to "
                + "the selftest workload only");
        // An invalid --coalesce beside --policy coalesce=... used to be ignored (the policy overrode it).
        assertThat(oneLine(2, Cli.run("compare", "--policy", "coalesce=install-first,legacy", "--coalesce", "bogus")))
                .startsWith("ptlab compare: --coalesce: conflicts with --policy coalesce=install-first,legacy");
    }

    @Test
    void benchRepsAreBounded() {
        // Old: long[2147483647] -> OutOfMemoryError trace.
        assertThat(oneLine(2, Cli.run("bench", "--reps", "2147483647")))
                .isEqualTo("ptlab bench: --reps: 2147483647 is outside 1..10000 (try ptlab bench --help)");
        assertThat(oneLine(2, Cli.run("bench", "--warmup", "-1"))).startsWith("ptlab bench: --warmup: -1 is outside 0..10000");
    }

    @Test
    void integerOptionsTakeHexAndSeparatorsAsDocumented() {
        CommandLine.ParseResult p = Main.commandLine().parseArgs("run", "--vcpus", "0x1_0", "--ipa-bits", "0x28", "--seed", "1_000");
        // 0x1_0 = 16, 0x28 = 40.
        assertThat((int) p.subcommand().matchedOptionValue("--vcpus", 0)).isEqualTo(16);
        assertThat((int) p.subcommand().matchedOptionValue("--ipa-bits", 0)).isEqualTo(40);
        assertThat((long) p.subcommand().matchedOptionValue("--seed", 0L)).isEqualTo(1000L);
        p = Main.commandLine().parseArgs("bench", "--reps", "0xa");
        assertThat((int) p.subcommand().matchedOptionValue("--reps", 0)).isEqualTo(10);
        assertThat(oneLine(2, Cli.run("run", "--vcpus", "0x"))).startsWith("ptlab run: --vcpus: \"0x\" is not an integer");
        assertThat(oneLine(2, Cli.run("run", "--vcpus", "0x1_0000_0000"))).startsWith("ptlab run: --vcpus: \"0x1_0000_0000\" is outside");
    }

    @Test
    void compareNeitherOffersNorTakesJson() {
        assertThat(Cli.run("compare", "--help").out()).doesNotContain("--json");
        assertThat(Cli.run("run", "--help").out()).contains("--json");
        assertThat(oneLine(2, Cli.run("compare", "--policy", "fwb=on,off", "--json", "x.json")))
                .isEqualTo("ptlab compare: --json: unknown option (try ptlab compare --help)");
    }

    @Test
    void jsonToAnUnwritablePathIsRefusedBeforeTheRun() {
        Path nowhere = dir.resolve("missing").resolve("m.json");
        Cli.Result r = Cli.run("run", "--memory", "2M", "--vcpus", "1", "--json", nowhere.toString());
        assertThat(oneLine(2, r)).isEqualTo("ptlab run: --json: " + nowhere + ": no such directory " + nowhere.getParent()
                + "; expected a file in an existing directory");
        assertThat(r.out()).as("nothing ran").isEmpty();
        assertThat(oneLine(2, Cli.run("run", "--memory", "2M", "--json", dir.toString()))).endsWith("is a directory; expected a file name");
    }

    @Test
    void exportRefusesAnEmptyOut() throws Exception {
        String f = scenario("stage2", "map 0 4K 0x48000000 rw");
        assertThat(oneLine(2, Cli.run("export", f, "--base", "0x48000000", "--out", "")))
                .isEqualTo("ptlab export: --out: is empty; expected a directory name");
        assertThat(Path.of(ExportCommand.IMAGE)).doesNotExist();
    }

    @Test
    void fileProblemsInPlainWords() throws Exception {
        // Old: "cannot read (java.io.IOException: Is a directory)".
        assertThat(oneLine(2, Cli.run("run", dir.toString()))).isEqualTo(dir + ": is a directory; expected a scenario file");
        Path missing = dir.resolve("nope");
        assertThat(oneLine(2, Cli.run("dump", missing.toString())))
                .isEqualTo(missing + ": cannot read (no such file or directory); expected a readable scenario file");
        // Old: MalformedInputException. The bad byte's line is named: 0xff is never UTF-8.
        Path bad = dir.resolve("bad.txt");
        Files.write(bad, "stage2\n# caf\u00e9 ok\nmap 0 4K \u0000".replace("\u0000", "").getBytes(StandardCharsets.UTF_8));
        Files.write(bad, concat(Files.readAllBytes(bad), new byte[] {(byte) 0xff, '\n'}));
        assertThat(oneLine(2, Cli.run("run", bad.toString())))
                .isEqualTo(bad + ":3: byte 0xff is not UTF-8 text; expected a UTF-8 text file");
        // Old: FileAlreadyExistsException from createDirectories.
        Path file = dir.resolve("plain");
        Files.writeString(file, "x");
        String f = scenario("stage2");
        assertThat(oneLine(2, Cli.run("export", f, "--base", "0x48000000", "--out", file.resolve("sub").toString())))
                .startsWith("ptlab export: --out: cannot write to " + file.resolve("sub") + " (");
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    @Test
    void aByteOrderMarkIsSkippedAndStdinDecodesAsFilesDo() throws Exception {
        byte[] bom = {(byte) 0xef, (byte) 0xbb, (byte) 0xbf};
        Path withBom = dir.resolve("bom.txt");
        Files.write(withBom, concat(bom, "stage2\nmap 0 4K 0x1000 rw\n".getBytes(StandardCharsets.UTF_8)));
        Path plain = dir.resolve("plain.txt");
        Files.write(plain, "stage2\nmap 0 4K 0x1000 rw\n".getBytes(StandardCharsets.UTF_8));
        // Old: unknown command "\ufeffstage2".
        Cli.Result a = Cli.run("run", withBom.toString());
        assertThat(a.exit()).as(a.toString()).isZero();
        assertThat(a.out()).isEqualTo(Cli.run("run", plain.toString()).out());
        // Standard input: the same bytes give the same text, and the same error for a bad byte (old: stdin
        // replaced it with U+FFFD while files threw MalformedInputException).
        byte[] badBytes = concat(bom, concat("stage2\n".getBytes(StandardCharsets.UTF_8), new byte[] {(byte) 0xc3, '\n'}));
        assertThat(ScenarioSource.read("-", new ByteArrayInputStream(concat(bom, Files.readAllBytes(plain)))))
                .isEqualTo(ScenarioSource.read(withBom.toString(), null)).isEqualTo("stage2\nmap 0 4K 0x1000 rw\n");
        Path badFile = dir.resolve("bad2.txt");
        Files.write(badFile, badBytes);
        String fromStdin = message(() -> ScenarioSource.read("-", new ByteArrayInputStream(badBytes)));
        String fromFile = message(() -> ScenarioSource.read(badFile.toString(), null));
        assertThat(fromStdin).isEqualTo("<stdin>:2: byte 0xc3 is not UTF-8 text; expected a UTF-8 text file");
        assertThat(fromFile).isEqualTo(badFile + ":2: byte 0xc3 is not UTF-8 text; expected a UTF-8 text file");
    }

    private interface Reader {
        String read() throws Exception;
    }

    private static String message(Reader r) {
        try {
            r.read();
            throw new AssertionError("no error");
        } catch (Exception e) {
            return e.getMessage();
        }
    }

    @Test
    void coalescePolicyLegacyIsUnmapFirst() throws Exception {
        String legacy = Cli.run("run", scenario("stage2", "coalesce-policy legacy")).out();
        String unmapFirst = Cli.run("run", scenario("stage2", "coalesce-policy unmap-first")).out();
        assertThat(legacy).contains("coalesce-policy unmap-first:").isEqualTo(unmapFirst);
    }

    @Test
    void usageErrorsAreOneLine() {
        assertThat(oneLine(2, Cli.run("run", "--vcpus"))).isEqualTo("ptlab run: --vcpus: needs a value (try ptlab run --help)");
        assertThat(oneLine(2, Cli.run("frob"))).startsWith("ptlab: frob: unexpected argument (try ptlab --help)");
        assertThat(oneLine(2, Cli.run())).startsWith("ptlab: COMMAND: missing");
    }

    /** A command that fails as a bug would, to see what the one mapping does with it. */
    @Command(name = "boom")
    static final class Boom implements Callable<Integer> {
        @CommandLine.Option(names = "--debug")
        boolean debug;

        @CommandLine.Option(names = "--oom")
        boolean oom;

        @CommandLine.Option(names = "--memory")
        String memory;

        @Override
        public Integer call() {
            if (oom) throw new OutOfMemoryError("Java heap space");
            throw new NullPointerException("x is null");
        }
    }

    private static Cli.Result boom(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new Boom());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        return new Cli.Result(Failures.execute(cl, args), out.toString(), err.toString());
    }

    @Test
    void internalErrorsAreExitThreeWithTheTraceOnlyUnderDebug() {
        Cli.Result r = boom();
        assertThat(r.exit()).isEqualTo(3);
        assertThat(r.err()).doesNotContain("\tat ").endsWith("\n").hasLineCount(1);
        // The one place a Java class name is shown: what to put in the report.
        assertThat(r.err().trim()).startsWith("boom: internal error (NullPointerException at BoundaryTest.java:")
                .endsWith("please report it with the command line and input (--debug prints the stack trace)");
        Cli.Result debug = boom("--debug");
        assertThat(debug.exit()).isEqualTo(3);
        assertThat(debug.err()).contains("internal error (NullPointerException", "\tat dev.ptlab.cli.BoundaryTest$Boom.call");
    }

    @Test
    void outOfMemoryAnywhereIsExitTwoNamingTheHeap() {
        // Old: an OutOfMemoryError trace and exit 1, which the docs call a failed expectation.
        assertThat(oneLine(2, boom("--oom"))).isEqualTo("boom: out of memory: the Java heap is "
                + Numbers.bytes(Runtime.getRuntime().maxMemory()) + "; expected a smaller size, or a larger heap: PTLAB_JAVA_OPTS=-Xmx"
                + Math.max(2, (2 * Runtime.getRuntime().maxMemory() + (1L << 30) - 1) >>> 30) + "g ./ptlab ...");
        // What needed the heap, when an option says.
        assertThat(oneLine(2, boom("--oom", "--memory", "64G"))).startsWith("boom: out of memory: the Java heap is ")
                .contains(" and the simulation of --memory 64G needed more; expected a smaller size");
    }
}
