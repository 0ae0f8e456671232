package dev.ptlab.core;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The documentation's links stay inside the repository and lead somewhere, and the README stays a
 * front door. Paths are relative to the core module, Maven's working directory for its tests.
 */
class DocsLinksTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    /** The issue's limit for the README: what is left fits on a front door. */
    static final int README_MAX_BYTES = 15_000;

    private static final Pattern LINK = Pattern.compile("\\[[^\\]]*\\]\\(([^)\\s]+)\\)");
    /** A relative path in prose or inline code that climbs out of the page's directory. */
    private static final Pattern CLIMBING_PATH = Pattern.compile("(?<![\\w./])((?:\\.\\./)+[\\w./-]*)");

    static List<Path> pages() throws IOException {
        List<Path> pages = new ArrayList<>(List.of(ROOT.resolve("README.md"), ROOT.resolve("bench/README.md")));
        try (Stream<Path> docs = Files.list(ROOT.resolve("docs"))) {
            docs.filter(p -> p.toString().endsWith(".md")).sorted().forEach(pages::add);
        }
        return pages;
    }

    /** The page's lines outside fenced code blocks, paired with their line numbers. */
    static Map<Integer, String> prose(Path page) throws IOException {
        Map<Integer, String> prose = new HashMap<>();
        boolean inCode = false;
        List<String> lines = Files.readAllLines(page);
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).startsWith("```")) inCode = !inCode;
            else if (!inCode) prose.put(i + 1, lines.get(i));
        }
        return prose;
    }

    /** GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to hyphens. */
    static Set<String> anchors(Path page) throws IOException {
        Set<String> anchors = new LinkedHashSet<>();
        Map<String, Integer> seen = new HashMap<>();
        for (String line : prose(page).values()) {
            if (!line.startsWith("#")) continue;
            String slug = line.replaceFirst("^#+\\s*", "").trim().toLowerCase(Locale.ROOT)
                    .replaceAll("[^\\p{L}\\p{N} _-]", "").replace(' ', '-');
            int n = seen.merge(slug, 1, Integer::sum);
            anchors.add(n == 1 ? slug : slug + "-" + (n - 1));
        }
        return anchors;
    }

    @Test
    void everyRelativeLinkLeadsToAFileOrHeadingInTheRepository() throws IOException {
        List<String> broken = new ArrayList<>();
        int links = 0;
        for (Path page : pages()) {
            for (Map.Entry<Integer, String> line : prose(page).entrySet()) {
                Matcher m = LINK.matcher(line.getValue());
                while (m.find()) {
                    links++;
                    String where = ROOT.relativize(page) + ":" + line.getKey() + ": " + m.group(1) + ": ";
                    String problem = problem(page, m.group(1));
                    if (problem != null) broken.add(where + problem);
                }
            }
        }
        assertThat(broken).isEmpty();
        assertThat(links).as("links checked").isGreaterThan(20);
    }

    /** Null if {@code target}, linked from {@code page}, exists inside the repository. */
    private static String problem(Path page, String target) throws IOException {
        if (target.matches("^[a-zA-Z][a-zA-Z+.-]*:.*")) return "not a relative link (links stay inside the repository)";
        int hash = target.indexOf('#');
        String path = hash < 0 ? target : target.substring(0, hash);
        Path file = path.isEmpty() ? page : page.getParent().resolve(path).normalize();
        if (!file.startsWith(ROOT)) return "outside the repository";
        if (!Files.exists(file)) return "no such file";
        if (hash >= 0) {
            if (!file.toString().endsWith(".md")) return "an anchor into a file that is not Markdown";
            Set<String> anchors = anchors(file);
            if (!anchors.contains(target.substring(hash + 1))) return "no such heading; the page has " + anchors;
        }
        return null;
    }

    @Test
    void noPathInTheProseLeadsOutOfTheRepository() throws IOException {
        List<String> outside = new ArrayList<>();
        for (Path page : pages()) {
            for (Map.Entry<Integer, String> line : prose(page).entrySet()) {
                Matcher m = CLIMBING_PATH.matcher(line.getValue());
                while (m.find()) {
                    if (!page.getParent().resolve(m.group(1)).normalize().startsWith(ROOT)) {
                        outside.add(ROOT.relativize(page) + ":" + line.getKey() + ": " + m.group(1));
                    }
                }
            }
        }
        assertThat(outside).as("paths that leave the repository").isEmpty();
    }

    @Test
    void theReadmeIsAFrontDoor() throws IOException {
        assertThat(Files.size(ROOT.resolve("README.md"))).isLessThanOrEqualTo(README_MAX_BYTES);
    }
}
