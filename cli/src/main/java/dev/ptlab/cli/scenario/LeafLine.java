package dev.ptlab.cli.scenario;

import dev.ptlab.core.table.Leaf;

/** {@code leaf ADDR}: the leaf the software walker finds for ADDR, printed. */
final class LeafLine extends ScenarioCommand {
    LeafLine() {
        super("leaf", Needs.TABLE, "\"leaf\" ADDR");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("leaf ADDR", "ADDR");
        long addr = l.number(1, "ADDR");
        return m -> {
            Leaf leaf = m.table().getLeaf(addr);
            m.print("leaf " + Describe.leaf(m.geometry(), m.fwb(), addr, leaf.pte(), leaf.level()));
        };
    }
}
