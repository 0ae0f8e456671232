package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.walk.Status;

/**
 * {@code relax IPA RIGHTS}: the permission-fault handler adds read/write rights to the leaf and
 * sets its execute rights to RIGHTS', with a local TLBI on cpu0 only (also when nothing is
 * mapped), or a broadcast one when an execute right was taken away.
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
            throw l.error("relax PROT \"" + l.token(2) + "\" carries more than access rights (relax changes access rights only, "
                    + "not the memory type or software bits)", "letters r, w, x (or px, ux) only, e.g. rw or rx");
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
        long others = before.tlbis() - locals;
        if (locals > 0) {
            sb.append("; ").append(Machine.plural(locals, "local TLBI", "local TLBIs")).append(" by IPA on ")
                    .append(m.tlb().name()).append(" (the scenario's CPU; other CPUs are not invalidated)");
            if (others > 0) sb.append(", ").append(Machine.plural(others, "other TLBI", "other TLBIs"));
        } else if (others > 0) {
            // relaxPerms took an execute right away: every CPU is invalidated, not only cpu0.
            sb.append("; ").append(Machine.plural(others, "broadcast TLBI", "broadcast TLBIs"))
                    .append(" by IPA (an execute right was removed: every CPU is invalidated)");
        } else {
            sb.append("; no TLBI");
        }
        m.print(sb.toString());
    }
}
