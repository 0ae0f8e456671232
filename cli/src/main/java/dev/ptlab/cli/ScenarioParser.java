package dev.ptlab.cli;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.table.Stage2PageTable;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Reads a scenario file into commands. The whole file is parsed before anything runs, so a typo on
 * the last line is reported before the first map is made. Grammar: README.md, "Scenario language".
 */
final class ScenarioParser {
    /** Default table-memory window: 64 GiB, inside every supported PA size. */
    static final long DEFAULT_MEM_BASE = 0x10_0000_0000L;
    /** Default table-memory size: room for 65536 4K table frames. */
    static final long DEFAULT_MEM_SIZE = 256L << 20;
    static final int DEFAULT_IPA_BITS = 40;
    static final int DEFAULT_VA_BITS = 48;
    static final int DEFAULT_VMID = 1;

    static final String COMMANDS = "stage2, hyp, map, unmap, translate, expect, leaf, dump";
    private static final String STAGE2_OPTIONS =
            "granule=4k|16k|64k, ipa-bits=N, vmid=N, mem-base=ADDR, mem-size=SIZE, fwb, range-tlbi, checking";
    private static final String HYP_OPTIONS = "granule=4k|16k|64k, va-bits=N, mem-base=ADDR, mem-size=SIZE, checking";

    private final String file;
    private int line;
    private Step.Table table;

    private ScenarioParser(String file) {
        this.file = file;
    }

    /** Parses {@code text}; {@code file} names it in messages. */
    static List<Step> parse(String file, String text) throws ScenarioException {
        return new ScenarioParser(file).parseAll(text);
    }

    private List<Step> parseAll(String text) throws ScenarioException {
        List<Step> out = new ArrayList<>();
        String[] lines = text.split("\r?\n", -1);
        for (int i = 0; i < lines.length; i++) {
            line = i + 1;
            String content = lines[i];
            int hash = content.indexOf('#');
            if (hash >= 0) content = content.substring(0, hash);
            content = content.replace("->", " -> ").trim();
            if (content.isEmpty()) continue;
            String[] tokens = content.split("\\s+");
            try {
                out.add(parseLine(tokens));
            } catch (IllegalArgumentException e) {
                throw new ScenarioException(file + ":" + line + ": " + withExpected(e.getMessage()), e);
            }
        }
        return out;
    }

    /** Library parse messages mostly say what they expect already; add a generic hint when not. */
    private static String withExpected(String message) {
        return message.contains("; expected") ? message : message + "; expected a valid value";
    }

    private ScenarioException error(String problem, String expected) {
        return ScenarioException.at(file, line, problem, expected);
    }

    private Step parseLine(String[] t) throws ScenarioException {
        String keyword = t[0].toLowerCase(Locale.ROOT);
        switch (keyword) {
            case "stage2": case "hyp":
                return parseTable(keyword, t);
            case "map": {
                requireTable(keyword);
                String a = addrName();
                args(t, "map " + a + " SIZE PA PROT", a, "SIZE", "PA", "PROT");
                return new Step.Map(line, Numbers.parseNumber(a, t[1]), Numbers.parseSize("SIZE", t[2]),
                        Numbers.parseNumber("PA", t[3]), Prot.parse(t[4]));
            }
            case "unmap": {
                requireTable(keyword);
                String a = addrName();
                args(t, "unmap " + a + " SIZE", a, "SIZE");
                return new Step.Unmap(line, Numbers.parseNumber(a, t[1]), Numbers.parseSize("SIZE", t[2]));
            }
            case "translate": {
                requireTable(keyword);
                String usage = "translate ADDR [read|write|exec]";
                if (t.length < 2) throw missing(t, usage, "ADDR");
                if (t.length > 3) throw extra(t, 3, usage);
                Access access = t.length == 3 ? access(t[2]) : Access.READ;
                return new Step.Translate(line, Numbers.parseNumber("ADDR", t[1]), access);
            }
            case "expect":
                requireTable(keyword);
                return parseExpect(t);
            case "leaf": {
                requireTable(keyword);
                args(t, "leaf ADDR", "ADDR");
                return new Step.Leaf(line, Numbers.parseNumber("ADDR", t[1]));
            }
            case "dump":
                requireTable(keyword);
                args(t, "dump");
                return new Step.Dump(line);
            default:
                throw error("unknown command \"" + t[0] + "\"", "one of " + COMMANDS);
        }
    }

