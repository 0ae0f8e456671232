package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;

/** {@code wrprotect IPA SIZE}: write permission off every valid leaf in the range; no TLBI (see tlbi). */
final class WrprotectLine extends RangeCommand {
    WrprotectLine() {
        super("wrprotect", Needs.STAGE2, "\"wrprotect\" IPA SIZE");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("wrprotect IPA SIZE", "IPA", "SIZE");
        long ipa = l.number(1, "IPA");
        long size = l.size(2, "SIZE");
        return m -> {
            Counts before = new Counts(m);
            m.stage2().wrprotect(ipa, size);
            m.check();
            m.print("wrprotect " + Numbers.range(ipa, size) + " (" + Numbers.size(size) + "): write permission removed from "
                    + before.attrUpdatedLeaves() + "; " + before.tlbiCount()
                    + " (the caller's TLBI is separate: until \"tlbi\" a CPU may still write through its TLB)");
        };
    }
}
