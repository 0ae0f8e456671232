package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.TableCounters;
import java.io.PrintWriter;

/** {@code counters}: the running totals of TLBIs, table operations, cache maintenance and table frames. */
final class CountersLine extends ScenarioCommand {
    CountersLine() {
        super("counters", Needs.TABLE, "\"counters\"");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("counters");
        return m -> {
            if (m.printing()) print(m, m.out());
        };
    }

    private static void print(Machine m, PrintWriter w) {
        TableCounters c = m.table().counters();
        TlbSystem tlbs = m.tlbs();
        PhysicalMemory memory = m.memory();
        CacheMaintenance cmo = memory.cacheMaintenance();
        long frames = m.tableFrames();
        long page = m.geometry().granule().pageSize();
        String tl = m.spec().stage2()
                ? "by IPA " + tlbs.ipaFlushes() + ", local " + tlbs.localIpaFlushes() + ", range " + tlbs.rangeFlushes()
                        + ", VMID " + tlbs.vmidFlushes()
                : "hyp VA " + tlbs.hypVaFlushes();
        w.println("counters: TLBIs " + tlbs.totalFlushes() + " (" + tl + ")");
        w.println("  table: BBMs " + c.breakBeforeMake() + ", coalesced " + c.coalesced() + ", invalid-window steps "
                + c.invalidWindowSteps() + ", splits " + c.splits() + ", attribute updates " + c.attrUpdates()
                + ", raced " + c.raced() + "; leaves installed " + c.leavesInstalled() + ", removed " + c.leavesRemoved()
                + "; tables installed " + c.tablesInstalled() + ", freed " + c.tablesFreed());
        w.println("  CMOs: D-cache " + Machine.plural(cmo.dcacheOps(), "op", "ops") + " (" + Numbers.bytes(cmo.dcacheBytes())
                + "), I-cache " + Machine.plural(cmo.icacheOps(), "op", "ops") + " (" + Numbers.bytes(cmo.icacheBytes()) + ")");
        w.println("  table frames: " + frames + " in use (" + Numbers.size(frames * page) + "), peak "
                + memory.peakFramesInUse() + " (" + Numbers.bytes(memory.peakFramesInUse() * page)
                + ", memory-cache spares included)");
        w.flush();
    }
}
