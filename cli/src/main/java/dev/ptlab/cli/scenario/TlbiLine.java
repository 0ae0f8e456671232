package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.TlbiOperand;
import java.util.Locale;

/**
 * {@code tlbi IPA SIZE} (a range TLBI of the table's VMID on every CPU) or {@code tlbi all} (every
 * entry of the VMID): the complete sequence a caller of wrprotect or mkold issues. And the single
 * instructions, Inner Shareable, each with its architectural reach ({@link TlbSystem}): {@code
 * tlbi ipas2e1|ipas2le1 IPA [ttl=L]}, {@code tlbi ripas2e1|ripas2le1 IPA SIZE [ttl=L]} (one range
 * operand: SIZE must be (NUM + 1) * 2^(5 * SCALE + 1) pages), {@code tlbi vmalls12e1|vmalle1};
 * these complete only at the next {@code dsb} ({@link DsbLine}).
 */
final class TlbiLine extends ScenarioCommand {
    TlbiLine() {
        super("tlbi", Needs.STAGE2, "\"tlbi\" IPA SIZE | \"tlbi\" \"all\" | \"tlbi\" ( \"ipas2e1\" | \"ipas2le1\" ) IPA [ \"ttl=\" LEVEL ]"
                + " | \"tlbi\" ( \"ripas2e1\" | \"ripas2le1\" ) IPA SIZE [ \"ttl=\" LEVEL ] | \"tlbi\" ( \"vmalls12e1\" | \"vmalle1\" )");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "tlbi IPA SIZE, tlbi all, tlbi ipas2e1|ipas2le1 IPA [ttl=L], tlbi ripas2e1|ripas2le1 IPA SIZE [ttl=L],"
                + " or tlbi vmalls12e1|vmalle1";
        if (l.count() == 1) throw l.error("tlbi is missing IPA and SIZE (or \"all\")", "tlbi IPA SIZE, or tlbi all");
        String op = l.token(1).toLowerCase(Locale.ROOT);
        switch (op) {
            case "all":
                if (l.count() > 2) throw l.extra(2, "tlbi IPA SIZE, or tlbi all");
                return m -> {
                    int before = m.tlb().size();
                    m.tlbs().flushVmid(m.spec().vmid());
                    printed(m, "tlbi all: TLBI of every entry of vmid " + m.spec().vmid(), before);
                };
            case "ipas2e1":
            case "ipas2le1":
                return byIpa(l, op, usage);
            case "ripas2e1":
            case "ripas2le1":
                return range(l, op, usage);
            case "vmalls12e1":
            case "vmalle1":
                if (l.count() > 2) throw l.extra(2, usage);
                return m -> {
                    if (op.equals("vmalls12e1")) m.tlbs().vmalls12e1is(m.spec().vmid()); else m.tlbs().vmalle1is(m.spec().vmid());
                    issued(m, "tlbi " + op + ": TLBI " + op.toUpperCase(Locale.ROOT) + "IS of vmid " + m.spec().vmid());
                };
            default:
                break;
        }
        l.args("tlbi IPA SIZE, or tlbi all", "IPA", "SIZE");
        long ipa = l.number(1, "IPA");
        long size = l.size(2, "SIZE");
        if (size == 0) throw l.error("tlbi SIZE is 0", "a size above 0 (tlbi IPA SIZE, or tlbi all)");
        l.requireInside("tlbi range", ipa, size);
        return m -> {
            int before = m.tlb().size();
            m.tlbs().flushVmidRange(m.spec().vmid(), ipa, size);
            printed(m, "tlbi " + Numbers.range(ipa, size) + " (" + Numbers.size(size) + "): range TLBI of vmid " + m.spec().vmid(),
                    before);
        };
    }

