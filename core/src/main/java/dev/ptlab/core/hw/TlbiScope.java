package dev.ptlab.core.hw;

/**
 * The scopes of TLB invalidation {@link TlbSystem} counts, each with the name reports and JSON
 * give it. {@link TlbSystem} keeps one adder per scope.
 */
public enum TlbiScope {
    /** One IPA of a VMID, broadcast (TLBI IPAS2E1IS). */
    IPA("tlbi-ipa", true),
    /** One IPA of a VMID on the calling CPU only (TLBI IPAS2E1). */
    IPA_LOCAL("tlbi-local", true),
    /** A range of IPAs of a VMID, broadcast (TLBI RIPAS2E1IS). */
    RANGE("tlbi-range", true),
    /** Everything of a VMID, broadcast (TLBI VMALLS12E1IS). */
    VMID("tlbi-vmid", true),
    /** One VA of the hypervisor's own stage-1 table (TLBI VAE2IS). */
    HYP_VA("tlbi-hyp-va", false);

    private final String key;
    private final boolean stage2;

    TlbiScope(String key, boolean stage2) {
        this.key = key;
        this.stage2 = stage2;
    }

    /** The scope's name in reports and JSON. */
    public String key() {
        return key;
    }

    /** Whether a VM's stage-2 table issues it (a VM's reports list only these; hyp VA flushes are the hypervisor's own). */
    public boolean stage2() {
        return stage2;
    }
}
