package dev.ptlab.core;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The Java examples of the documentation are the code their tests run: every statement of a
 * page's {@code java} block (comments and imports aside) appears, in order, in the test that
 * executes it, where the test may only add to a line (a variable for a result it asserts).
 */
class DocsSnippetsTest {
    private static final Path ROOT = Path.of("..");

    @Test
    void theReadmeLibrarySnippetIsWhatReadmeExampleTestRuns() throws IOException {
        assertRunBy("README.md", "core/src/test/java/dev/ptlab/core/ReadmeExampleTest.java");
    }

    @Test
    void theHostMemorySnippetIsWhatTheMmReadmeExampleTestRuns() throws IOException {
        assertRunBy("docs/host-memory.md", "mm/src/test/java/dev/ptlab/mm/device/ReadmeExampleTest.java");
    }

    private static void assertRunBy(String page, String test) throws IOException {
        List<String> snippet = statements(javaBlock(Files.readAllLines(ROOT.resolve(page))));
        List<String> source = statements(Files.readAllLines(ROOT.resolve(test)));
        assertThat(snippet).as(page + "'s java block").hasSizeGreaterThan(10);
        int at = 0;
        for (String statement : snippet) {
            while (at < source.size() && !source.get(at).contains(statement)) at++;
            assertThat(at).as("%s: \"%s\" is not run by %s (after the statements before it)", page, statement, test)
                    .isLessThan(source.size());
            at++;
        }
    }

    /** The page's only {@code java} code block. */
    private static List<String> javaBlock(List<String> lines) {
        int start = lines.indexOf("```java");
        assertThat(start).as("a ```java block").isNotNegative();
        assertThat(lines.subList(start + 1, lines.size())).as("one ```java block").doesNotContain("```java");
        return lines.subList(start + 1, lines.subList(start, lines.size()).indexOf("```") + start);
    }

    /** Code lines without their {@code //} comments, trimmed; no imports, no blank lines. */
    private static List<String> statements(List<String> lines) {
        List<String> statements = new ArrayList<>();
        for (String l : lines) {
            String s = l.replaceFirst("\\s*//.*$", "").trim();
            if (!s.isEmpty() && !s.startsWith("import ")) statements.add(s);
        }
        return statements;
    }
}