    /** {@code ttl=L} at token {@code i}, or no hint when the line ends before it. */
    private static int ttl(Line l, int i, String usage) throws ScenarioException {
        if (l.count() <= i) return TlbMaintenance.LEVEL_UNKNOWN;
        if (l.count() > i + 1) throw l.extra(i + 1, usage);
        String t = l.token(i);
        if (!t.toLowerCase(Locale.ROOT).startsWith("ttl=")) throw l.error("\"" + t + "\" is not ttl=LEVEL", usage);
        int level = l.level(t.substring(4), "ttl");
        if (level < 0) throw l.error("ttl level -1 cannot be encoded (no TTL hint exists for it)", "ttl=0..3");
        return level;
    }

    private static Step.Action byIpa(Line l, String op, String usage) throws ScenarioException {
        if (l.count() < 3) throw l.missing(usage, "", "IPA");
        long ipa = l.number(2, "IPA");
        int ttl = ttl(l, 3, usage);
        l.requireInside("tlbi " + op, ipa, 1);
        return m -> {
            int vmid = m.spec().vmid();
            if (op.equals("ipas2e1")) m.tlbs().ipas2e1is(vmid, ipa, ttl); else m.tlbs().ipas2le1is(vmid, ipa, ttl);
            Granule g = m.geometry().granule();
            issued(m, "tlbi " + op + " " + Numbers.hex(ipa) + hint(ttl) + ": TLBI " + op.toUpperCase(Locale.ROOT) + "IS, Xt="
                    + Numbers.hex(TlbiOperand.ipa(g, ipa, ttl)) + ", vmid " + vmid);
        };
    }

    private static Step.Action range(Line l, String op, String usage) throws ScenarioException {
        if (l.count() < 4) throw l.missing(usage, "", "IPA", "SIZE");
        long ipa = l.number(2, "IPA");
        long size = l.size(3, "SIZE");
        int ttl = ttl(l, 4, usage);
        String geom = "(NUM + 1) * 2^(5 * SCALE + 1) pages with NUM 0..31, SCALE 0..3, at a page-aligned IPA";
        if (size == 0) throw l.error("tlbi " + op + " SIZE is 0", geom);
        l.requireInside("tlbi " + op, ipa, size);
        Granule g = l.table().geometry().granule();
        long page = g.pageSize();
        java.util.List<Long> ops = (ipa & (page - 1)) != 0 || (size & (page - 1)) != 0 ? java.util.List.of()
                : TlbiOperand.split(g, ipa, size / page);
        if (ops.size() != 1 || (ops.get(0) & TlbiOperand.SINGLE) != 0) {
            throw l.error("tlbi " + op + " " + Numbers.hex(ipa) + " " + Numbers.size(size) + " is not one range operand", geom);
        }
        long operand;
        try {
            int scale = (int) ((ops.get(0) >>> 44) & 3), num = (int) ((ops.get(0) >>> 39) & 31);
            operand = TlbiOperand.range(g, ipa, scale, num, ttl);
        } catch (PageTableException e) {
            throw l.error("tlbi " + op + ": " + e.getMessage(), "ttl=1..3 for a range TLBI, or none");
        }
        return m -> {
            int vmid = m.spec().vmid();
            if (op.equals("ripas2e1")) m.tlbs().ripas2e1is(vmid, operand); else m.tlbs().ripas2le1is(vmid, operand);
            issued(m, "tlbi " + op + " " + Numbers.range(ipa, size) + hint(ttl) + ": TLBI " + op.toUpperCase(Locale.ROOT) + "IS, Xt="
                    + Numbers.hex(operand) + " (SCALE " + ((operand >>> 44) & 3) + ", NUM " + ((operand >>> 39) & 31) + "), vmid " + vmid);
        };
    }

    private static String hint(int ttl) {
        return ttl == TlbMaintenance.LEVEL_UNKNOWN ? "" : " ttl=" + ttl;
    }

    private static void issued(Machine m, String what) {
        m.print(what + "; issued, completes at the next dsb (" + m.tlbs().pendingTlbis() + " pending)");
    }

    private static void printed(Machine m, String what, int entriesBefore) {
        m.print(what + " on every CPU; " + m.tlb().name() + " TLB entries " + entriesBefore + " -> " + m.tlb().size());
    }
}
