package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;

/**
 * {@code mkold IPA SIZE} (clear the access flags, say whether any was set) and {@code young IPA
 * SIZE} (only say): the kernel's test_clear_young with and without mkold. No TLBI.
 */
final class YoungLine extends RangeCommand {
    static final YoungLine MKOLD = new YoungLine(true);
    static final YoungLine YOUNG = new YoungLine(false);

    private final boolean mkold;

    private YoungLine(boolean mkold) {
        super(mkold ? "mkold" : "young", Needs.STAGE2, mkold ? "\"mkold\" IPA SIZE" : "\"young\" IPA SIZE");
        this.mkold = mkold;
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args(keyword() + " IPA SIZE", "IPA", "SIZE");
        long ipa = l.number(1, "IPA");
        long size = l.size(2, "SIZE");
        return m -> {
            Counts before = new Counts(m);
            boolean young = m.stage2().testClearYoung(ipa, size, mkold);
            m.check();
            String head = keyword() + " " + Numbers.range(ipa, size) + " (" + Numbers.size(size) + "): ";
            if (!mkold) {
                m.print(head + (young ? "young (a valid leaf in the range has its access flag set)" : "old (no valid leaf in the range "
                        + "has its access flag set)"));
                return;
            }
            m.print(head + (young ? "was young" : "was old") + "; access flag cleared on " + before.attrUpdatedLeaves()
                    + "; no TLBI (an entry cached while young still translates until \"tlbi\")");
        };
    }
}
