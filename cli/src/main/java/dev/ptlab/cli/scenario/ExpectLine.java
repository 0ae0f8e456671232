package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Translation;

/**
 * {@code expect ADDR [ACCESS] -> PA} or {@code expect ADDR [ACCESS] fault TYPE LEVEL}: what
 * cpu0's MMU must give, counted as an expectation.
 */
final class ExpectLine extends ScenarioCommand {
    private static final String USAGE = "expect ADDR [read|write|exec] -> PA, or expect ADDR [read|write|exec] fault TYPE LEVEL";

    ExpectLine() {
        super("expect", Needs.TABLE, "\"expect\" ADDR [ ACCESS ] \"->\" PA | \"expect\" ADDR [ ACCESS ] \"fault\" FAULT LEVEL");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        if (l.count() < 2) throw l.missing(USAGE, "ADDR");
        long addr = l.number(1, "ADDR");
        int i = 2;
        Access access = Access.READ;
        if (i < l.count() && !l.token(i).equals("->") && !l.token(i).equalsIgnoreCase("fault")) {
            access = l.access(l.token(i));
            i++;
        }
        if (i >= l.count()) throw l.error("expect is missing \"-> PA\" or \"fault TYPE LEVEL\"", USAGE);
        if (l.token(i).equals("->")) {
            if (i + 1 >= l.count()) throw l.error("expect is missing PA after \"->\"", USAGE);
            if (i + 2 < l.count()) throw l.extra(i + 2, USAGE);
            return expect(l.number(), addr, access, l.number(i + 1, "PA"), null, 0);
        }
        if (!l.token(i).equalsIgnoreCase("fault")) {
            throw l.error("expect has \"" + l.token(i) + "\" where \"->\" or \"fault\" belongs", USAGE);
        }
        if (i + 2 >= l.count()) {
            throw l.error("expect is missing " + (i + 1 >= l.count() ? "TYPE and LEVEL" : "LEVEL") + " after \"fault\"", USAGE);
        }
        if (i + 3 < l.count()) throw l.extra(i + 3, USAGE);
        FaultType type;
        try {
            type = FaultType.parse(l.token(i + 1));
        } catch (IllegalArgumentException e) {
            throw l.error("fault type \"" + l.token(i + 1) + "\" is unknown", "one of translation, access-flag, permission, address-size");
        }
        return expect(l.number(), addr, access, -1, type, l.level(l.token(i + 2), "fault"));
    }

    /** {@code fault == null}: expects {@code pa}; else that fault at {@code level}. */
    private static Step.Action expect(int line, long addr, Access access, long pa, FaultType fault, int level) {
        return m -> {
            Translation t = m.translate(addr, access);
            String wanted = Numbers.hex(addr) + " " + access.label() + " "
                    + (fault == null ? "-> " + Numbers.hex(pa) : Describe.fault(fault, level));
            boolean ok = fault == null
                    ? !t.isFault() && t.pa() == pa
                    : t.isFault() && t.fault() == fault && t.level() == level;
            String got = t.isFault() ? Describe.fault(t.fault(), t.level()) : Numbers.hex(t.pa());
            m.result("expect " + wanted, line, wanted, ok, got);
        };
    }
}
