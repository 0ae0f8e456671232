package dev.ptlab.cli.scenario;

import dev.ptlab.core.hw.Access;

/** {@code translate ADDR [ACCESS]}: a hardware-style walk by cpu0's MMU, printed. */
final class TranslateLine extends ScenarioCommand {
    TranslateLine() {
        super("translate", Needs.TABLE, "\"translate\" ADDR [ ACCESS ]");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "translate ADDR [read|write|exec]";
        if (l.count() < 2) throw l.missing(usage, "ADDR");
        if (l.count() > 3) throw l.extra(3, usage);
        Access access = l.count() == 3 ? l.access(l.token(2)) : Access.READ;
        long addr = l.number(1, "ADDR");
        return m -> m.print("translate " + m.describe(m.translate(addr, access)));
    }
}
