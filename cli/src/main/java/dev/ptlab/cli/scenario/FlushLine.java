package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;

/** {@code flush IPA SIZE}: D-cache clean+invalidate of every cacheable leaf (nothing with fwb). */
final class FlushLine extends RangeCommand {
    FlushLine() {
        super("flush", Needs.STAGE2, "\"flush\" IPA SIZE");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("flush IPA SIZE", "IPA", "SIZE");
        long ipa = l.number(1, "IPA");
        long size = l.size(2, "SIZE");
        return m -> {
            Counts before = new Counts(m);
            m.stage2().flush(ipa, size);
            m.print("flush " + Numbers.range(ipa, size) + " (" + Numbers.size(size) + "): "
                    + (m.fwb() ? "nothing to do with fwb (the stage-2 attributes force write-back)"
                            : "D-cache clean+invalidate of " + Machine.plural(before.dcacheOps(), "cacheable leaf", "cacheable leaves")
                                    + " (" + Numbers.bytes(before.dcacheBytes()) + ")"));
        };
    }
}
