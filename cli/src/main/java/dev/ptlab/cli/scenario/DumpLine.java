package dev.ptlab.cli.scenario;

/** {@code dump}: the compact table tree, as {@code ptlab dump} prints it. */
final class DumpLine implements ScenarioCommand {
    @Override
    public String keyword() {
        return "dump";
    }

    @Override
    public String grammar() {
        return "\"dump\"";
    }

    @Override
    public Needs needs() {
        return Needs.TABLE;
    }

    @Override
    public Step.Action parse(Line l) throws ScenarioException {
        l.args("dump");
        return m -> {
            if (m.printing()) m.dump(m.out());
        };
    }
}
