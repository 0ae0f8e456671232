package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;

/**
 * {@code set-owner IPA SIZE OWNER}: an invalid, counted owner annotation in every page of the
 * range (the memory cache topped up for page-sized entries).
 */
final class SetOwnerLine extends RangeCommand {
    SetOwnerLine() {
        super("set-owner", Needs.STAGE2, "\"set-owner\" IPA SIZE OWNER");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "set-owner IPA SIZE OWNER";
        l.args(usage, "IPA", "SIZE", "OWNER");
        long ipa = l.number(1, "IPA");
        long size = l.size(2, "SIZE");
        int owner = l.owner(l.token(3), usage);
        return m -> {
            if (m.inside(ipa, size)) m.topUp(TableBound.pages(m.geometry(), ipa, size));
            Counts before = new Counts(m);
            m.stage2().setOwner(ipa, size, m.cache(), owner);
            m.check();
            m.print("set-owner " + Numbers.range(ipa, size) + " (" + Numbers.size(size) + ") owner " + owner + ": "
                    + Machine.plural(size / m.geometry().granule().pageSize(), "page", "pages")
                    + (owner == 0 ? " now plain invalid entries" : " now invalid entries annotated with owner " + owner)
                    + "; " + before.installedTables() + "; " + before.bbmAndTlbis());
        };
    }
}
