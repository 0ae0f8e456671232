package dev.ptlab.core.arch;

/** Which translation regime a table belongs to. */
public enum Stage {
    /** A guest's stage-2 table (IPA to PA), walked with VTCR_EL2/VTTBR_EL2. */
    STAGE2,
    /** The hypervisor's own EL2 stage-1 table (VA to PA), walked with TCR_EL2/TTBR0_EL2. */
    HYP
}
