package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.Access;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * One scenario line as a command's parser sees it: its tokens (the keyword first), the table line
 * before it, and the checks and messages every command shares, so each command's parser says
 * only what is its own.
 */
final class Line {
    private final ScenarioParser parser;
    private final String[] t;
    private final int number;

    Line(ScenarioParser parser, String[] tokens, int number) {
        this.parser = parser;
        this.t = tokens;
        this.number = number;
    }

    int number() {
        return number;
    }

    /** Token {@code i} (0: the keyword as written). */
    String token(int i) {
        return t[i];
    }

    /** Tokens on the line, the keyword included. */
    int count() {
        return t.length;
    }

    /** The table line so far (null before it). */
    TableSpec table() {
        return parser.table();
    }

    /** The table line: later lines are checked against it. */
    void table(TableSpec spec) {
        parser.table(spec);
    }

    /** A memslot line: the next one gets the next slot id. */
    void addMemslot() {
        parser.addMemslot();
    }

    /** The memslot lines so far. */
    int memslots() {
        return parser.memslots();
    }

    /** {@code file:line}, the start of every message about this line. */
    String where() {
        return parser.file() + ":" + number;
    }

    ScenarioException error(String problem, String expected) {
        return ScenarioException.at(parser.file(), number, problem, expected);
    }

    /** Token {@code i} as a number named {@code name}. */
    long number(int i, String name) {
        return Numbers.parseNumber(name, t[i]);
    }

    /** Token {@code i} as a size named {@code name}. */
    long size(int i, String name) {
        return Numbers.parseSize(name, t[i]);
    }

    /** IPA or VA: what this table's input addresses are called. */
    String addrName() {
        return table().addrName();
    }

    /** Exactly the named arguments after the keyword. */
    void args(String usage, String... names) throws ScenarioException {
        if (t.length - 1 < names.length) throw missing(usage, names);
        if (t.length - 1 > names.length) throw extra(names.length + 1, usage);
    }

    ScenarioException missing(String usage, String... names) {
        return missing(t.length, usage, names);
    }

    /** The arguments of {@code names} that the first {@code tokens} tokens do not reach are missing. */
    ScenarioException missing(int tokens, String usage, String... names) {
        List<String> absent = new ArrayList<>();
        for (int i = tokens - 1; i < names.length; i++) absent.add(names[i]);
        String list = absent.size() == 1 ? absent.get(0)
                : String.join(", ", absent.subList(0, absent.size() - 1)) + " and " + absent.get(absent.size() - 1);
        return error(t[0] + " is missing " + list, usage);
    }

    ScenarioException extra(int firstExtra, String usage) {
        return error(t[0] + " has an extra argument \"" + t[firstExtra] + "\"", usage);
    }

    Access access(String text) throws ScenarioException {
        try {
            return Access.parse(text);
        } catch (IllegalArgumentException e) {
            throw error("access \"" + text + "\" is not one of read, write, exec", "read, write or exec");
        }
    }

    /** A translation level, -1..3; {@code what} says whose ("leaf", "fault"). */
    int level(String text, String what) throws ScenarioException {
        int level;
        try {
            level = Integer.parseInt(text);
        } catch (NumberFormatException e) {
            level = Integer.MIN_VALUE;
        }
        if (level < Granule.FIRST_LEVEL || level > Granule.LAST_LEVEL) {
            throw error(what + " level \"" + text + "\" is not a level", "a level from -1 to 3");
        }
        return level;
    }

    int owner(String text, String usage) throws ScenarioException {
        long owner = Numbers.parseNumber("OWNER", text);
        if (owner > 255) throw error("OWNER " + text + " is outside 0..255", "an owner id from 0 to 255 (" + usage + ")");
        return (int) owner;
    }

    /** The range {@code [addr, addr + size)} lies inside the table's input-address space. */
    void requireInside(String what, long addr, long size) throws ScenarioException {
        long limit = table().geometry().iaLimit();
        if (addr >= limit || size > limit - addr) {
            throw error(what + " [" + Numbers.hex(addr) + ", " + Numbers.hex(addr + size) + ") reaches past the "
                    + table().geometry().iaBits() + "-bit IPA space", "a range inside [0, " + Numbers.hex(limit) + ")");
        }
    }

    /** A table line is the scenario's first and only one. */
    void requireFirstTable() throws ScenarioException {
        TableSpec table = table();
        if (table != null) {
            throw error("a second table line (the " + table.verb() + " table is already defined at line "
                    + table.line() + ")", "one table per scenario");
        }
    }

    /** Reads one {@code key[=value]} option of a table line; false: the key is not one of its options. */
    @FunctionalInterface
    interface OptionReader {
        boolean read(String key, String value) throws ScenarioException;
    }

    /**
     * The {@code key[=value]} options after the keyword of a {@code kind} line, each at most once;
     * an option {@code reader} does not know is an error expecting {@code known}.
     */
    void options(String kind, String known, OptionReader reader) throws ScenarioException {
        Set<String> seen = new HashSet<>();
        for (int i = 1; i < t.length; i++) {
            String opt = t[i];
            int eq = opt.indexOf('=');
            String key = (eq < 0 ? opt : opt.substring(0, eq)).toLowerCase(Locale.ROOT);
            String value = eq < 0 ? null : opt.substring(eq + 1);
            if (!seen.add(key)) throw error(kind + " option " + key + " is given twice", "each option at most once");
            if (!reader.read(key, value)) throw error("unknown " + kind + " option \"" + opt + "\"", known);
        }
    }

    /** The value of option {@code key}, which must have one. */
    String value(String key, String value, String expected) throws ScenarioException {
        if (value == null || value.isEmpty()) throw error(t[0].toLowerCase(Locale.ROOT) + " option " + key + " has no value", expected);
        return value;
    }

    /** Option {@code key} is a flag: it takes no value. */
    void noValue(String key, String value) throws ScenarioException {
        if (value != null) throw error(t[0].toLowerCase(Locale.ROOT) + " option " + key + " takes no value", key + " alone");
    }

    /** {@code granule=4k|16k|64k}. */
    Granule granule(String value) throws ScenarioException {
        try {
            return Granule.parse(value("granule", value, "granule=4k, 16k or 64k"));
        } catch (IllegalArgumentException e) {
            throw error("granule \"" + value + "\" is not a granule", "granule=4k, 16k or 64k");
        }
    }

    /** {@code vmid=0..65535}. */
    int vmid(String value) throws ScenarioException {
        long vm = Numbers.parseNumber("vmid", value("vmid", value, "vmid=0..65535"));
        if (vm > 0xFFFF) throw error("vmid " + vm + " is outside 0..65535", "vmid=0..65535");
        return (int) vm;
    }
}
