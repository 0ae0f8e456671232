package dev.ptlab.core.table;

import dev.ptlab.core.arch.Pte;

/** The entry where a walk for one address bottomed out: a valid leaf, or the invalid entry found. */
public record Leaf(long pte, int level) {
    public boolean valid() {
        return Pte.isValid(pte);
    }

    @Override
    public String toString() {
        return "Leaf[pte=0x" + Long.toHexString(pte) + ", level=" + level + "]";
    }
}
