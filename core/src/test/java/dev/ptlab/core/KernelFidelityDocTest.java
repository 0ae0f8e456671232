package dev.ptlab.core;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * {@code docs/kernel-fidelity.md} promises that every row names the test that shows it. This
 * keeps the promise true: each table row has a test column, and every {@code Class.method} named
 * there is a test method that exists in one of the modules' test sources, so renaming or deleting
 * a test breaks the build instead of the document.
 */
class KernelFidelityDocTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final Path DOC = ROOT.resolve("docs/kernel-fidelity.md");
    /** {@code ClassName.methodName} inside backticks, as the document's test column writes them. */
    private static final Pattern TEST_REF = Pattern.compile("`([A-Z]\\w*)\\.(\\w+)`");

    @Test
    void everyRowNamesATestThatExists() throws IOException {
        Map<String, String> sources = testSources();
        List<String> problems = new ArrayList<>();
        int rows = 0;
        List<String> lines = Files.readAllLines(DOC);
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (!line.startsWith("|") || line.startsWith("|--") || line.startsWith("| --")) continue;
            String[] cells = line.split("(?<!\\\\)\\|");
            String last = cells[cells.length - 1].isBlank() && cells.length > 1
                    ? cells[cells.length - 2] : cells[cells.length - 1];
            if (last.trim().toLowerCase(java.util.Locale.ROOT).startsWith("test")) continue; // a header row
            rows++;
            Matcher m = TEST_REF.matcher(last);
            boolean any = false;
            while (m.find()) {
                any = true;
                String source = sources.get(m.group(1));
                if (source == null) {
                    problems.add("docs/kernel-fidelity.md:" + (i + 1) + ": no test class " + m.group(1));
                } else if (!Pattern.compile("\\b" + Pattern.quote(m.group(2)) + "\\s*\\(").matcher(source).find()) {
                    problems.add("docs/kernel-fidelity.md:" + (i + 1) + ": " + m.group(1) + " has no method " + m.group(2));
                }
            }
            if (!any) problems.add("docs/kernel-fidelity.md:" + (i + 1) + ": row names no test (`Class.method`)");
        }
        assertThat(rows).as("rows in docs/kernel-fidelity.md").isGreaterThan(20);
        assertThat(problems).isEmpty();
    }

    @Test
    void namesTheKernelVersionItFollows() throws IOException {
        assertThat(Files.readString(DOC)).contains("Linux 7.1-rc4");
    }

    /** Simple class name to source text, over every module's {@code src/test/java}. */
    private static Map<String, String> testSources() throws IOException {
        Map<String, String> sources = new HashMap<>();
        try (Stream<Path> modules = Files.list(ROOT)) {
            for (Path module : modules.filter(Files::isDirectory).toList()) {
                Path tests = module.resolve("src/test/java");
                if (!Files.isDirectory(tests)) continue;
                try (Stream<Path> files = Files.walk(tests)) {
                    files.filter(p -> p.toString().endsWith(".java")).forEach(p -> {
                        String name = p.getFileName().toString().replace(".java", "");
                        try {
                            sources.merge(name, Files.readString(p), String::concat);
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    });
                }
            }
        }
        return sources;
    }
}
