package dev.ptlab.cli.scenario;

import dev.ptlab.core.table.Leaf;

/** {@code leaf ADDR}: the leaf the software walker finds for ADDR, printed. */
final class LeafLine implements ScenarioCommand {
    @Override
    public String keyword() {
        return "leaf";
    }

    @Override
    public String grammar() {
        return "\"leaf\" ADDR";
    }

    @Override
    public Needs needs() {
        return Needs.TABLE;
    }

    @Override
    public Step.Action parse(Line l) throws ScenarioException {
        l.args("leaf ADDR", "ADDR");
        long addr = l.number(1, "ADDR");
        return m -> {
            Leaf leaf = m.table().getLeaf(addr);
            m.print("leaf " + Describe.leaf(m.geometry(), m.fwb(), addr, leaf.pte(), leaf.level()));
        };
    }
}
