package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.table.AddressRange;
import dev.ptlab.core.table.Stage2PageTable;

/**
 * {@code idmap-greedy ADDR PROT RANGE-START RANGE-END} (identity-map tables only): pKVM's greedy
 * host idmap of the largest leaf around ADDR inside the range.
 */
final class IdmapGreedyLine extends ScenarioCommand {
    IdmapGreedyLine() {
        super("idmap-greedy", Needs.STAGE2, "\"idmap-greedy\" ADDR PROT RANGE-START RANGE-END");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "idmap-greedy ADDR PROT RANGE-START RANGE-END";
        TableSpec table = l.table();
        if ((table.flags() & Stage2PageTable.IDMAP) == 0) {
            throw l.error("idmap-greedy needs an identity-map table and the " + table.verb() + " line (line " + table.line()
                    + ") has no idmap option", "\"stage2 ... idmap\"");
        }
        l.args(usage, "ADDR", "PROT", "RANGE-START", "RANGE-END");
        long addr = l.number(1, "ADDR");
        Prot prot = Prot.parse(l.token(2));
        long start = l.number(3, "RANGE-START");
        long end = l.number(4, "RANGE-END");
        if (start >= end) {
            throw l.error("idmap-greedy range [" + Numbers.hex(start) + ", " + Numbers.hex(end) + ") is empty or reversed",
                    "RANGE-START below RANGE-END (the range is [RANGE-START, RANGE-END))");
        }
        if (addr < start || addr >= end) {
            throw l.error("idmap-greedy ADDR " + Numbers.hex(addr) + " is outside the range [" + Numbers.hex(start) + ", "
                    + Numbers.hex(end) + ")", "RANGE-START <= ADDR < RANGE-END");
        }
        l.requireInside("idmap-greedy range", start, end - start);
        return m -> idmapGreedy(m, addr, prot, start, end);
    }

    private static void idmapGreedy(Machine m, long addr, Prot prot, long start, long end) {
        // Generous: the tables a map of the whole range could need, plus one per level for a
        // block around ADDR that must be shrunk.
        m.topUp(TableBound.map(m.geometry(), start, end - start, start) + (Granule.LAST_LEVEL - m.geometry().startLevel()));
        Counts before = new Counts(m);
        AddressRange mapped = m.stage2().idmapGreedy(addr, prot, new AddressRange(start, end), m.cache());
        m.check();
        if (!m.printing()) return;
        long n = before.coalesced();
        m.print("idmap-greedy " + Numbers.hex(addr) + " " + prot + " in [" + Numbers.hex(start) + ", " + Numbers.hex(end)
                + "): mapped " + Numbers.range(mapped.start(), mapped.size()) + " (" + Numbers.size(mapped.size()) + ") as "
                + m.leafBreakdown(mapped.start(), mapped.size()) + "; " + before.installedTables() + "; " + before.bbmAndTlbis()
                + (n == 0 ? "" : "; coalesced " + Machine.plural(n, "table into a block", "tables into blocks")));
    }

    @Override
    String expected(Errno errno, Machine m) {
        return errno == Errno.EPERM ? "ADDR's own page free of mappings with other attributes and of owner annotations"
                : m.expectedByDefault(errno);
    }
}
