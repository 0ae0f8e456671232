package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.table.Leaf;

/** {@code expect-leaf ADDR level N}: the software walker finds a valid leaf at level N for ADDR. */
final class ExpectLeafLine extends ScenarioCommand {
    ExpectLeafLine() {
        super("expect-leaf", Needs.TABLE, "\"expect-leaf\" ADDR \"level\" LEVEL");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "expect-leaf ADDR level N";
        l.args(usage, "ADDR", "\"level\"", "N");
        long addr = l.number(1, "ADDR");
        if (!l.token(2).equalsIgnoreCase("level")) {
            throw l.error("expect-leaf has \"" + l.token(2) + "\" where \"level\" belongs", usage);
        }
        int level = l.level(l.token(3), "leaf");
        int line = l.number();
        return m -> {
            Leaf leaf = m.table().getLeaf(addr);
            String echo = "expect-leaf " + Numbers.hex(addr) + " level " + level;
            String wanted = "a valid leaf at level " + level + " for " + Numbers.hex(addr);
            boolean ok = Pte.isValid(leaf.pte()) && leaf.level() == level;
            String got = Pte.isValid(leaf.pte())
                    ? "L" + leaf.level() + " " + Numbers.size(m.geometry().granule().levelSize(leaf.level()))
                            + (leaf.level() == Granule.LAST_LEVEL ? " page" : " block")
                    : "no leaf (L" + leaf.level() + " " + (leaf.pte() == 0 ? "invalid entry" : Describe.invalidEntry(leaf.pte())) + ")";
            m.result(echo, line, wanted, ok, got);
        };
    }
}
