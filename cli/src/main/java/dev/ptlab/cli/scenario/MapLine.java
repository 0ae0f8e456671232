package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.table.Stage2PageTable;
import java.util.Locale;

/**
 * {@code map ADDR SIZE PA PROT}: a stage-2 map (with the memory cache topped up to the most
 * tables it can install) or a hyp map.
 */
final class MapLine extends ScenarioCommand {
    MapLine() {
        super("map", Needs.TABLE, "\"map\" ADDR SIZE PA PROT");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String a = l.addrName();
        l.args("map " + a + " SIZE PA PROT", a, "SIZE", "PA", "PROT");
        long addr = l.number(1, a);
        long size = l.size(2, "SIZE");
        long pa = l.number(3, "PA");
        Prot prot = Prot.parse(l.token(4));
        return m -> map(m, addr, size, pa, prot);
    }

    private static void map(Machine m, long addr, long size, long pa, Prot prot) {
        Counts before = new Counts(m);
        if (m.stage2() != null) {
            if (m.inside(addr, size)) m.topUp(TableBound.map(m.geometry(), addr, size, pa)); // else the library reports it
            m.stage2().map(addr, size, pa, prot, m.cache());
        } else {
            m.hyp().map(addr, size, pa, prot);
        }
        m.check();
        if (!m.printing()) return;
        long coalesced = before.coalesced();
        m.print("map " + Numbers.range(addr, size) + " (" + Numbers.size(size) + ") -> " + Numbers.hex(pa) + " " + prot + ": "
                + m.leafBreakdown(addr, size) + "; installed " + Machine.plural(before.leavesInstalled(), "leaf", "leaves") + ", "
                + Machine.plural(before.tablesInstalled(), "table", "tables") + "; " + before.bbm() + " BBM"
                + (coalesced == 0 ? "" : "; coalesced " + Machine.plural(coalesced, "table into a block", "tables into blocks")
                        + " (" + m.stage2().coalescePolicy().name().toLowerCase(Locale.ROOT).replace('_', '-') + ", invalid for "
                        + Machine.plural(before.invalidWindowSteps(), "walker step", "walker steps") + ")"));
    }

    @Override
    String expected(Errno errno, Machine m) {
        if (errno != Errno.EINVAL) return m.expectedByDefault(errno);
        return m.addrName() + ", SIZE and PA aligned" + m.toTheGranule() + " and a prot the " + TableDump.kind(m.geometry())
                + " table accepts" + (m.stage2() != null && (m.spec().flags() & Stage2PageTable.IDMAP) != 0
                        ? " (idmap table: PA equal to IPA)" : "")
                // hyp map refuses a live conflict with EINVAL too (Linux 7.1-rc4 hyp_map_walker)
                + (m.stage2() == null ? ", and no live mapping in the way (hyp map never replaces one: unmap it first)" : "");
    }
}
