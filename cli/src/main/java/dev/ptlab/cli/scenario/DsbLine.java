package dev.ptlab.cli.scenario;

/**
 * {@code dsb}: DSB ISH, completing every TLBI the scenario issued with the single-instruction
 * {@code tlbi} forms; until then the entries they name stay cached, as the architecture allows.
 */
final class DsbLine extends ScenarioCommand {
    DsbLine() {
        super("dsb", Needs.STAGE2, "\"dsb\"");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        if (l.count() > 1) throw l.extra(1, "dsb");
        return m -> {
            int pending = m.tlbs().pendingTlbis();
            int leaves = m.tlb().size(), walk = m.tlb().walkSize();
            m.tlbs().dsb();
            m.print("dsb: completed " + pending + (pending == 1 ? " TLBI" : " TLBIs") + "; " + m.tlb().name() + " TLB entries "
                    + leaves + " -> " + m.tlb().size() + ", walk-cache entries " + walk + " -> " + m.tlb().walkSize());
        };
    }
}
