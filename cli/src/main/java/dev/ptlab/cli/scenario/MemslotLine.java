package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.sim.Backing;
import dev.ptlab.sim.Memslot;

/** {@code memslot GPA SIZE BACKING HOSTPA [ro]}: the VM's next memslot (ids 0, 1, ... in line order). */
final class MemslotLine extends ScenarioCommand {
    MemslotLine() {
        super("memslot", Needs.VM, "\"memslot\" GPA SIZE BACKING HOSTPA [ \"ro\" ]");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "memslot GPA SIZE BACKING HOSTPA [ro]";
        if (l.count() < 5) throw l.missing(usage, "GPA", "SIZE", "BACKING", "HOSTPA");
        if (l.count() > 6) throw l.extra(6, usage);
        long gpa = l.number(1, "GPA");
        long size = l.size(2, "SIZE");
        Backing backing;
        try {
            backing = Backing.parse(l.token(3));
        } catch (IllegalArgumentException e) {
            throw l.error("BACKING \"" + l.token(3) + "\" is not a backing", "page, thp or hugetlb (" + usage + ")");
        }
        long hostPa = l.number(4, "HOSTPA");
        boolean readOnly = false;
        if (l.count() == 6) {
            if (!l.token(5).equalsIgnoreCase("ro")) {
                throw l.error("unknown memslot flag \"" + l.token(5) + "\"", "ro (a read-only slot) or nothing (" + usage + ")");
            }
            readOnly = true;
        }
        l.addMemslot();
        boolean ro = readOnly;
        return m -> add(m, gpa, size, backing, hostPa, ro);
    }

    private static void add(Machine m, long gpa, long size, Backing backing, long hostPa, boolean readOnly) {
        Memslot s = m.vm().addMemslot(gpa, size, backing, hostPa, readOnly);
        m.slots().add(s);
        if (!m.printing()) return;
        Geometry g = m.geometry();
        long unit = backing.mappingSize(g.granule());
        m.print("memslot " + s.id() + ": " + Numbers.range(s.gpa(), s.size()) + " (" + Numbers.size(s.size()) + ") -> host "
                + Numbers.hex(s.hostPa()) + ", " + backing + " backing (faults map up to " + Numbers.size(unit)
                + (unit == g.granule().pageSize() ? " pages" : " blocks") + "), " + (s.readOnly()
                        ? "read-only (writes exit to the VMM as MMIO)" : "read-write"));
    }

    @Override
    String argumentHint() {
        return "GPA, SIZE and HOSTPA aligned to the backing's page size, the slot inside the IPA space and overlapping "
                + "no other slot";
    }
}
