package dev.ptlab.cli;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.sim.Backing;
import dev.ptlab.sim.VmConfig;

/** One parsed scenario line (a command). Every step remembers its line number for messages. */
sealed interface Step {
    int line();

    /** The command's keyword, as messages name it. */
    default String verb() {
        return getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT);
    }

    /**
     * {@code stage2 ...}, {@code hyp ...} or {@code vm ...}: creates the scenario's one table
     * ({@code vm}: a VM whose stage-2 table it is; {@code vm == null} otherwise).
     */
    record Table(int line, Geometry geometry, int vmid, int flags, boolean checking, long memBase, long memSize, VmSpec vm)
            implements Step {
        Table(int line, Geometry geometry, int vmid, int flags, boolean checking, long memBase, long memSize) {
            this(line, geometry, vmid, flags, checking, memBase, memSize, null);
        }

        boolean stage2() {
            return geometry.stage() == dev.ptlab.core.arch.Stage.STAGE2;
        }

        @Override
        public String verb() {
            return vm != null ? "vm" : stage2() ? "stage2" : "hyp";
        }
    }

    /** What a {@code vm} line asks for besides the table: the VM's configuration and its vCPUs. */
    record VmSpec(VmConfig config, int vcpus) {}

    /** {@code memslot GPA SIZE BACKING HOSTPA [ro]}: the VM's next memslot (ids 0, 1, ... in order). */
    record AddMemslot(int line, long gpa, long size, Backing backing, long hostPa, boolean readOnly) implements Step {
        @Override
        public String verb() {
            return "memslot";
        }
    }

    /** What {@code vcpu-access ... -> X} expects: a PA, an MMIO exit or an address-size error. */
    enum Outcome { PA, MMIO, ADDRESS_SIZE }

    /**
     * {@code vcpu-access VCPU ADDR ACCESS [-> PA | -> mmio | -> address-size]}: one guest access
     * through the vCPU's MMU and the VM's abort handler; {@code expected == null}: no expectation.
     */
    record VcpuAccess(int line, int vcpu, long addr, Access access, Outcome expected, long pa) implements Step {
        @Override
        public String verb() {
            return "vcpu-access";
        }
    }

    /** {@code dirty-log enable|disable|get SLOT [keep]}. */
    record DirtyLog(int line, Action action, int slot, boolean keep) implements Step {
        enum Action { ENABLE, DISABLE, GET }

        @Override
        public String verb() {
            return "dirty-log";
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
