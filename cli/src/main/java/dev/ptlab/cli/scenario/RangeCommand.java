package dev.ptlab.cli.scenario;

import dev.ptlab.core.Errno;

/** A command on an {@code ADDR SIZE} range whose alignment the library checks (EINVAL). */
interface RangeCommand extends ScenarioCommand {
    @Override
    default String expected(Errno errno, Machine m) {
        return errno == Errno.EINVAL ? m.alignedRangeExpected() : m.expectedByDefault(errno);
    }
}
