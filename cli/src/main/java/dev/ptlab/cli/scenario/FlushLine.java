package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;

/** {@code flush IPA SIZE}: D-cache clean+invalidate of every cacheable leaf (nothing with fwb). */
final class FlushLine implements RangeCommand {
    @Override
    public String keyword() {
        return "flush";
    }

    @Override
    public String grammar() {
        return "\"flush\" IPA SIZE";
    }

    @Override
    public Needs needs() {
        return Needs.STAGE2;
    }

    @Override
    public Step.Action parse(Line l) throws ScenarioException {
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
