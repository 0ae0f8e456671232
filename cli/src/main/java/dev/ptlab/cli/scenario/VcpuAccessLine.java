package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.sim.Vcpu;
import dev.ptlab.sim.VcpuStats;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code vcpu-access VCPU ADDR ACCESS [-> PA | -> mmio | -> address-size]}: one guest access
 * through the vCPU's MMU and the VM's abort handler, printed with the faults it took; with
 * {@code ->} it is an expectation.
 */
final class VcpuAccessLine extends ScenarioCommand {
    private static final String USAGE = "vcpu-access VCPU ADDR read|write|exec [-> PA | -> mmio | -> address-size]";

    /** What {@code -> X} expects: a PA, an MMIO exit or an address-size error. */
    private enum Outcome { PA, MMIO, ADDRESS_SIZE }

    VcpuAccessLine() {
        super("vcpu-access", Needs.VM, "\"vcpu-access\" VCPU ADDR ACCESS [ \"->\" ( PA | \"mmio\" | \"address-size\" ) ]");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        int arrow = 1;
        while (arrow < l.count() && !l.token(arrow).equals("->")) arrow++;
        if (arrow < 4) throw l.missing(arrow, USAGE, "VCPU", "ADDR", "ACCESS");
        if (arrow > 4) throw l.error("vcpu-access has an extra argument \"" + l.token(4) + "\"", USAGE);
        int vcpu = vcpu(l, l.token(1));
        long addr = l.number(2, "ADDR");
        Access access = l.access(l.token(3));
        if (l.count() == 4) return access(l.number(), vcpu, addr, access, null, 0);
        if (l.count() == 5) throw l.error("vcpu-access is missing PA, mmio or address-size after \"->\"", USAGE);
        if (l.count() > 6) throw l.extra(6, USAGE);
        String what = l.token(5).toLowerCase(Locale.ROOT);
        if (what.equals("mmio")) return access(l.number(), vcpu, addr, access, Outcome.MMIO, 0);
        if (what.equals("address-size")) return access(l.number(), vcpu, addr, access, Outcome.ADDRESS_SIZE, 0);
        if (what.isEmpty() || !Character.isDigit(what.charAt(0))) {
            throw l.error("vcpu-access has \"" + l.token(5) + "\" after \"->\"", "a PA, mmio or address-size (" + USAGE + ")");
        }
        return access(l.number(), vcpu, addr, access, Outcome.PA, l.number(5, "PA"));
    }

    /** {@code 0} or {@code vcpu0}: one of the VM's vCPUs. */
    private static int vcpu(Line l, String text) throws ScenarioException {
        String digits = text.regionMatches(true, 0, "vcpu", 0, 4) ? text.substring(4) : text;
        long id = Numbers.parseNumber("VCPU", digits);
        TableSpec table = l.table();
        int n = table.vm().vcpus();
        if (id >= n) {
            throw l.error("VCPU " + text + " does not exist (the vm line, line " + table.line() + ", creates " + n
                    + (n == 1 ? " vCPU: vcpu0)" : " vCPUs: vcpu0..vcpu" + (n - 1) + ")"),
                    "a vCPU id from 0 to " + (n - 1) + " (vcpus=N on the vm line for more)");
        }
        return (int) id;
    }

    /** {@code expected == null}: no expectation. */
    private static Step.Action access(int line, int vcpu, long addr, Access access, Outcome expected, long pa) {
        return m -> {
            Vcpu v = m.vm().vcpus().get(vcpu);
            VcpuStats st = v.stats();
            long[][] before = faultCounts(st);
            long raced = st.raced();
            long spurious = st.spurious();
            long r = v.access(addr, access);
            m.check();
            long[][] after = faultCounts(st);
            List<String> faults = new ArrayList<>();
            long n = 0;
            for (FaultType type : FaultType.values()) {
                for (int l = Granule.FIRST_LEVEL; l <= Granule.LAST_LEVEL; l++) {
                    long d = after[type.ordinal()][l - Granule.FIRST_LEVEL] - before[type.ordinal()][l - Granule.FIRST_LEVEL];
                    if (d == 0) continue;
                    n += d;
                    faults.add(type.label() + " L" + l + (d == 1 ? "" : " x" + d));
                }
            }
            String got = outcome(r);
            StringBuilder sb = new StringBuilder("vcpu" + vcpu + " " + access.label() + " " + Numbers.hex(addr) + " -> " + got
                    + " (" + (n == 0 ? "no fault" : Machine.plural(n, "fault", "faults") + ": " + String.join(", ", faults)));
            if (st.raced() > raced) sb.append("; ").append(st.raced() - raced).append(" raced");
            if (st.spurious() > spurious) sb.append("; ").append(st.spurious() - spurious).append(" spurious");
            sb.append(')');
            if (expected == null) {
                m.print(sb.toString());
                return;
            }
            String wantedOutcome = expected == Outcome.MMIO ? "mmio exit"
                    : expected == Outcome.ADDRESS_SIZE ? "address-size error" : Numbers.hex(pa);
            boolean ok = expected == Outcome.MMIO ? r == Vcpu.EXIT_MMIO
                    : expected == Outcome.ADDRESS_SIZE ? r == Vcpu.EXIT_ADDRESS_SIZE
                    : r == pa;
            String wanted = "vcpu" + vcpu + " " + access.label() + " " + Numbers.hex(addr) + " -> " + wantedOutcome;
            m.result(sb.toString(), line, wanted, ok, got, "expected -> " + wantedOutcome);
        };
    }

    private static String outcome(long r) {
        return r == Vcpu.EXIT_MMIO ? "mmio exit" : r == Vcpu.EXIT_ADDRESS_SIZE ? "address-size error" : Numbers.hex(r);
    }

    private static long[][] faultCounts(VcpuStats st) {
        int levels = Granule.LAST_LEVEL - Granule.FIRST_LEVEL + 1;
        long[][] c = new long[FaultType.values().length][levels];
        for (FaultType type : FaultType.values()) {
            for (int l = Granule.FIRST_LEVEL; l <= Granule.LAST_LEVEL; l++) {
                c[type.ordinal()][l - Granule.FIRST_LEVEL] = st.faults(type, l);
            }
        }
        return c;
    }
}
