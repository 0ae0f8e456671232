package dev.ptlab.cli.scenario;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.sim.VmConfig;

/**
 * What the scenario's table line ({@code stage2 ...}, {@code hyp ...} or {@code vm ...}) asks
 * for; {@code vm == null} unless it is a vm line. The parser keeps it to check later lines.
 */
record TableSpec(int line, Geometry geometry, int vmid, int flags, boolean checking, long memBase, long memSize, VmSpec vm) {
    /** What a {@code vm} line asks for besides the table: the VM's configuration and its vCPUs. */
    record VmSpec(VmConfig config, int vcpus) {}

    boolean stage2() {
        return geometry.stage() == Stage.STAGE2;
    }

    /** The table line's keyword. */
    String verb() {
        return vm != null ? "vm" : stage2() ? "stage2" : "hyp";
    }

    /** IPA or VA: what the table's input addresses are called. */
    String addrName() {
        return stage2() ? "IPA" : "VA";
    }
}
