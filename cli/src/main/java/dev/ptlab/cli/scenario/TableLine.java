package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;

/**
 * {@code stage2 [options]} and {@code hyp [options]}: the scenario's one table, a KVM-style
 * stage-2 table or the EL2 stage-1 table, in its own simulated physical memory.
 */
final class TableLine extends ScenarioCommand {
    static final TableLine STAGE2 = new TableLine(true);
    static final TableLine HYP = new TableLine(false);

    /** Default table-memory size: room for 65536 4K table frames. */
    static final long DEFAULT_MEM_SIZE = 256L << 20;
    static final int DEFAULT_IPA_BITS = 40;
    static final int DEFAULT_VA_BITS = 48;
    static final int DEFAULT_VMID = 1;

    private static final String STAGE2_OPTIONS =
            "granule=4k|16k|64k, ipa-bits=N, vmid=N, mem-base=ADDR, mem-size=SIZE, fwb[=on|off], range-tlbi[=on|off], "
                    + "xnx[=on|off], idmap, checking";
    private static final String HYP_OPTIONS = "granule=4k|16k|64k, va-bits=N, mem-base=ADDR, mem-size=SIZE, checking";

    private final boolean stage2;

    private TableLine(boolean stage2) {
        super(stage2 ? "stage2" : "hyp", Needs.NOTHING, stage2 ? "\"stage2\" { stage2-opt }" : "\"hyp\" { hyp-opt }");
        this.stage2 = stage2;
    }

    /** The table's settings as the options leave them. */
    private static final class Options {
        Granule granule = Granule.G4K;
        int bits;
        int vmid;
        int flags;
        boolean checking;
        long memBase = ScenarioParser.DEFAULT_MEM_BASE;
        long memSize = DEFAULT_MEM_SIZE;
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.requireFirstTable();
        String bitsKey = stage2 ? "ipa-bits" : "va-bits";
        Options o = new Options();
        o.bits = stage2 ? DEFAULT_IPA_BITS : DEFAULT_VA_BITS;
        o.vmid = stage2 ? DEFAULT_VMID : 0;
        l.options(keyword(), stage2 ? STAGE2_OPTIONS : HYP_OPTIONS, (key, value) -> {
            switch (key) {
                case "granule":
                    o.granule = l.granule(value);
                    return true;
                case "ipa-bits": case "va-bits":
                    if (!key.equals(bitsKey)) return false;
                    o.bits = (int) Math.min(Integer.MAX_VALUE, Numbers.parseNumber(key, l.value(key, value, key + "=N")));
                    return true;
                case "vmid":
                    if (!stage2) return false;
                    o.vmid = l.vmid(value);
                    return true;
                case "mem-base":
                    o.memBase = Numbers.parseNumber("mem-base", l.value(key, value, "mem-base=ADDR"));
                    return true;
                case "mem-size":
                    o.memSize = Numbers.parseSize("mem-size", l.value(key, value, "mem-size=SIZE"));
                    return true;
                // A bare stage2 table models the CPU without FWB and range TLBI (every cache
                // operation and every VMID-wide TLBI shows) but with XNX; a vm line's table
                // has all three (VmConfig). Bare fwb / range-tlbi turn them on, as before.
                case "fwb": case "range-tlbi": case "xnx": {
                    if (!stage2) return false;
                    boolean on = VmLine.feature(l, key, value);
                    int flag = key.equals("fwb") ? Stage2PageTable.FWB
                            : key.equals("xnx") ? Stage2PageTable.NO_XNX : Stage2PageTable.RANGE_TLBI;
                    // NO_XNX is the one flag that means the feature is absent.
                    boolean set = key.equals("xnx") ? !on : on;
                    o.flags = set ? o.flags | flag : o.flags & ~flag;
                    return true;
                }
                case "idmap":
                    if (!stage2) return false;
                    l.noValue(key, value);
                    o.flags |= Stage2PageTable.IDMAP;
                    return true;
                case "checking":
                    l.noValue(key, value);
                    o.checking = true;
                    return true;
                default:
                    return false;
            }
        });
        Geometry geometry;
        try {
            geometry = stage2 ? Geometry.stage2(o.granule, o.bits) : Geometry.hyp(o.granule, o.bits);
        } catch (IllegalArgumentException e) {
            throw l.error(e.getMessage(), stage2 ? "ipa-bits=32..52 that the granule can reach" : "va-bits=25..52 that the granule can reach");
        }
        TableMemory.check(l, geometry, o.memBase, o.memSize);
        TableSpec spec = new TableSpec(l.number(), geometry, o.vmid, o.flags, o.checking, o.memBase, o.memSize, null);
        l.table(spec);
        return m -> create(m, spec);
    }

    private void create(Machine m, TableSpec t) {
        m.use(t);
        PhysicalMemory memory = new PhysicalMemory(t.memBase(), t.memSize(), t.geometry().granule(), t.checking());
        TlbSystem tlbs = new TlbSystem();
        PageTable table = stage2 ? new Stage2PageTable(t.geometry(), memory, tlbs, t.vmid(), t.flags())
                : new HypPageTable(t.geometry(), memory, tlbs);
        m.attach(memory, tlbs, table, null, false);
        m.print(m.tableLine());
    }

    @Override
    String expected(Errno errno, Machine m) {
        return errno == Errno.EINVAL ? memoryWindowExpected(m) : m.expectedByDefault(errno);
    }

    /** A table line's EINVAL: the library refused the table-memory window. */
    static String memoryWindowExpected(Machine m) {
        return "mem-base= and mem-size= aligned" + m.toTheGranule();
    }

    @Override
    String argumentHint() {
        return "a configuration the VM accepts";
    }
}
