package dev.ptlab.core.arch;

/** Which translation regime a table belongs to. */
public enum Stage {
    /** A guest's stage-2 table (IPA to PA), walked with VTCR_EL2/VTTBR_EL2. */
    STAGE2,
    /** The hypervisor's own EL2 stage-1 table (VA to PA), walked with TCR_EL2/TTBR0_EL2. */
    HYP,
    /**
     * A host process's EL0/EL1 stage-1 table (VA to PA), walked with TCR_EL1/TTBR0_EL1: the
     * descriptor format of EL2 stage-1 plus the user-access bit, and non-present entries that
     * carry swap-style values (so every non-zero entry holds a reference on its table).
     */
    PROCESS,
    /**
     * A guest's own stage-1 table in the EL1&amp;0 regime (VA to IPA), walked with
     * TCR_EL1/TTBR0_EL1/TTBR1_EL1 through stage-2: its descriptors hold IPAs and its tables live
     * in guest memory. Descriptors as {@link Stage1Descriptor}; counted entries are the valid ones.
     */
    GUEST_S1
}