    private String addrName() {
        return table.stage2() ? "IPA" : "VA";
    }

    private void requireTable(String keyword) throws ScenarioException {
        if (table == null) {
            throw error(keyword + " before any table line", "a \"stage2 ...\" or \"hyp ...\" line first");
        }
    }

    /** Exactly the named arguments after the keyword. */
    private void args(String[] t, String usage, String... names) throws ScenarioException {
        if (t.length - 1 < names.length) throw missing(t, usage, names);
        if (t.length - 1 > names.length) throw extra(t, names.length + 1, usage);
    }

    private ScenarioException missing(String[] t, String usage, String... names) {
        List<String> absent = new ArrayList<>();
        for (int i = t.length - 1; i < names.length; i++) absent.add(names[i]);
        String list = absent.size() == 1 ? absent.get(0)
                : String.join(", ", absent.subList(0, absent.size() - 1)) + " and " + absent.get(absent.size() - 1);
        return error(t[0] + " is missing " + list, usage);
    }

    private ScenarioException extra(String[] t, int firstExtra, String usage) {
        return error(t[0] + " has an extra argument \"" + t[firstExtra] + "\"", usage);
    }

    private Access access(String text) throws ScenarioException {
        try {
            return Access.parse(text);
        } catch (IllegalArgumentException e) {
            throw error("access \"" + text + "\" is not one of read, write, exec", "read, write or exec");
        }
    }

    private Step parseExpect(String[] t) throws ScenarioException {
        String usage = "expect ADDR [read|write|exec] -> PA, or expect ADDR [read|write|exec] fault TYPE LEVEL";
        if (t.length < 2) throw missing(t, usage, "ADDR");
        long addr = Numbers.parseNumber("ADDR", t[1]);
        int i = 2;
        Access access = Access.READ;
        if (i < t.length && !t[i].equals("->") && !t[i].equalsIgnoreCase("fault")) {
            access = access(t[i]);
            i++;
        }
        if (i >= t.length) throw error("expect is missing \"-> PA\" or \"fault TYPE LEVEL\"", usage);
        if (t[i].equals("->")) {
            if (i + 1 >= t.length) throw error("expect is missing PA after \"->\"", usage);
            if (i + 2 < t.length) throw extra(t, i + 2, usage);
            return new Step.Expect(line, addr, access, Numbers.parseNumber("PA", t[i + 1]), null, 0);
        }
        if (!t[i].equalsIgnoreCase("fault")) {
            throw error("expect has \"" + t[i] + "\" where \"->\" or \"fault\" belongs", usage);
        }
        if (i + 2 >= t.length) {
            throw error("expect is missing " + (i + 1 >= t.length ? "TYPE and LEVEL" : "LEVEL") + " after \"fault\"", usage);
        }
        if (i + 3 < t.length) throw extra(t, i + 3, usage);
        FaultType type;
        try {
            type = FaultType.parse(t[i + 1]);
        } catch (IllegalArgumentException e) {
            throw error("fault type \"" + t[i + 1] + "\" is unknown", "one of translation, access-flag, permission, address-size");
        }
        int level;
        try {
            level = Integer.parseInt(t[i + 2]);
        } catch (NumberFormatException e) {
            level = Integer.MIN_VALUE;
        }
        if (level < Granule.FIRST_LEVEL || level > Granule.LAST_LEVEL) {
            throw error("fault level \"" + t[i + 2] + "\" is not a level", "a level from -1 to 3");
        }
        return new Step.Expect(line, addr, access, -1, type, level);
    }

