package dev.ptlab.cli.scenario;

import dev.ptlab.core.Errno;

/** A command on an {@code ADDR SIZE} range whose alignment the library checks (EINVAL). */
abstract class RangeCommand extends ScenarioCommand {
    RangeCommand(String keyword, Needs needs, String grammar) {
        super(keyword, needs, grammar);
    }

    @Override
    String expected(Errno errno, Machine m) {
        return errno == Errno.EINVAL ? m.alignedRangeExpected() : m.expectedByDefault(errno);
    }
}
