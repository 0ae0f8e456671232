package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.walk.Status;

/**
 * {@code relax IPA RIGHTS}: the permission-fault handler adds rights to the leaf, with a local
 * TLBI on cpu0 only.
 */
final class RelaxLine extends ScenarioCommand {
    RelaxLine() {
        super("relax", Needs.STAGE2, "\"relax\" IPA RIGHTS");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        l.args("relax IPA PROT", "IPA", "PROT");
        long ipa = l.number(1, "IPA");
        Prot prot = Prot.parse(l.token(2));
        if ((prot.bits() & ~(Prot.R_BIT | Prot.W_BIT | Prot.X_BITS)) != 0) {
            throw l.error("relax PROT \"" + l.token(2) + "\" carries more than access rights (relax can only add rights, "
                    + "not change the memory type or software bits)", "letters r, w, x (or px, ux) only, e.g. rw or rx");
        }
        return m -> relax(m, ipa, prot);
    }

    private static void relax(Machine m, long ipa, Prot prot) {
        Counts before = new Counts(m);
        Status st = m.stage2().relaxPerms(ipa, prot, 0, m.tlb());
        m.check();
        if (!m.printing()) return;
        StringBuilder sb = new StringBuilder("relax " + Numbers.hex(ipa) + " " + prot + ": " + st);
        if (st == Status.OK) sb.append(", the ").append(m.leafName(ipa));
        else if (st == Status.NOT_MAPPED) sb.append(" (no valid leaf translates it)");
        else sb.append(" (the entry is locked or changed)");
        if (before.icacheOps() > 0) sb.append("; I-cache invalidated (newly executable)");
        long locals = before.localTlbis();
        sb.append("; ").append(locals == 0 ? "no TLBI" : Machine.plural(locals, "local TLBI", "local TLBIs") + " by IPA on "
                + m.tlb().name() + " (the scenario's CPU; other CPUs are not invalidated)");
        long others = before.tlbis() - locals;
        if (others > 0) sb.append(", ").append(Machine.plural(others, "other TLBI", "other TLBIs"));
        m.print(sb.toString());
    }
}
