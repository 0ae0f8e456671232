package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.MemAttr;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Translation;

/** Readable forms of descriptors and translations, shared by run, translate and dump. */
final class Describe {
    private Describe() {}

    /**
     * A valid leaf's rights and memory type in the scenario's prot syntax ({@code rw},
     * {@code rw+device}, {@code rx+sw0}), plus {@code af=0} when the access flag is clear.
     */
    static String leafAttrs(Geometry g, boolean fwb, long pte) {
        StringBuilder sb = new StringBuilder();
        MemAttr attr;
        boolean young;
        if (g.stage() == Stage.STAGE2) {
            sb.append(Stage2Descriptor.prot(pte));
            attr = Stage2Descriptor.memAttr(pte, fwb);
            young = Stage2Descriptor.young(pte);
        } else {
            sb.append(HypDescriptor.prot(pte));
            attr = HypDescriptor.memAttr(pte);
            young = HypDescriptor.young(pte);
        }
        switch (attr) {
            case NORMAL_WB: break;
            case NORMAL_NC: sb.append("+nc"); break;
            case DEVICE_nGnRE: sb.append("+device"); break;
            case DEVICE_nGnRnE: sb.append("+device-nGnRnE"); break;
            default:
                sb.append("+memattr=").append(Numbers.hex(g.stage() == Stage.STAGE2
                        ? Stage2Descriptor.memAttrField(pte) : HypDescriptor.attrIndex(pte)));
        }
        if (!young) sb.append(" af=0");
        return sb.toString();
    }

    /** "1G block", "4K page", "2 x 4K pages" style noun for leaves at {@code level}. */
    static String leafNoun(Granule g, int level, long count) {
        String kind = level == Granule.LAST_LEVEL ? "page" : "block";
        return count + " x " + Numbers.size(g.levelSize(level)) + " " + kind + (count == 1 ? "" : "s");
    }

    /** What an invalid, non-zero entry holds: LOCKED or an owner annotation. */
    static String invalidEntry(long pte) {
        if (Pte.isLocked(pte)) return "LOCKED";
        int owner = Pte.owner(pte);
        return owner != 0 ? "annotation owner " + owner : "invalid " + Numbers.hex(pte);
    }

    /** One translation: {@code 0x40001234 read -> 0x80001234 (L1 1G block, rw, TLB miss)} or a fault. */
    static String translation(Geometry g, boolean fwb, Translation t) {
        String head = Numbers.hex(t.address()) + " " + t.access().label() + " -> ";
        if (t.isFault()) return head + fault(t.fault(), t.level());
        String size = Numbers.size(g.granule().levelSize(t.level()));
        return head + Numbers.hex(t.pa()) + " (L" + t.level() + " " + size + " "
                + (t.level() == Granule.LAST_LEVEL ? "page" : "block") + ", " + leafAttrs(g, fwb, t.pte())
                + ", TLB " + (t.tlbHit() ? "hit" : "miss") + ")";
    }

    static String fault(dev.ptlab.core.hw.FaultType type, int level) {
        return "fault " + type.label() + " level " + level;
    }

    /** The entry a {@code leaf} command found. */
    static String leaf(Geometry g, boolean fwb, long addr, long pte, int level) {
        String head = Numbers.hex(addr) + ": L" + level + " ";
        if (!Pte.isValid(pte)) {
            return head + (pte == 0 ? "invalid entry (0x0)" : Describe.invalidEntry(pte) + " (" + Numbers.hex(pte) + ")");
        }
        long span = g.granule().levelSize(level);
        long base = addr & -span;
        return head + Numbers.size(span) + " " + (level == Granule.LAST_LEVEL ? "page" : "block") + " "
                + Numbers.range(base, span) + " -> " + Numbers.hex(g.outputAddress(pte)) + " " + leafAttrs(g, fwb, pte)
                + " (pte " + Numbers.hex(pte) + ")";
    }
}
