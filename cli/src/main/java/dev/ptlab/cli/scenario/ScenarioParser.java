package dev.ptlab.cli.scenario;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Reads a scenario file into steps. The whole file is parsed before anything runs, so a typo on
 * the last line is reported before the first map is made. Each line goes to its command in
 * {@link ScenarioCommands}; this class only splits lines, checks what a command needs before it
 * and keeps what later lines are checked against (the table line, the memslots so far). Grammar:
 * docs/scenario-language.md.
 */
public final class ScenarioParser {
    /** Default table-memory window: 64 GiB, inside every supported PA size. */
    public static final long DEFAULT_MEM_BASE = 0x10_0000_0000L;

    private final String file;
    private TableSpec table;
    /** Memslot lines so far: the next memslot's id. */
    private int memslots;

    private ScenarioParser(String file) {
        this.file = file;
    }

    /** Parses {@code text}; {@code file} names it in messages. */
    public static List<Step> parse(String file, String text) throws ScenarioException {
        return new ScenarioParser(file).parseAll(text);
    }

    String file() {
        return file;
    }

    TableSpec table() {
        return table;
    }

    int memslots() {
        return memslots;
    }

    /** Called by the table line's parser: later lines are checked against it. */
    void table(TableSpec spec) {
        table = spec;
    }

    /** Called by the memslot parser: the next slot id. */
    void addMemslot() {
        memslots++;
    }

    private List<Step> parseAll(String text) throws ScenarioException {
        List<Step> out = new ArrayList<>();
        String[] lines = text.split("\r?\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String content = lines[i];
            int hash = content.indexOf('#');
            if (hash >= 0) content = content.substring(0, hash);
            content = content.replace("->", " -> ").trim();
            if (content.isEmpty()) continue;
            Line line = new Line(this, content.split("\\s+"), i + 1);
            try {
                out.add(parseLine(line));
            } catch (IllegalArgumentException e) {
                throw new ScenarioException(file + ":" + line.number() + ": " + withExpected(e.getMessage()), e);
            }
        }
        return out;
    }

    /** Library parse messages mostly say what they expect already; add a generic hint when not. */
    private static String withExpected(String message) {
        return message.contains("; expected") ? message : message + "; expected a valid value";
    }

    private Step parseLine(Line line) throws ScenarioException {
        String keyword = line.token(0).toLowerCase(Locale.ROOT);
        ScenarioCommand command = ScenarioCommands.find(keyword);
        if (command == null) {
            throw line.error("unknown command \"" + line.token(0) + "\"", "one of " + ScenarioCommands.keywords());
        }
        switch (command.needs()) {
            case TABLE: requireTable(line, keyword); break;
            case STAGE2: requireStage2(line, keyword); break;
            case VM: requireVm(line, keyword); break;
            default: break;
        }
        return new Step(line.number(), command, command.parse(line));
    }

    private void requireTable(Line line, String keyword) throws ScenarioException {
        if (table == null) {
            throw line.error(keyword + " before any table line", "a \"stage2 ...\", \"hyp ...\" or \"vm ...\" line first");
        }
    }

    /** Table operations that only a stage-2 table has. */
    private void requireStage2(Line line, String keyword) throws ScenarioException {
        requireTable(line, keyword);
        if (!table.stage2()) {
            throw line.error(keyword + " is a stage-2 operation and the table (line " + table.line() + ") is hyp",
                    "a \"stage2 ...\" table line for it");
        }
    }

    /** Commands that need a VM (memslots, vCPUs, dirty logging), not just a table. */
    private void requireVm(Line line, String keyword) throws ScenarioException {
        if (table == null) throw line.error(keyword + " before any vm line", "a \"vm ...\" line first");
        if (table.vm() == null) {
            throw line.error(keyword + " needs a VM and the table (line " + table.line() + ") is a plain " + table.verb() + " table",
                    "a \"vm ...\" line instead of \"" + table.verb() + " ...\" for it");
        }
    }
}
