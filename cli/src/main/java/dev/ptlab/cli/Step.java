package dev.ptlab.cli;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.table.CoalescePolicy;

/** One parsed scenario line (a command). Every step remembers its line number for messages. */
sealed interface Step {
    int line();

    /** The command's keyword, as messages name it. */
    default String verb() {
        return getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT);
    }

    /** {@code stage2 ...} or {@code hyp ...}: creates the scenario's one table. */
    record Table(int line, Geometry geometry, int vmid, int flags, boolean checking, long memBase, long memSize)
            implements Step {
        boolean stage2() {
            return geometry.stage() == dev.ptlab.core.arch.Stage.STAGE2;
        }

        @Override
        public String verb() {
            return stage2() ? "stage2" : "hyp";
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

    /** {@code wrprotect IPA SIZE}: no TLBI (the caller's job, see {@link Tlbi}). */
    record Wrprotect(int line, long addr, long size) implements Step {}

    /** {@code tlbi IPA SIZE} (range TLBI of the VMID) or {@code tlbi all} ({@code all}: the whole VMID). */
    record Tlbi(int line, long addr, long size, boolean all) implements Step {}

    /** {@code mkyoung IPA}. */
    record Mkyoung(int line, long addr) implements Step {}

    /** {@code mkold IPA SIZE} ({@code mkold}) or {@code young IPA SIZE} (test only). */
    record Young(int line, long addr, long size, boolean mkold) implements Step {
        @Override
        public String verb() {
            return mkold ? "mkold" : "young";
        }
    }

    /** {@code relax IPA PROT}. */
    record Relax(int line, long addr, Prot prot) implements Step {}

    /** {@code split IPA SIZE [frames=N]}; {@code frames < 0}: enough for a full split. */
    record Split(int line, long addr, long size, long frames) implements Step {}

    /** {@code flush IPA SIZE}. */
    record Flush(int line, long addr, long size) implements Step {}

    /** {@code set-owner IPA SIZE OWNER}. */
    record SetOwner(int line, long addr, long size, int owner) implements Step {
        @Override
        public String verb() {
            return "set-owner";
        }
    }

    /** {@code idmap-greedy ADDR PROT RANGE-START RANGE-END}: the range is {@code [start, end)}. */
    record IdmapGreedy(int line, long addr, Prot prot, long start, long end) implements Step {
        @Override
        public String verb() {
            return "idmap-greedy";
        }
    }

    /** {@code coalesce-policy install-first|unmap-first}. */
    record Coalesce(int line, CoalescePolicy policy) implements Step {
        @Override
        public String verb() {
            return "coalesce-policy";
        }
    }

    /** {@code counters}. */
    record Counters(int line) implements Step {}

    /** {@code expect-leaf ADDR level N}: a valid leaf at level N translates ADDR. */
    record ExpectLeaf(int line, long addr, int level) implements Step {
        @Override
        public String verb() {
            return "expect-leaf";
        }
    }

    /** {@code expect-owner ADDR OWNER}: the entry at ADDR is invalid and annotated with OWNER (0: not annotated). */
    record ExpectOwner(int line, long addr, int owner) implements Step {
        @Override
        public String verb() {
            return "expect-owner";
        }
    }
}
