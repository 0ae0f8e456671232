package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.table.Leaf;

/** {@code expect-owner ADDR OWNER}: the entry at ADDR is invalid and annotated with OWNER (0: not annotated). */
final class ExpectOwnerLine extends ScenarioCommand {
    ExpectOwnerLine() {
        super("expect-owner", Needs.STAGE2, "\"expect-owner\" ADDR OWNER");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "expect-owner ADDR OWNER";
        l.args(usage, "ADDR", "OWNER");
        long addr = l.number(1, "ADDR");
        int owner = l.owner(l.token(2), usage);
        int line = l.number();
        return m -> {
            Leaf leaf = m.table().getLeaf(addr);
            long pte = leaf.pte();
            String echo = "expect-owner " + Numbers.hex(addr) + " " + owner;
            String wanted = "owner " + owner + " at " + Numbers.hex(addr);
            boolean ok = !Pte.isValid(pte) && !Pte.isLocked(pte) && Pte.owner(pte) == owner;
            String got = Pte.isValid(pte) ? "a valid L" + leaf.level() + " leaf"
                    : Pte.isLocked(pte) ? "a LOCKED entry at L" + leaf.level()
                    : "owner " + Pte.owner(pte) + " (L" + leaf.level() + " entry " + Numbers.hex(pte) + ")";
            m.result(echo, line, wanted, ok, got);
        };
    }
}
