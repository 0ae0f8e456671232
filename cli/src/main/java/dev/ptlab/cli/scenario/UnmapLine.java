package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;

/** {@code unmap ADDR SIZE}: a stage-2 unmap (every overlapping leaf) or a hyp unmap (stops at a hole). */
final class UnmapLine extends RangeCommand {
    UnmapLine() {
        super("unmap", Needs.TABLE, "\"unmap\" ADDR SIZE");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String a = l.addrName();
        l.args("unmap " + a + " SIZE", a, "SIZE");
        long addr = l.number(1, a);
        long size = l.size(2, "SIZE");
        return m -> unmap(m, addr, size);
    }

    private static void unmap(Machine m, long addr, long size) {
        Counts before = new Counts(m);
        long unmapped = size;
        if (m.stage2() != null) {
            m.stage2().unmap(addr, size);
        } else {
            unmapped = m.hyp().unmap(addr, size);
        }
        m.check();
        if (!m.printing()) return;
        m.print("unmap " + Numbers.range(addr, size) + " (" + Numbers.size(size) + "): removed "
                + Machine.plural(before.leavesRemoved(), "leaf", "leaves") + ", freed "
                + Machine.plural(before.tablesFreed(), "table", "tables") + "; " + before.tlbiCount()
                + (m.hyp() != null && unmapped < size ? "; stopped after " + Numbers.size(unmapped) + " (a hole or a block"
                        + " reaching past the range: hyp unmap stops there)" : ""));
    }
}
