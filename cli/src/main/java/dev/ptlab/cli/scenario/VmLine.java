package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.sim.FaultLocking;
import dev.ptlab.sim.Vm;
import dev.ptlab.sim.VmConfig;
import java.util.Locale;

/**
 * {@code vm [options]}: a simulated {@link Vm} (the one {@code ptlab run} simulates) whose
 * stage-2 table becomes the scenario's table, with its vCPUs.
 */
final class VmLine extends ScenarioCommand {
    /** Most vCPUs a {@code vm} line may ask for. */
    static final int MAX_VCPUS = 512;
    private static final String OPTIONS = "granule=4k|16k|64k, ipa-bits=N, vmid=N, fault-lock=shared|write, "
            + "coalesce=install-first|legacy, eager-split=SIZE, checking, fwb[=on|off], range-tlbi[=on|off], "
            + "hardware-af[=on|off], xnx[=on|off], vcpus=N, mem-size=SIZE";

    VmLine() {
        super("vm", Needs.NOTHING, "\"vm\" { vm-opt }");
    }

    /** The VM's settings as the options leave them. */
    private static final class Options {
        Granule granule = Granule.G4K;
        int bits = TableLine.DEFAULT_IPA_BITS;
        VmConfig config = VmConfig.defaults();
        int vcpus = 1;
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.requireFirstTable();
        Options o = new Options();
        l.options("vm", OPTIONS, (key, value) -> {
            switch (key) {
                case "granule":
                    o.granule = l.granule(value);
                    return true;
                case "ipa-bits":
                    o.bits = (int) Math.min(Integer.MAX_VALUE, Numbers.parseNumber(key, l.value(key, value, "ipa-bits=N")));
                    return true;
                case "vmid":
                    o.config = o.config.withVmid(l.vmid(value));
                    return true;
                case "fault-lock":
                    try {
                        o.config = o.config.withFaultLocking(FaultLocking.parse(l.value(key, value, "fault-lock=shared or write")));
                    } catch (IllegalArgumentException e) {
                        throw l.error("fault-lock \"" + value + "\" is unknown", "fault-lock=shared or write");
                    }
                    return true;
                case "coalesce":
                    switch (l.value(key, value, "coalesce=install-first or legacy").toLowerCase(Locale.ROOT)) {
                        case "install-first": o.config = o.config.withCoalescePolicy(CoalescePolicy.INSTALL_FIRST); break;
                        case "legacy": case "unmap-first": o.config = o.config.withCoalescePolicy(CoalescePolicy.UNMAP_FIRST); break;
                        default: throw l.error("coalesce order \"" + value + "\" is unknown", "coalesce=install-first or legacy");
                    }
                    return true;
                case "eager-split":
                    o.config = o.config.withEagerSplitChunk(Numbers.parseSize("eager-split", l.value(key, value, "eager-split=SIZE")));
                    return true;
                case "checking":
                    l.noValue(key, value);
                    o.config = o.config.withChecking(true);
                    return true;
                // The hardware features, each on by default (VmConfig's class comment).
                case "fwb":
                    o.config = o.config.withFwb(feature(l, key, value));
                    return true;
                case "range-tlbi":
                    o.config = o.config.withRangeTlbi(feature(l, key, value));
                    return true;
                case "hardware-af":
                    o.config = o.config.withHardwareAf(feature(l, key, value));
                    return true;
                case "xnx":
                    o.config = o.config.withXnx(feature(l, key, value));
                    return true;
                case "vcpus": {
                    long n = Numbers.parseNumber("vcpus", l.value(key, value, "vcpus=N"));
                    if (n < 1 || n > MAX_VCPUS) throw l.error("vcpus=" + value + " is outside 1.." + MAX_VCPUS, "vcpus=1.." + MAX_VCPUS);
                    o.vcpus = (int) n;
                    return true;
                }
                case "mem-size":
                    o.config = o.config.withTableMemory(Numbers.parseSize("mem-size", l.value(key, value, "mem-size=SIZE")));
                    return true;
                default:
                    return false;
            }
        });
        Granule granule = o.granule;
        Geometry geometry;
        try {
            geometry = Geometry.stage2(granule, o.bits);
        } catch (IllegalArgumentException e) {
            throw l.error(e.getMessage(), "ipa-bits=32..52 that the granule can reach");
        }
        VmConfig config = o.config.withGranule(granule).withIpaBits(o.bits);
        long memSize = config.tableMemory();
        TableMemory.check(l, geometry, Vm.TABLE_MEMORY_BASE, memSize);
        // What only the VM would refuse, checked without building it (a VM allocates its whole
        // table-memory window: validating by construction cost gigabytes for mem-size=1T).
        if (!config.eagerSplitChunkValid()) {
            throw l.error("eager-split=" + Numbers.size(config.eagerSplitChunk()) + " is not a block size of the "
                    + granule.label() + " granule", "eager-split=0 or a block size of the " + granule.label() + " granule");
        }
        TableSpec spec = new TableSpec(l.number(), geometry, config.vmid(), config.tableFlags(), config.checking(),
                Vm.TABLE_MEMORY_BASE, memSize, new TableSpec.VmSpec(config, o.vcpus));
        l.table(spec);
        return m -> create(m, spec);
    }

    /** A hardware-feature option: {@code KEY} alone or {@code KEY=on} is on, {@code KEY=off} off. */
    static boolean feature(Line l, String key, String value) throws ScenarioException {
        if (value == null || value.equalsIgnoreCase("on")) return true;
        if (value.equalsIgnoreCase("off")) return false;
        throw l.error(key + "=" + value + " is not on or off", key + ", " + key + "=on or " + key + "=off");
    }

    /**
     * The VM, its vCPUs, and the scenario's own cpu0 (TLB and MMU, registered with the VM's TLB
     * system) on its stage-2 table, which every table command then uses.
     */
    private static void create(Machine m, TableSpec t) {
        m.use(t);
        VmConfig config = t.vm().config();
        Vm vm = new Vm(config);
        for (int i = 0; i < t.vm().vcpus(); i++) vm.createVcpu();
        m.attach(vm.tableMemory(), vm.tlbs(), vm.table(), vm, config.hardwareAf());
        int n = t.vm().vcpus();
        m.print("vm: " + Machine.plural(n, "vCPU", "vCPUs") + " (vcpu0" + (n == 1 ? "" : "..vcpu" + (n - 1)) + "), faults "
                + config.faultLocking() + ", coalesce "
                + (config.coalescePolicy() == CoalescePolicy.INSTALL_FIRST ? "install-first" : "legacy")
                + ", eager split " + (config.eagerSplitChunk() == 0 ? "off" : Numbers.size(config.eagerSplitChunk()))
                + (config.hardwareAf() ? ", hardware AF" : "") + "; " + m.tableLine());
    }

    @Override
    String expected(Errno errno, Machine m) {
        return errno == Errno.EINVAL ? TableLine.memoryWindowExpected(m) : m.expectedByDefault(errno);
    }

    @Override
    String argumentHint() {
        return "a configuration the VM accepts";
    }
}
