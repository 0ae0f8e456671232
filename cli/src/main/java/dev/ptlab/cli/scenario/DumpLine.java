package dev.ptlab.cli.scenario;

/** {@code dump}: the compact table tree, as {@code ptlab dump} prints it. */
final class DumpLine extends ScenarioCommand {
    DumpLine() {
        super("dump", Needs.TABLE, "\"dump\"");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("dump");
        return m -> {
            if (m.printing()) m.dump(m.out());
        };
    }
}
