package dev.ptlab.conformance;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The external tools: GNU binutils for AArch64 to build the probe, {@code qemu-system-aarch64} to
 * run it. Missing tools fail the test with a message saying what to install (never a skip: CI
 * must run this test; {@code .ci/run} installs them).
 */
final class Qemu {
    static final String AS = "aarch64-linux-gnu-as";
    static final String LD = "aarch64-linux-gnu-ld";
    static final String QEMU = "qemu-system-aarch64";
    /** Where the probe reads its case list (the linker script and probe.S agree). */
    static final long DATA = 0x4020_0000L;
    /** Bytes of DATA every hyp table maps read-write for the probe. */
    static final long DATA_WINDOW = 8L << 20;
    /** The probe's code window, mapped read-execute in every hyp table. */
    static final long CODE = 0x4010_0000L, CODE_WINDOW = 1L << 20;
    /** First byte of the table images; RAM is [0x40000000, 0x40000000 + RAM). */
    static final long IMAGES = 0x4400_0000L;
    static final long RAM = 3L << 30;

    private Qemu() {}

    /** The tool's path on PATH, or an AssertionError naming the Debian package to install. */
    static String require(String tool, String debianPackage) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(dir, tool);
            if (Files.isExecutable(p)) return p.toString();
        }
        throw new AssertionError(tool + " is not installed (PATH=" + System.getenv("PATH") + "); the QEMU conformance test"
                + " needs it: apt-get install --no-install-recommends " + debianPackage + " (.ci/run installs it)");
    }

    /** Assembles and links the probe into {@code dir}; returns the ELF. */
    static Path buildProbe(Path dir) throws IOException, InterruptedException {
        String as = require(AS, "binutils-aarch64-linux-gnu");
        String ld = require(LD, "binutils-aarch64-linux-gnu");
        Path src = copyResource("probe.S", dir);
        Path script = copyResource("probe.ld", dir);
        Path obj = dir.resolve("probe.o");
        Path elf = dir.resolve("probe.elf");
        run(dir, 60, as, "-o", obj.toString(), src.toString());
        run(dir, 60, ld, "--no-warn-rwx-segments", "-T", script.toString(), "-o", elf.toString(), obj.toString());
        return elf;
    }

    private static Path copyResource(String name, Path dir) throws IOException {
        try (InputStream in = Qemu.class.getResourceAsStream(name)) {
            if (in == null) throw new IOException("test resource " + name + " is missing");
            Path p = dir.resolve(name);
            Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
            return p;
        }
    }

    record Exit(int status, String output) {}

    /**
     * Boots the probe on the virt machine at EL2 with the data and image blobs loaded; returns
     * QEMU's exit status (the probe's SYS_EXIT code: 0 done, 3 an exception, 4 a semihosting
     * failure) and console output.
     */
    static Exit boot(Path dir, Path elf, Path data, Path images, int timeoutSeconds) throws IOException, InterruptedException {
        String qemu = require(QEMU, "qemu-system-arm");
        return exec(dir, timeoutSeconds, qemu,
                "-M", "virt,virtualization=on", "-cpu", "max", "-m", (RAM >> 20) + "M", "-smp", "1",
                "-nographic", "-monitor", "none", "-nic", "none", "-no-reboot",
                "-semihosting-config", "enable=on,target=native",
                "-kernel", elf.toString(),
                "-device", "loader,file=" + data + ",addr=0x" + Long.toHexString(DATA) + ",force-raw=on",
                "-device", "loader,file=" + images + ",addr=0x" + Long.toHexString(IMAGES) + ",force-raw=on");
    }

    /** Runs a command in {@code dir}; returns stdout+stderr, or fails with them and the exit status. */
    static String run(Path dir, int timeoutSeconds, String... cmd) throws IOException, InterruptedException {
        Exit e = exec(dir, timeoutSeconds, cmd);
        if (e.status() != 0) {
            throw new AssertionError(String.join(" ", cmd) + " exited with status " + e.status() + "; output:\n" + e.output());
        }
        return e.output();
    }

    static Exit exec(Path dir, int timeoutSeconds, String... cmd) throws IOException, InterruptedException {
        List<String> c = new ArrayList<>(List.of(cmd));
        Path log = dir.resolve("command.log");
        Process p = new ProcessBuilder(c).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.PIPE).start();
        p.getOutputStream().close();
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            p.waitFor();
            throw new AssertionError(String.join(" ", c) + " did not finish in " + timeoutSeconds + " s; output:\n"
                    + Files.readString(log, StandardCharsets.UTF_8));
        }
        return new Exit(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }
}
