package dev.ptlab.cli;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.sim.Backing;
import dev.ptlab.sim.FaultLocking;
import dev.ptlab.sim.Vm;
import dev.ptlab.sim.VmConfig;
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

    static final String COMMANDS = "stage2, hyp, vm, map, unmap, translate, expect, expect-leaf, expect-owner, leaf, dump, "
            + "wrprotect, tlbi, mkyoung, mkold, young, relax, split, flush, set-owner, idmap-greedy, coalesce-policy, counters, "
            + "memslot, vcpu-access, dirty-log";
    private static final String STAGE2_OPTIONS =
            "granule=4k|16k|64k, ipa-bits=N, vmid=N, mem-base=ADDR, mem-size=SIZE, fwb, range-tlbi, idmap, checking";
    private static final String HYP_OPTIONS = "granule=4k|16k|64k, va-bits=N, mem-base=ADDR, mem-size=SIZE, checking";
    private static final String VM_OPTIONS = "granule=4k|16k|64k, ipa-bits=N, vmid=N, fault-lock=shared|write, "
            + "coalesce=install-first|legacy, eager-split=SIZE, checking, hardware-af, vcpus=N, mem-size=SIZE";
    /** Most vCPUs a {@code vm} line may ask for. */
    static final int MAX_VCPUS = 512;

    private final String file;
    private int line;
    private Step.Table table;
    /** Memslot lines so far: the next memslot's id. */
    private int memslots;

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
            case "vm":
                return parseVm(t);
            case "memslot":
                requireVm(keyword);
                return parseMemslot(t);
            case "vcpu-access":
                requireVm(keyword);
                return parseVcpuAccess(t);
            case "dirty-log":
                requireVm(keyword);
                return parseDirtyLog(t);
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
            case "expect-leaf":
                requireTable(keyword);
                return parseExpectLeaf(t);
            case "expect-owner": {
                requireStage2(keyword);
                String usage = "expect-owner ADDR OWNER";
                args(t, usage, "ADDR", "OWNER");
                return new Step.ExpectOwner(line, Numbers.parseNumber("ADDR", t[1]), owner(t[2], usage));
            }
            case "wrprotect": {
                requireStage2(keyword);
                args(t, "wrprotect IPA SIZE", "IPA", "SIZE");
                return new Step.Wrprotect(line, Numbers.parseNumber("IPA", t[1]), Numbers.parseSize("SIZE", t[2]));
            }
            case "tlbi":
                requireStage2(keyword);
                return parseTlbi(t);
            case "mkyoung": {
                requireStage2(keyword);
                args(t, "mkyoung IPA", "IPA");
                return new Step.Mkyoung(line, Numbers.parseNumber("IPA", t[1]));
            }
            case "mkold": case "young": {
                requireStage2(keyword);
                args(t, keyword + " IPA SIZE", "IPA", "SIZE");
                return new Step.Young(line, Numbers.parseNumber("IPA", t[1]), Numbers.parseSize("SIZE", t[2]),
                        keyword.equals("mkold"));
            }
            case "relax": {
                requireStage2(keyword);
                String usage = "relax IPA PROT";
                args(t, usage, "IPA", "PROT");
                long ipa = Numbers.parseNumber("IPA", t[1]);
                Prot prot = Prot.parse(t[2]);
                if ((prot.bits() & ~(Prot.R_BIT | Prot.W_BIT | Prot.X_BITS)) != 0) {
                    throw error("relax PROT \"" + t[2] + "\" carries more than access rights (relax can only add rights, "
                            + "not change the memory type or software bits)", "letters r, w, x (or px, ux) only, e.g. rw or rx");
                }
                return new Step.Relax(line, ipa, prot);
            }
            case "split":
                requireStage2(keyword);
                return parseSplit(t);
            case "flush": {
                requireStage2(keyword);
                args(t, "flush IPA SIZE", "IPA", "SIZE");
                return new Step.Flush(line, Numbers.parseNumber("IPA", t[1]), Numbers.parseSize("SIZE", t[2]));
            }
            case "set-owner": {
                requireStage2(keyword);
                String usage = "set-owner IPA SIZE OWNER";
                args(t, usage, "IPA", "SIZE", "OWNER");
                return new Step.SetOwner(line, Numbers.parseNumber("IPA", t[1]), Numbers.parseSize("SIZE", t[2]),
                        owner(t[3], usage));
            }
            case "idmap-greedy":
                requireStage2(keyword);
                return parseIdmapGreedy(t);
            case "coalesce-policy": {
                requireStage2(keyword);
                String usage = "coalesce-policy install-first|unmap-first";
                args(t, usage, "POLICY");
                switch (t[1].toLowerCase(Locale.ROOT)) {
                    case "install-first": return new Step.Coalesce(line, CoalescePolicy.INSTALL_FIRST);
                    case "unmap-first": return new Step.Coalesce(line, CoalescePolicy.UNMAP_FIRST);
                    default:
                        throw error("coalesce policy \"" + t[1] + "\" is unknown", "install-first or unmap-first");
                }
            }
            case "counters":
                requireTable(keyword);
                args(t, "counters");
                return new Step.Counters(line);
            default:
                throw error("unknown command \"" + t[0] + "\"", "one of " + COMMANDS);
        }
    }

    private String addrName() {
        return table.stage2() ? "IPA" : "VA";
    }

    private void requireTable(String keyword) throws ScenarioException {
        if (table == null) {
            throw error(keyword + " before any table line", "a \"stage2 ...\", \"hyp ...\" or \"vm ...\" line first");
        }
    }

    /** Commands that need a VM (memslots, vCPUs, dirty logging), not just a table. */
    private void requireVm(String keyword) throws ScenarioException {
        if (table == null) throw error(keyword + " before any vm line", "a \"vm ...\" line first");
        if (table.vm() == null) {
            throw error(keyword + " needs a VM and the table (line " + table.line() + ") is a plain " + table.verb() + " table",
                    "a \"vm ...\" line instead of \"" + table.verb() + " ...\" for it");
        }
    }

    /** Table operations that only a stage-2 table has. */
    private void requireStage2(String keyword) throws ScenarioException {
        requireTable(keyword);
        if (!table.stage2()) {
            throw error(keyword + " is a stage-2 operation and the table (line " + table.line() + ") is hyp",
                    "a \"stage2 ...\" table line for it");
        }
    }

    /** The range {@code [addr, addr + size)} lies inside the table's input-address space. */
    private void requireInside(String what, long addr, long size) throws ScenarioException {
        long limit = table.geometry().iaLimit();
        if (addr >= limit || size > limit - addr) {
            throw error(what + " [" + Numbers.hex(addr) + ", " + Numbers.hex(addr + size) + ") reaches past the "
                    + table.geometry().iaBits() + "-bit IPA space", "a range inside [0, " + Numbers.hex(limit) + ")");
        }
    }

    private int owner(String text, String usage) throws ScenarioException {
        long owner = Numbers.parseNumber("OWNER", text);
        if (owner > 255) throw error("OWNER " + text + " is outside 0..255", "an owner id from 0 to 255 (" + usage + ")");
        return (int) owner;
    }

    private Step parseTlbi(String[] t) throws ScenarioException {
        String usage = "tlbi IPA SIZE, or tlbi all";
        if (t.length == 1) throw error("tlbi is missing IPA and SIZE (or \"all\")", usage);
        if (t[1].equalsIgnoreCase("all")) {
            if (t.length > 2) throw extra(t, 2, usage);
            return new Step.Tlbi(line, 0, 0, true);
        }
        args(t, usage, "IPA", "SIZE");
        long ipa = Numbers.parseNumber("IPA", t[1]);
        long size = Numbers.parseSize("SIZE", t[2]);
        if (size == 0) throw error("tlbi SIZE is 0", "a size above 0 (" + usage + ")");
        requireInside("tlbi range", ipa, size);
        return new Step.Tlbi(line, ipa, size, false);
    }

    private Step parseSplit(String[] t) throws ScenarioException {
        String usage = "split IPA SIZE [frames=N]";
        if (t.length < 3) throw missing(t, usage, "IPA", "SIZE");
        if (t.length > 4) throw extra(t, 4, usage);
        long ipa = Numbers.parseNumber("IPA", t[1]);
        long size = Numbers.parseSize("SIZE", t[2]);
        long frames = -1;
        if (t.length == 4) {
            String opt = t[3];
            int eq = opt.indexOf('=');
            String key = (eq < 0 ? opt : opt.substring(0, eq)).toLowerCase(Locale.ROOT);
            if (!key.equals("frames")) throw error("unknown split option \"" + opt + "\"", "frames=N (" + usage + ")");
            String value = eq < 0 ? "" : opt.substring(eq + 1);
            if (value.isEmpty()) throw error("split option frames has no value", "frames=N, a number of table frames");
            frames = Numbers.parseNumber("frames", value);
            if (frames > Integer.MAX_VALUE - 8) {
                throw error("frames=" + value + " is more than a memory cache holds", "frames=N below 2^31 - 8");
            }
        }
        return new Step.Split(line, ipa, size, frames);
    }

    private Step parseIdmapGreedy(String[] t) throws ScenarioException {
        String usage = "idmap-greedy ADDR PROT RANGE-START RANGE-END";
        if ((table.flags() & Stage2PageTable.IDMAP) == 0) {
            throw error("idmap-greedy needs an identity-map table and the " + table.verb() + " line (line " + table.line()
                    + ") has no idmap option", "\"stage2 ... idmap\"");
        }
        args(t, usage, "ADDR", "PROT", "RANGE-START", "RANGE-END");
        long addr = Numbers.parseNumber("ADDR", t[1]);
        Prot prot = Prot.parse(t[2]);
        long start = Numbers.parseNumber("RANGE-START", t[3]);
        long end = Numbers.parseNumber("RANGE-END", t[4]);
        if (start >= end) {
            throw error("idmap-greedy range [" + Numbers.hex(start) + ", " + Numbers.hex(end) + ") is empty or reversed",
                    "RANGE-START below RANGE-END (the range is [RANGE-START, RANGE-END))");
        }
        if (addr < start || addr >= end) {
            throw error("idmap-greedy ADDR " + Numbers.hex(addr) + " is outside the range [" + Numbers.hex(start) + ", "
                    + Numbers.hex(end) + ")", "RANGE-START <= ADDR < RANGE-END");
        }
        requireInside("idmap-greedy range", start, end - start);
        return new Step.IdmapGreedy(line, addr, prot, start, end);
    }

    private Step parseExpectLeaf(String[] t) throws ScenarioException {
        String usage = "expect-leaf ADDR level N";
        args(t, usage, "ADDR", "\"level\"", "N");
        long addr = Numbers.parseNumber("ADDR", t[1]);
        if (!t[2].equalsIgnoreCase("level")) {
            throw error("expect-leaf has \"" + t[2] + "\" where \"level\" belongs", usage);
        }
        return new Step.ExpectLeaf(line, addr, level(t[3], "leaf"));
    }

    private int level(String text, String what) throws ScenarioException {
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
        return new Step.Expect(line, addr, access, -1, type, level(t[i + 2], "fault"));
    }

    private void requireFirstTable() throws ScenarioException {
        if (table != null) {
            throw error("a second table line (the " + table.verb() + " table is already defined at line "
                    + table.line() + ")", "one table per scenario");
        }
    }

    /** {@code vm [options]}: a {@link Vm} whose stage-2 table becomes the scenario's table. */
    private Step parseVm(String[] t) throws ScenarioException {
        requireFirstTable();
        Granule granule = Granule.G4K;
        int bits = DEFAULT_IPA_BITS;
        VmConfig config = VmConfig.defaults();
        int vcpus = 1;
        Set<String> seen = new HashSet<>();
        for (int i = 1; i < t.length; i++) {
            String opt = t[i];
            int eq = opt.indexOf('=');
            String key = (eq < 0 ? opt : opt.substring(0, eq)).toLowerCase(Locale.ROOT);
            String value = eq < 0 ? null : opt.substring(eq + 1);
            if (!seen.add(key)) throw error("vm option " + key + " is given twice", "each option at most once");
            switch (key) {
                case "granule":
                    try {
                        granule = Granule.parse(value("vm", key, value, "granule=4k, 16k or 64k"));
                    } catch (IllegalArgumentException e) {
                        throw error("granule \"" + value + "\" is not a granule", "granule=4k, 16k or 64k");
                    }
                    break;
                case "ipa-bits":
                    bits = (int) Math.min(Integer.MAX_VALUE, Numbers.parseNumber(key, value("vm", key, value, "ipa-bits=N")));
                    break;
                case "vmid": {
                    long vm = Numbers.parseNumber("vmid", value("vm", key, value, "vmid=0..65535"));
                    if (vm > 0xFFFF) throw error("vmid " + vm + " is outside 0..65535", "vmid=0..65535");
                    config = config.withVmid((int) vm);
                    break;
                }
                case "fault-lock":
                    try {
                        config = config.withFaultLocking(FaultLocking.parse(value("vm", key, value, "fault-lock=shared or write")));
                    } catch (IllegalArgumentException e) {
                        throw error("fault-lock \"" + value + "\" is unknown", "fault-lock=shared or write");
                    }
                    break;
                case "coalesce":
                    switch (value("vm", key, value, "coalesce=install-first or legacy").toLowerCase(Locale.ROOT)) {
                        case "install-first": config = config.withCoalescePolicy(CoalescePolicy.INSTALL_FIRST); break;
                        case "legacy": case "unmap-first": config = config.withCoalescePolicy(CoalescePolicy.UNMAP_FIRST); break;
                        default: throw error("coalesce order \"" + value + "\" is unknown", "coalesce=install-first or legacy");
                    }
                    break;
                case "eager-split":
                    config = config.withEagerSplitChunk(Numbers.parseSize("eager-split", value("vm", key, value, "eager-split=SIZE")));
                    break;
                case "checking":
                    noValue("vm", key, value);
                    config = config.withChecking(true);
                    break;
                case "hardware-af":
                    noValue("vm", key, value);
                    config = config.withHardwareAf(true);
                    break;
                case "vcpus": {
                    long n = Numbers.parseNumber("vcpus", value("vm", key, value, "vcpus=N"));
                    if (n < 1 || n > MAX_VCPUS) throw error("vcpus=" + value + " is outside 1.." + MAX_VCPUS, "vcpus=1.." + MAX_VCPUS);
                    vcpus = (int) n;
                    break;
                }
                case "mem-size":
                    config = config.withTableMemory(Numbers.parseSize("mem-size", value("vm", key, value, "mem-size=SIZE")));
                    break;
                default:
                    throw error("unknown vm option \"" + opt + "\"", VM_OPTIONS);
            }
        }
        Geometry geometry;
        try {
            geometry = Geometry.stage2(granule, bits);
        } catch (IllegalArgumentException e) {
            throw error(e.getMessage(), "ipa-bits=32..52 that the granule can reach");
        }
        config = config.withGranule(granule).withIpaBits(bits);
        long memSize = config.tableMemory();
        long paLimit = 1L << geometry.paBits();
        if (memSize == 0 || memSize % granule.pageSize() != 0 || memSize > paLimit - Vm.TABLE_MEMORY_BASE) {
            throw error("table memory mem-size=" + Numbers.size(memSize) + " is not a non-empty multiple of the "
                    + granule.label() + " granule inside the " + geometry.paBits() + "-bit physical address space from "
                    + Numbers.hex(Vm.TABLE_MEMORY_BASE), "mem-size=SIZE, e.g. 256M");
        }
        try {
            // Validates what only the VM knows (the eager split chunk against the granule's block sizes).
            new Vm(config).destroy();
        } catch (IllegalArgumentException e) {
            throw error(e.getMessage(), e.getMessage().startsWith("eager split")
                    ? "eager-split=0 or a block size of the " + granule.label() + " granule" : "a configuration the VM accepts");
        }
        table = new Step.Table(line, geometry, config.vmid(), config.tableFlags(), config.checking(), Vm.TABLE_MEMORY_BASE,
                memSize, new Step.VmSpec(config, vcpus));
        return table;
    }

    private Step parseMemslot(String[] t) throws ScenarioException {
        String usage = "memslot GPA SIZE BACKING HOSTPA [ro]";
        if (t.length < 5) throw missing(t, usage, "GPA", "SIZE", "BACKING", "HOSTPA");
        if (t.length > 6) throw extra(t, 6, usage);
        long gpa = Numbers.parseNumber("GPA", t[1]);
        long size = Numbers.parseSize("SIZE", t[2]);
        Backing backing;
        try {
            backing = Backing.parse(t[3]);
        } catch (IllegalArgumentException e) {
            throw error("BACKING \"" + t[3] + "\" is not a backing", "page, thp or hugetlb (" + usage + ")");
        }
        long hostPa = Numbers.parseNumber("HOSTPA", t[4]);
        boolean readOnly = false;
        if (t.length == 6) {
            if (!t[5].equalsIgnoreCase("ro")) {
                throw error("unknown memslot flag \"" + t[5] + "\"", "ro (a read-only slot) or nothing (" + usage + ")");
            }
            readOnly = true;
        }
        memslots++;
        return new Step.AddMemslot(line, gpa, size, backing, hostPa, readOnly);
    }

    private Step parseVcpuAccess(String[] t) throws ScenarioException {
        String usage = "vcpu-access VCPU ADDR read|write|exec [-> PA | -> mmio | -> address-size]";
        int arrow = 1;
        while (arrow < t.length && !t[arrow].equals("->")) arrow++;
        if (arrow < 4) {
            String[] head = java.util.Arrays.copyOf(t, arrow);
            throw missing(head, usage, "VCPU", "ADDR", "ACCESS");
        }
        if (arrow > 4) throw error("vcpu-access has an extra argument \"" + t[4] + "\"", usage);
        int vcpu = vcpu(t[1]);
        long addr = Numbers.parseNumber("ADDR", t[2]);
        Access access = access(t[3]);
        if (t.length == 4) return new Step.VcpuAccess(line, vcpu, addr, access, null, 0);
        if (t.length == 5) throw error("vcpu-access is missing PA, mmio or address-size after \"->\"", usage);
        if (t.length > 6) throw extra(t, 6, usage);
        String what = t[5].toLowerCase(Locale.ROOT);
        if (what.equals("mmio")) return new Step.VcpuAccess(line, vcpu, addr, access, Step.Outcome.MMIO, 0);
        if (what.equals("address-size")) return new Step.VcpuAccess(line, vcpu, addr, access, Step.Outcome.ADDRESS_SIZE, 0);
        if (what.isEmpty() || !Character.isDigit(what.charAt(0))) {
            throw error("vcpu-access has \"" + t[5] + "\" after \"->\"", "a PA, mmio or address-size (" + usage + ")");
        }
        return new Step.VcpuAccess(line, vcpu, addr, access, Step.Outcome.PA, Numbers.parseNumber("PA", t[5]));
    }

    /** {@code 0} or {@code vcpu0}: one of the VM's vCPUs. */
    private int vcpu(String text) throws ScenarioException {
        String digits = text.regionMatches(true, 0, "vcpu", 0, 4) ? text.substring(4) : text;
        long id = Numbers.parseNumber("VCPU", digits);
        int n = table.vm().vcpus();
        if (id >= n) {
            throw error("VCPU " + text + " does not exist (the vm line, line " + table.line() + ", creates " + n
                    + (n == 1 ? " vCPU: vcpu0)" : " vCPUs: vcpu0..vcpu" + (n - 1) + ")"),
                    "a vCPU id from 0 to " + (n - 1) + " (vcpus=N on the vm line for more)");
        }
        return (int) id;
    }

    private Step parseDirtyLog(String[] t) throws ScenarioException {
        String usage = "dirty-log enable|disable|get SLOT [keep]";
        if (t.length < 3) throw missing(t, usage, "enable|disable|get", "SLOT");
        Step.DirtyLog.Action action;
        switch (t[1].toLowerCase(Locale.ROOT)) {
            case "enable": action = Step.DirtyLog.Action.ENABLE; break;
            case "disable": action = Step.DirtyLog.Action.DISABLE; break;
            case "get": action = Step.DirtyLog.Action.GET; break;
            default: throw error("dirty-log action \"" + t[1] + "\" is unknown", "enable, disable or get (" + usage + ")");
        }
        long slot = Numbers.parseNumber("SLOT", t[2]);
        if (memslots == 0) throw error("dirty-log SLOT " + t[2] + ": no memslot exists yet", "a memslot line before dirty-log");
        if (slot >= memslots) {
            throw error("dirty-log SLOT " + t[2] + " is not a memslot (the memslot lines so far create "
                    + (memslots == 1 ? "slot 0" : "slots 0.." + (memslots - 1)) + ")",
                    "a memslot id from 0 to " + (memslots - 1) + " (memslot lines number their slots 0, 1, ... in order)");
        }
        boolean keep = false;
        if (t.length > 3) {
            if (action != Step.DirtyLog.Action.GET || !t[3].equalsIgnoreCase("keep") || t.length > 4) {
                throw error("dirty-log " + t[1] + " has an extra argument \""
                        + t[action == Step.DirtyLog.Action.GET && t[3].equalsIgnoreCase("keep") ? 4 : 3] + "\"",
                        usage + " (keep: only with get)");
            }
            keep = true;
        }
        return new Step.DirtyLog(line, action, (int) slot, keep);
    }

    private Step parseTable(String kind, String[] t) throws ScenarioException {
        requireFirstTable();
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
                case "fwb": case "range-tlbi": case "idmap":
                    if (!stage2) {
                        known = false;
                        break;
                    }
                    noValue(kind, key, value);
                    flags |= key.equals("fwb") ? Stage2PageTable.FWB
                            : key.equals("idmap") ? Stage2PageTable.IDMAP : Stage2PageTable.RANGE_TLBI;
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
