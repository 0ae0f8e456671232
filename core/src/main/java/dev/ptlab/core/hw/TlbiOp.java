package dev.ptlab.core.hw;

import java.util.Locale;

/**
 * The TLB maintenance instructions {@link TlbSystem} models, each with its architectural reach
 * (Arm ARM D8.17.5.4 and the TLBI pages; reference: tlb-and-two-stage.md §B.1). "Any level"
 * forms remove walk-cache entries for the address as well as leaves; "last level" ({@code L})
 * forms remove leaves only. Stage-2 forms act on the current VMID's stage-2 entries and are not
 * required to touch stage-1 or combined entries (which only {@code VMALLE1*} and
 * {@code VMALLS12E1*} reach).
 */
public enum TlbiOp {
    /** Stage-2 entries of one IPA at any level (walk cache included), every CPU. */
    IPAS2E1IS(true, false, true),
    /** Stage-2 leaf entries of one IPA, every CPU. */
    IPAS2LE1IS(true, true, true),
    /** IPAS2E1IS's non-shareable form: the issuing CPU only. */
    IPAS2E1(false, false, true),
    /** IPAS2LE1IS's non-shareable form. */
    IPAS2LE1(false, true, true),
    /** Stage-2 entries of an IPA range at any level (FEAT_TLBIRANGE), every CPU. */
    RIPAS2E1IS(true, false, true),
    /** Stage-2 leaf entries of an IPA range, every CPU. */
    RIPAS2LE1IS(true, true, true),
    /** Every stage-1, combined and stage-2 entry of the VMID, every CPU. */
    VMALLS12E1IS(true, false, true),
    /** Every stage-1 and combined entry of the VMID (no stage-2-only entry), every CPU. */
    VMALLE1IS(true, false, false),
    /** VMALLE1IS's non-shareable form. */
    VMALLE1(false, false, false),
    /** EL2 regime: one VA at any level, every CPU. */
    VAE2IS(true, false, false),
    /** EL2 regime: the leaf of one VA, every CPU. */
    VALE2IS(true, true, false),
    /**
     * EL1&amp;0 regime of the current VMID: stage-1 and combined entries of one VA that are global
     * or of the operand's ASID, every CPU (a guest's own TLBI; HCR_EL2.FB makes EL1 TLBIs broadcast).
     */
    VAE1IS(true, false, false);

    private final boolean broadcast;
    private final boolean lastLevel;
    private final boolean stage2;

    TlbiOp(boolean broadcast, boolean lastLevel, boolean stage2) {
        this.broadcast = broadcast;
        this.lastLevel = lastLevel;
        this.stage2 = stage2;
    }

    /** Inner Shareable: reaches every CPU's TLB (else only the issuer's). */
    public boolean broadcast() { return broadcast; }
    /** Leaves only: walk-cache entries survive. */
    public boolean lastLevel() { return lastLevel; }
    /** Whether it reaches stage-2-only entries (what today's TLB holds for a VM). */
    public boolean stage2() { return stage2; }

    /** The mnemonic in lower case, as scenario files and reports write it. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
