package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.sim.Memslot;
import dev.ptlab.sim.Vm;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code dirty-log enable|disable|get SLOT [keep]}: the VM's dirty logging of a memslot (write
 * protection and eager split on enable; the dirty pages as IPA ranges on get).
 */
final class DirtyLogLine extends ScenarioCommand {
    /** Most dirty ranges {@code dirty-log get} lists before it only counts the rest. */
    static final int MAX_DIRTY_RANGES = 16;

    private enum Action { ENABLE, DISABLE, GET }

    DirtyLogLine() {
        super("dirty-log", Needs.VM, "\"dirty-log\" ( \"enable\" | \"disable\" ) SLOT | \"dirty-log\" \"get\" SLOT [ \"keep\" ]");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "dirty-log enable|disable|get SLOT [keep]";
        if (l.count() < 3) throw l.missing(usage, "enable|disable|get", "SLOT");
        Action action;
        switch (l.token(1).toLowerCase(Locale.ROOT)) {
            case "enable": action = Action.ENABLE; break;
            case "disable": action = Action.DISABLE; break;
            case "get": action = Action.GET; break;
            default: throw l.error("dirty-log action \"" + l.token(1) + "\" is unknown", "enable, disable or get (" + usage + ")");
        }
        long slot = l.number(2, "SLOT");
        int memslots = l.memslots();
        if (memslots == 0) throw l.error("dirty-log SLOT " + l.token(2) + ": no memslot exists yet", "a memslot line before dirty-log");
        if (slot >= memslots) {
            throw l.error("dirty-log SLOT " + l.token(2) + " is not a memslot (the memslot lines so far create "
                    + (memslots == 1 ? "slot 0" : "slots 0.." + (memslots - 1)) + ")",
                    "a memslot id from 0 to " + (memslots - 1) + " (memslot lines number their slots 0, 1, ... in order)");
        }
        boolean keep = false;
        if (l.count() > 3) {
            boolean getKeep = action == Action.GET && l.token(3).equalsIgnoreCase("keep");
            if (!getKeep || l.count() > 4) {
                throw l.error("dirty-log " + l.token(1) + " has an extra argument \"" + l.token(getKeep ? 4 : 3) + "\"",
                        usage + " (keep: only with get)");
            }
            keep = true;
        }
        int id = (int) slot;
        boolean keepWritable = keep;
        return m -> run(m, action, m.slots().get(id), keepWritable);
    }

    private static void run(Machine m, Action action, Memslot slot, boolean keep) {
        Vm vm = m.vm();
        String head = "dirty-log " + action.name().toLowerCase(Locale.ROOT) + " slot " + slot.id() + " ("
                + Numbers.range(slot.gpa(), slot.size()) + ")";
        Counts before = new Counts(m);
        switch (action) {
            case ENABLE: {
                vm.enableDirtyLogging(slot);
                m.check();
                long chunk = vm.config().eagerSplitChunk();
                m.print(head + ": logging on; write permission removed from " + before.attrUpdatedLeaves() + ", "
                        + before.tlbisByKind() + "; "
                        + (chunk == 0 ? "no eager split (write faults split blocks)"
                                : "eager split in " + Numbers.size(chunk) + " chunks: " + Machine.plural(before.splits(),
                                        "block", "blocks") + " split, " + Machine.plural(before.tablesInstalled(),
                                        "table", "tables") + " installed"));
                return;
            }
            case DISABLE:
                vm.disableDirtyLogging(slot);
                m.check();
                m.print(head + ": logging off; later faults map blocks again (coalescing)");
                return;
            default:
                break;
        }
        boolean logging = slot.logging();
        long[] bits = vm.getDirtyLog(slot, !keep);
        m.check();
        if (!m.printing()) return;
        long page = m.geometry().granule().pageSize();
        List<String> ranges = new ArrayList<>();
        long count = 0;
        long runStart = -1;
        long runEnd = -1;
        int listed = 0;
        int total = 0;
        for (long i = 0; i <= slot.pages(); i++) {
            boolean dirty = i < slot.pages() && (bits[(int) (i >>> 6)] & (1L << (i & 63))) != 0;
            if (dirty) {
                count++;
                if (runStart < 0) runStart = i;
                runEnd = i;
                continue;
            }
            if (runStart < 0) continue;
            total++;
            if (listed++ < MAX_DIRTY_RANGES) {
                ranges.add(Numbers.range(slot.gpa() + runStart * page, (runEnd - runStart + 1) * page));
            }
            runStart = -1;
        }
        StringBuilder sb = new StringBuilder(head).append(": ");
        if (count == 0) {
            sb.append("no dirty pages");
        } else {
            sb.append(Machine.plural(count, "dirty page", "dirty pages")).append(": ").append(String.join(", ", ranges));
            if (total > MAX_DIRTY_RANGES) sb.append(", ... (").append(total - MAX_DIRTY_RANGES).append(" more ranges)");
            sb.append(keep ? "; left writable (keep)" : logging ? "; write-protected again ("
                    + before.attrUpdatedLeaves() + ", " + before.tlbisByKind() + ")" : "");
        }
        if (!logging) sb.append(" (logging is off)");
        m.print(sb.toString());
    }

    @Override
    String argumentHint() {
        return "a configuration the VM accepts";
    }
}
