package dev.ptlab.cli.scenario;

import dev.ptlab.core.table.CoalescePolicy;
import java.util.Locale;

/** {@code coalesce-policy install-first|unmap-first}: the order in which a later map replaces a table by a block. */
final class CoalescePolicyLine extends ScenarioCommand {
    CoalescePolicyLine() {
        super("coalesce-policy", Needs.STAGE2, "\"coalesce-policy\" ( \"install-first\" | \"unmap-first\" | \"legacy\" )");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("coalesce-policy install-first|unmap-first|legacy", "POLICY");
        CoalescePolicy policy;
        switch (l.token(1).toLowerCase(Locale.ROOT)) {
            case "install-first": policy = CoalescePolicy.INSTALL_FIRST; break;
            // "legacy" as the vm line's coalesce= and ptlab's --coalesce name the same order.
            case "unmap-first": case "legacy": policy = CoalescePolicy.UNMAP_FIRST; break;
            default: throw l.error("coalesce policy \"" + l.token(1) + "\" is unknown", "install-first, unmap-first or legacy");
        }
        return m -> {
            m.stage2().setCoalescePolicy(policy);
            m.print("coalesce-policy " + (policy == CoalescePolicy.INSTALL_FIRST
                    ? "install-first: map replaces a table by a block by breaking the table entry, installing the block, "
                            + "then freeing the old tables (the range is never unmapped)"
                    : "unmap-first: map replaces a table by a block by breaking the table entry, TLBI of the whole VMID, "
                            + "freeing the old tables, then installing the block (the range is unmapped meanwhile)"));
        };
    }
}
