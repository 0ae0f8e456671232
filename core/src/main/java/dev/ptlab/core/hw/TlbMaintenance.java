package dev.ptlab.core.hw;

/**
 * The TLB maintenance a table issues. Each call stands for the complete architectural sequence
 * (DSB ISHST; TLBI ...; DSB ISH; ISB, and for stage-2 by-IPA also TLBI VMALLE1IS since combined
 * stage-1+2 entries are tagged by VA) and has completed when it returns: no TLB it covers holds
 * a matching entry, and no walk that began before the call can insert one afterwards.
 */
public interface TlbMaintenance {
    /** Level value meaning "no level hint" (TTL unknown). */
    int LEVEL_UNKNOWN = Integer.MIN_VALUE;

    /** TLBI IPAS2E1IS: one IPA of one VMID, on every CPU. */
    void flushVmidIpa(int vmid, long ipa, int levelHint);

    /** The non-shareable form: only {@code local}'s TLB. */
    void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint);

    /** Range TLBI (RIPAS2E1IS) of {@code [ipa, ipa + size)} for one VMID. */
    void flushVmidRange(int vmid, long ipa, long size);

    /** TLBI VMALLS12E1IS: everything of one VMID. */
    void flushVmid(int vmid);

    /** TLBI VAE2IS / VALE2IS: one VA of the hyp (EL2) regime. */
    void flushHypVa(long va, int levelHint);
}
