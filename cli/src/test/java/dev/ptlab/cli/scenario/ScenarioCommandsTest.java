package dev.ptlab.cli.scenario;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The registry of scenario commands is what the parser, its messages and the documentation
 * agree on: a command registered but not documented (or documented with another grammar) fails
 * here, and so does a documented command that is not registered.
 */
class ScenarioCommandsTest {
    private static final Path DOC = Path.of("../docs/scenario-language.md");
    private static final Pattern RULE = Pattern.compile("^(\\S+)\\s*:=\\s*(.*)$");
    private static final Pattern CONTINUATION = Pattern.compile("^\\s+\\|\\s*(.*)$");

    /** The grammar block's rules, name to right-hand side (alternatives on later lines joined by " | "; comments dropped). */
    private static Map<String, String> grammarRules() throws IOException {
        String doc = Files.readString(DOC);
        int start = doc.indexOf("```\n") + 4;
        String block = doc.substring(start, doc.indexOf("```", start));
        Map<String, String> rules = new LinkedHashMap<>();
        String current = null;
        for (String raw : block.split("\n")) {
            String line = raw.replaceAll("\\s+#\\s.*$", "");
            if (line.isBlank() || line.startsWith("#")) continue;
            Matcher rule = RULE.matcher(line);
            Matcher more = CONTINUATION.matcher(line);
            if (more.matches() && current != null) {
                rules.put(current, rules.get(current) + " | " + normal(more.group(1)));
            } else if (rule.matches()) {
                current = rule.group(1);
                rules.put(current, normal(rule.group(2)));
            }
        }
        return rules;
    }

    private static String normal(String s) {
        return s.trim().replaceAll("\\s+", " ");
    }

    @Test
    void everyCommandsGrammarLineIsTheDocumentedRule() throws IOException {
        Map<String, String> rules = grammarRules();
        for (ScenarioCommand c : ScenarioCommands.all()) {
            assertThat(rules.get(c.keyword()))
                    .as("docs/scenario-language.md's grammar rule for %s (a registered command)", c.keyword())
                    .isEqualTo(c.grammar());
        }
    }

    @Test
    void theDocumentedCommandListIsTheRegistryInOrder() throws IOException {
        Map<String, String> rules = grammarRules();
        List<String> documented = new ArrayList<>();
        for (String alt : rules.get("command").split(" \\| ")) {
            if (alt.equals("table")) documented.addAll(Arrays.asList(rules.get("table").split(" \\| ")));
            else documented.add(alt);
        }
        List<String> registered = new ArrayList<>();
        for (ScenarioCommand c : ScenarioCommands.all()) registered.add(c.keyword());
        assertThat(documented).isEqualTo(registered);
    }

    @Test
    void unknownCommandListsTheRegistryAsTheDocsShow() throws IOException {
        String doc = Files.readString(DOC);
        Matcher shown = Pattern.compile("(?m)^s\\.txt:3: unknown command \"mpa\".*$").matcher(doc);
        assertThat(shown.find()).as("the docs show the unknown-command error").isTrue();
        assertThatThrownBy(() -> ScenarioParser.parse("s.txt", "stage2\n\nmpa 0 4K 0 r\n"))
                .isInstanceOf(ScenarioException.class)
                .hasMessage(shown.group())
                .hasMessage("s.txt:3: unknown command \"mpa\"; expected one of " + ScenarioCommands.keywords());
        for (ScenarioCommand c : ScenarioCommands.all()) {
            assertThat(ScenarioCommands.find(c.keyword())).isSameAs(c);
            assertThat(ScenarioCommands.keywords().split(", ")).contains(c.keyword());
        }
    }

    @Test
    void eachLineGoesToItsRegisteredCommand() throws ScenarioException {
        List<Step> steps = ScenarioParser.parse("s", "vm\nmemslot 0 2M thp 0\nMKOLD 0 4K\nyoung 0 4K\ndirty-log get 0\n");
        List<String> verbs = new ArrayList<>();
        for (Step s : steps) verbs.add(s.verb());
        assertThat(verbs).containsExactly("vm", "memslot", "mkold", "young", "dirty-log");
        assertThat(steps.get(2).command()).isSameAs(ScenarioCommands.find("mkold"));
        assertThat(steps.get(2).line()).isEqualTo(3);
    }
}
