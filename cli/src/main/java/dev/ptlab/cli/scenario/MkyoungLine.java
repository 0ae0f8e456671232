package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.walk.Status;

/** {@code mkyoung IPA}: the access-flag fault handler sets the leaf's access flag; no TLBI. */
final class MkyoungLine extends ScenarioCommand {
    MkyoungLine() {
        super("mkyoung", Needs.STAGE2, "\"mkyoung\" IPA");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("mkyoung IPA", "IPA");
        long ipa = l.number(1, "IPA");
        return m -> {
            Status st = m.stage2().mkyoung(ipa);
            m.check();
            if (!m.printing()) return;
            m.print("mkyoung " + Numbers.hex(ipa) + ": " + st + (st == Status.OK ? ", access flag set on the " + m.leafName(ipa)
                    : st == Status.NOT_MAPPED ? " (no valid leaf translates it)" : " (the entry is locked or changed)")
                    + "; no TLBI (an entry with AF=0 is never cached)");
        };
    }
}
