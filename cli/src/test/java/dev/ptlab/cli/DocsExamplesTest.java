package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * The {@code ./ptlab} commands README.md and docs/*.md show, run for real.
 *
 * <p>A page shows a command's output as a plain code block whose lines start with
 * {@code $ ./ptlab ARGS}, each followed by what it prints. The files the commands read are the
 * pages' own {@code cat > /tmp/NAME <<'EOF'} blocks, written to a temporary directory that stands
 * in for {@code /tmp}. How a shown output is compared with the real one:
 * <ul>
 *   <li>exactly, for scenario commands ({@code run FILE}, {@code translate}, {@code dump},
 *       {@code export});</li>
 *   <li>with a line {@code ...} standing for lines left out: the shown pieces appear in the
 *       real output, in order, each as consecutive lines;</li>
 *   <li>with every number masked, for the commands that time something or race threads
 *       ({@code run} without a FILE, {@code compare}, {@code bench}): the same lines, words and
 *       columns, whatever the figures.</li>
 * </ul>
 * A command pasted in a {@code sh} block without a shown output is run if it reads a scenario
 * (it must exit 0), and otherwise (a simulation, slow and not reproducible) only parsed.
 */
class DocsExamplesTest {
    private static final Path ROOT = Path.of("..");
    private static final Pattern HEREDOC = Pattern.compile("cat > /tmp/(\\S+) <<'EOF'");
    private static final Set<String> TIMED = Set.of("compare", "bench");

    @TempDir
    Path tmp;

    private final Map<String, String> files = new LinkedHashMap<>();

    /** One fenced code block of a page. */
    record Block(Path page, int line, String lang, List<String> lines) {
        String where() {
            return ROOT.relativize(page) + ":" + line;
        }
    }

    /** A command shown with its output. */
    record Shown(Block block, String command, List<String> output) {}

    static List<Path> pages() throws IOException {
        List<Path> pages = new ArrayList<>(List.of(ROOT.resolve("README.md"), ROOT.resolve("bench/README.md")));
        try (Stream<Path> docs = Files.list(ROOT.resolve("docs"))) {
            docs.filter(p -> p.toString().endsWith(".md")).sorted().forEach(pages::add);
        }
        return pages;
    }

    static List<Block> blocks() throws IOException {
        List<Block> blocks = new ArrayList<>();
        for (Path page : pages()) {
            List<String> lines = Files.readAllLines(page);
            for (int i = 0; i < lines.size(); i++) {
                if (!lines.get(i).startsWith("```")) continue;
                int start = i;
                List<String> body = new ArrayList<>();
                for (i++; i < lines.size() && !lines.get(i).startsWith("```"); i++) body.add(lines.get(i));
                blocks.add(new Block(page, start + 1, lines.get(start).substring(3).trim(), body));
            }
        }
        return blocks;
    }

    static List<Shown> shown(List<Block> blocks) {
        List<Shown> shown = new ArrayList<>();
        for (Block b : blocks) {
            if (!b.lang().isEmpty() || b.lines().isEmpty() || !b.lines().get(0).startsWith("$ ./ptlab ")) continue;
            Shown current = null;
            for (String l : b.lines()) {
                if (l.startsWith("$ ")) {
                    current = new Shown(b, l.substring(2), new ArrayList<>());
                    shown.add(current);
                } else {
                    current.output().add(l);
                }
            }
        }
        return shown;
    }

    /** The pages' here-documents, by file name; one name, one content. */
    @BeforeEach
    void writeTheHereDocuments() throws IOException {
        for (Block b : blocks()) {
            if (!b.lang().equals("sh")) continue;
            for (int i = 0; i < b.lines().size(); i++) {
                Matcher m = HEREDOC.matcher(b.lines().get(i));
                if (!m.matches()) continue;
                StringBuilder text = new StringBuilder();
                for (i++; !b.lines().get(i).equals("EOF"); i++) text.append(b.lines().get(i)).append('\n');
                String earlier = files.putIfAbsent(m.group(1), text.toString());
                assertThat(earlier == null || earlier.equals(text.toString()))
                        .as("%s: /tmp/%s is written differently by another page", b.where(), m.group(1)).isTrue();
                Files.writeString(tmp.resolve(m.group(1)), text);
            }
        }
        assertThat(files).as("the pages' scenario files").containsKeys("tour.scen", "guest.scen", "vm.scen");
    }

    /** The arguments of {@code ./ptlab ARGS  # comment}, with /tmp and repository paths made local. */
    private String[] args(String command) {
        String c = command.replaceFirst("\\s+#.*$", "");
        assertThat(c).startsWith("./ptlab ");
        return Arrays.stream(c.substring("./ptlab ".length()).trim().split("\\s+"))
                .map(a -> a.startsWith("/tmp/") ? local(a) : Files.exists(ROOT.resolve(a)) && a.contains("/") ? ROOT.resolve(a).toString() : a)
                .toArray(String[]::new);
    }

    private String local(String text) {
        return text.replace("/tmp/", tmp + "/");
    }

    /** A simulation or a timing: its figures change from run to run. */
    private static boolean timed(String[] args) {
        if (TIMED.contains(args[0])) return true;
        return args[0].equals("run") && Arrays.stream(args).skip(1).noneMatch(a -> a.equals("--builtin-scenario") || a.endsWith(".scen")
                || a.endsWith(".scenario") || a.equals("-"));
    }