    private Step parseTable(String kind, String[] t) throws ScenarioException {
        if (table != null) {
            throw error("a second table line (the " + (table.stage2() ? "stage2" : "hyp") + " table is already defined at line "
                    + table.line() + ")", "one table per scenario");
        }
        boolean stage2 = kind.equals("stage2");
        String options = stage2 ? STAGE2_OPTIONS : HYP_OPTIONS;
        String bitsKey = stage2 ? "ipa-bits" : "va-bits";
        Granule granule = Granule.G4K;
        int bits = stage2 ? DEFAULT_IPA_BITS : DEFAULT_VA_BITS;
        int vmid = stage2 ? DEFAULT_VMID : 0;
        int flags = 0;
        boolean checking = false;
        long memBase = DEFAULT_MEM_BASE;
        long memSize = DEFAULT_MEM_SIZE;
        Set<String> seen = new HashSet<>();
        for (int i = 1; i < t.length; i++) {
            String opt = t[i];
            int eq = opt.indexOf('=');
            String key = (eq < 0 ? opt : opt.substring(0, eq)).toLowerCase(Locale.ROOT);
            String value = eq < 0 ? null : opt.substring(eq + 1);
            if (!seen.add(key)) throw error(kind + " option " + key + " is given twice", "each option at most once");
            boolean known = true;
            switch (key) {
                case "granule":
                    try {
                        granule = Granule.parse(value(kind, key, value, "granule=4k, 16k or 64k"));
                    } catch (IllegalArgumentException e) {
                        throw error("granule \"" + value + "\" is not a granule", "granule=4k, 16k or 64k");
                    }
                    break;
                case "ipa-bits": case "va-bits":
                    if (!key.equals(bitsKey)) {
                        known = false;
                        break;
                    }
                    String v = value(kind, key, value, key + "=N");
                    bits = (int) Math.min(Integer.MAX_VALUE, Numbers.parseNumber(key, v));
                    break;
                case "vmid":
                    if (!stage2) {
                        known = false;
                        break;
                    }
                    long vm = Numbers.parseNumber("vmid", value(kind, key, value, "vmid=0..65535"));
                    if (vm > 0xFFFF) throw error("vmid " + vm + " is outside 0..65535", "vmid=0..65535");
                    vmid = (int) vm;
                    break;
                case "mem-base":
                    memBase = Numbers.parseNumber("mem-base", value(kind, key, value, "mem-base=ADDR"));
                    break;
                case "mem-size":
                    memSize = Numbers.parseSize("mem-size", value(kind, key, value, "mem-size=SIZE"));
                    break;
                case "fwb": case "range-tlbi":
                    if (!stage2) {
                        known = false;
                        break;
                    }
                    noValue(kind, key, value);
                    flags |= key.equals("fwb") ? Stage2PageTable.FWB : Stage2PageTable.RANGE_TLBI;
                    break;
                case "checking":
                    noValue(kind, key, value);
                    checking = true;
                    break;
                default:
                    known = false;
            }
            if (!known) throw error("unknown " + kind + " option \"" + opt + "\"", options);
        }
        Geometry geometry;
        try {
            geometry = stage2 ? Geometry.stage2(granule, bits) : Geometry.hyp(granule, bits);
        } catch (IllegalArgumentException e) {
            throw error(e.getMessage(), stage2 ? "ipa-bits=32..52 that the granule can reach" : "va-bits=25..52 that the granule can reach");
        }
        long paLimit = 1L << geometry.paBits();
        if (memSize == 0 || memBase >= paLimit || memSize > paLimit - memBase) {
            throw error("table memory [" + Numbers.hex(memBase) + ", +" + Numbers.size(memSize) + ") is not inside the "
                    + geometry.paBits() + "-bit physical address space", "a non-empty mem-base/mem-size window below "
                    + Numbers.hex(paLimit));
        }
        table = new Step.Table(line, geometry, vmid, flags, checking, memBase, memSize);
        return table;
    }

    private String value(String kind, String key, String value, String expected) throws ScenarioException {
        if (value == null || value.isEmpty()) throw error(kind + " option " + key + " has no value", expected);
        return value;
    }

    private void noValue(String kind, String key, String value) throws ScenarioException {
        if (value != null) throw error(kind + " option " + key + " takes no value", key + " alone");
    }
}
