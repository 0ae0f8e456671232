package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;

/**
 * {@code tlbi IPA SIZE} (a range TLBI of the table's VMID on every CPU) or {@code tlbi all} (every
 * entry of the VMID): the invalidation a caller of wrprotect or mkold issues.
 */
final class TlbiLine extends ScenarioCommand {
    TlbiLine() {
        super("tlbi", Needs.STAGE2, "\"tlbi\" IPA SIZE | \"tlbi\" \"all\"");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "tlbi IPA SIZE, or tlbi all";
        if (l.count() == 1) throw l.error("tlbi is missing IPA and SIZE (or \"all\")", usage);
        if (l.token(1).equalsIgnoreCase("all")) {
            if (l.count() > 2) throw l.extra(2, usage);
            return m -> {
                int before = m.tlb().size();
                m.tlbs().flushVmid(m.spec().vmid());
                printed(m, "tlbi all: TLBI of every entry of vmid " + m.spec().vmid(), before);
            };
        }
        l.args(usage, "IPA", "SIZE");
        long ipa = l.number(1, "IPA");
        long size = l.size(2, "SIZE");
        if (size == 0) throw l.error("tlbi SIZE is 0", "a size above 0 (" + usage + ")");
        l.requireInside("tlbi range", ipa, size);
        return m -> {
            int before = m.tlb().size();
            m.tlbs().flushVmidRange(m.spec().vmid(), ipa, size);
            printed(m, "tlbi " + Numbers.range(ipa, size) + " (" + Numbers.size(size) + "): range TLBI of vmid " + m.spec().vmid(),
                    before);
        };
    }

    private static void printed(Machine m, String what, int entriesBefore) {
        m.print(what + " on every CPU; " + m.tlb().name() + " TLB entries " + entriesBefore + " -> " + m.tlb().size());
    }
}