    static String masked(String text) {
        return text.replaceAll("\\d+(\\.\\d+)?", "#").replaceAll(" +", " ");
    }

    /** Null if the real output matches the shown one, else why not. */
    private String mismatch(List<String> shownLines, String real, boolean timed) {
        String expected = local(String.join("\n", shownLines) + "\n");
        if (timed) {
            return masked(expected).equals(masked(real)) ? null : "numbers masked, expected:\n" + masked(expected) + "real:\n" + masked(real);
        }
        if (!shownLines.contains("...")) {
            return expected.equals(real) ? null : "expected:\n" + expected + "real:\n" + real;
        }
        List<String> realLines = Arrays.asList(real.split("\n", -1));
        List<String> shownLocal = Arrays.asList(expected.split("\n", -1));
        int at = 0;
        boolean anchored = true;
        List<String> piece = new ArrayList<>();
        for (String l : shownLocal.subList(0, shownLocal.size() - 1)) {
            if (!l.equals("...")) {
                piece.add(l);
                continue;
            }
            at = find(realLines, piece, at, anchored);
            if (at < 0) return "not in the real output, in order: " + piece + "\nreal:\n" + real;
            piece.clear();
            anchored = false;
        }
        if (!piece.isEmpty()) {
            int end = realLines.size() - 1 - piece.size();
            if (end < at || !realLines.subList(end, end + piece.size()).equals(piece)) {
                return "the real output does not end with " + piece + "\nreal:\n" + real;
            }
        }
        return null;
    }

    private static int find(List<String> lines, List<String> piece, int from, boolean anchored) {
        for (int i = from; i + piece.size() <= lines.size(); i++) {
            if (lines.subList(i, i + piece.size()).equals(piece)) return i + piece.size();
            if (anchored) break;
        }
        return -1;
    }

    @Test
    void everyShownOutputIsTheRealOutput() throws IOException {
        List<String> failures = new ArrayList<>();
        List<Shown> shown = shown(blocks());
        Map<List<String>, Cli.Result> ran = new LinkedHashMap<>(); // a command shown on two pages runs once
        for (Shown s : shown) {
            String[] args = args(s.command());
            Cli.Result r = ran.computeIfAbsent(List.of(args), a -> Cli.run(args));
            if (r.exit() != 0) {
                failures.add(s.block().where() + ": " + s.command() + " exits " + r.exit() + "\n" + r.err());
                continue;
            }
            String why = mismatch(s.output(), r.out(), timed(args));
            if (why != null) failures.add(s.block().where() + ": " + s.command() + ": " + why);
        }
        assertThat(failures).as(String.join("\n\n", failures)).isEmpty();
        Set<String> commands = shown.stream().map(s -> s.command().split("\\s+")[1]).collect(Collectors.toCollection(TreeSet::new));
        assertThat(commands).as("commands shown with their output").contains("run", "translate", "dump", "export", "bench");
        assertThat(shown.stream().filter(s -> s.block().page().endsWith("README.md"))).as("the README's tour").hasSizeGreaterThanOrEqualTo(3);
    }

    @Test
    void everyPastedCommandIsShownRunsOrParses() throws IOException {
        List<Block> blocks = blocks();
        Set<String> withOutput = shown(blocks).stream().map(s -> s.command().replaceFirst("\\s+#.*$", "").trim()).collect(Collectors.toSet());
        List<String> failures = new ArrayList<>();
        int pasted = 0;
        for (Block b : blocks) {
            if (!b.lang().equals("sh")) continue;
            for (String line : b.lines()) {
                String command = line.trim();
                if (!command.startsWith("./ptlab ")) continue;
                pasted++;
                if (withOutput.contains(command.replaceFirst("\\s+#.*$", "").trim())) continue;
                String[] args = args(command);
                if (timed(args)) {
                    try {
                        Main.commandLine().parseArgs(args);
                    } catch (CommandLine.ParameterException e) {
                        failures.add(b.where() + ": " + command + ": " + e.getMessage());
                    }
                } else {
                    Cli.Result r = Cli.run(args);
                    if (r.exit() != 0) failures.add(b.where() + ": " + command + " exits " + r.exit() + "\n" + r.err());
                }
            }
        }
        assertThat(failures).as(String.join("\n\n", failures)).isEmpty();
        assertThat(pasted).as("pasteable ./ptlab commands found").isGreaterThanOrEqualTo(10);
    }

    /** docs/cli.md has a section for every subcommand and names every option of each. */
    @Test
    void theCliReferenceCoversEveryCommandAndOption() throws IOException {
        String reference = Files.readString(ROOT.resolve("docs/cli.md"));
        CommandLine ptlab = Main.commandLine();
        List<String> missing = new ArrayList<>();
        for (Map.Entry<String, CommandLine> sub : ptlab.getSubcommands().entrySet()) {
            if (sub.getKey().equals("help")) continue;
            if (!reference.contains("## `ptlab " + sub.getKey())) missing.add("section ## `ptlab " + sub.getKey());
            CommandSpec spec = sub.getValue().getCommandSpec();
            for (OptionSpec o : spec.options()) {
                if (o.usageHelp() || o.versionHelp()) continue;
                if (!reference.contains(o.longestName())) missing.add(sub.getKey() + " " + o.longestName());
            }
        }
        assertThat(missing).as("in docs/cli.md").isEmpty();
    }
}
