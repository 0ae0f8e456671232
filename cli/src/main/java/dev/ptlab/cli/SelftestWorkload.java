package dev.ptlab.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ptlab.sim.KvmPageTableSelftest;
import dev.ptlab.sim.Progress;
import dev.ptlab.sim.VmConfig;
import dev.ptlab.sim.WorkloadOptions;
import java.io.PrintWriter;

/** {@code --workload selftest}: the kernel's kvm_page_table_test phases ({@link KvmPageTableSelftest}); checks the dirty log and adjust. */
final class SelftestWorkload extends Workload<KvmPageTableSelftest.Result> {
    SelftestWorkload() {
        super("selftest", "kvm_page_table_test", "kvm_page_table_test");
    }

    @Override
    String jsonName() {
        return "kvm_page_table_test";
    }

    @Override
    KvmPageTableSelftest.Result run(VmConfig config, WorkloadOptions<?> layout, SimulationOptions o, Progress progress) {
        return KvmPageTableSelftest.run(config, KvmPageTableSelftest.Options.defaults().layout(layout).overlap(o.overlap), progress);
    }

    @Override
    void print(PrintWriter out, KvmPageTableSelftest.Result r) {
        out.println("dirty log: " + r.written.cardinality() + " pages written in update, " + r.logged.cardinality() + " logged"
                + (r.dirtyLogExact() ? " (exact)" : " (MISMATCH)"));
        out.println("adjust: " + (r.adjustDifference == null ? "the table equals the one create built"
                : r.adjustShapeDifference == null ? "the same mappings as create built; pages only read during update stay write-protected"
                : "differs from create's table, first " + r.adjustShapeDifference));
    }

    @Override
    void writeJson(ObjectNode root, KvmPageTableSelftest.Result r) {
        ObjectNode dirty = root.putObject("dirtyLog");
        dirty.put("written", r.written.cardinality());
        dirty.put("logged", r.logged.cardinality());
        dirty.put("exact", r.dirtyLogExact());
        root.put("adjustEqualsCreate", r.adjustDifference == null);
        root.put("adjustSameMappings", r.adjustShapeDifference == null);
        if (r.adjustDifference != null) root.put("adjustDifference", r.adjustDifference);
    }
}
