package dev.ptlab.cli;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;

/** One parsed scenario line (a command). Every step remembers its line number for messages. */
sealed interface Step {
    int line();

    /** {@code stage2 ...} or {@code hyp ...}: creates the scenario's one table. */
    record Table(int line, Geometry geometry, int vmid, int flags, boolean checking, long memBase, long memSize)
            implements Step {
        boolean stage2() {
            return geometry.stage() == dev.ptlab.core.arch.Stage.STAGE2;
        }
    }

    /** {@code map ADDR SIZE PA PROT}. */
    record Map(int line, long addr, long size, long pa, Prot prot) implements Step {}

    /** {@code unmap ADDR SIZE}. */
    record Unmap(int line, long addr, long size) implements Step {}

    /** {@code translate ADDR [ACCESS]}. */
    record Translate(int line, long addr, Access access) implements Step {}

    /**
     * {@code expect ADDR [ACCESS] -> PA} ({@code fault == null}) or {@code expect ADDR [ACCESS]
     * fault TYPE LEVEL}.
     */
    record Expect(int line, long addr, Access access, long pa, FaultType fault, int level) implements Step {}

    /** {@code leaf ADDR}. */
    record Leaf(int line, long addr) implements Step {}

    /** {@code dump}. */
    record Dump(int line) implements Step {}
}
