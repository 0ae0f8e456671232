package dev.ptlab.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * docs/export-and-conformance.md's "Boot it in QEMU yourself": its shell script, pasted as the
 * page says, prints the two PAR_EL1 values the page shows. {@code ./ptlab} is the CLI on this
 * test's class path, and {@code /tmp} a temporary directory.
 */
class DocsQemuHowToTest {
    private static final Path PAGE = Path.of("../docs/export-and-conformance.md");

    @TempDir
    Path tmp;

    @Test
    void theHowToPrintsWhatThePageShows() throws IOException, InterruptedException {
        Qemu.require("aarch64-linux-gnu-as", "binutils-aarch64-linux-gnu");
        Qemu.require(Qemu.QEMU, "qemu-system-arm");
        List<String> lines = Files.readAllLines(PAGE);
        int section = lines.indexOf("## Boot it in QEMU yourself");
        assertThat(section).as("the how-to's heading").isNotNegative();
        String script = block(lines, lines.subList(section, lines.size()).indexOf("```sh") + section);
        int after = lines.subList(section, lines.size()).indexOf("After the two lines of `ptlab export`, it prints") + section;
        assertThat(after).as("the sentence before the shown output").isGreaterThan(section);
        String shown = block(lines, after + 2);

        Path ptlab = tmp.resolve("ptlab");
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        Files.writeString(ptlab, "#!/bin/sh\nexec '" + Path.of(System.getProperty("java.home"), "bin", "java") + "' -cp '" + classPath
                + "' dev.ptlab.cli.Main \"$@\"\n");
        Files.setPosixFilePermissions(ptlab, Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_EXECUTE));
        Path sh = tmp.resolve("howto.sh");
        Files.writeString(sh, script.replace("/tmp/", tmp + "/").replace("./ptlab ", ptlab + " "));

        Qemu.Exit e = Qemu.exec(tmp, 180, "bash", sh.toString());
        assertThat(e.status()).as(e.output()).isZero();
        assertThat(e.output()).contains("export: stage-2 table").endsWith(shown);
    }

    /** The text of the code block whose opening fence is at {@code fence}. */
    private static String block(List<String> lines, int fence) {
        assertThat(lines.get(fence)).startsWith("```");
        StringBuilder text = new StringBuilder();
        for (int i = fence + 1; !lines.get(i).equals("```"); i++) text.append(lines.get(i)).append('\n');
        return text.toString();
    }
}
