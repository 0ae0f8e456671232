package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The arm64 guest modes of the KVM selftests ({@code enum vm_guest_mode} in
 * tools/testing/selftests/kvm/include/kvm_util.h, Linux 7.1-rc4), with the selftests' numeric IDs
 * ({@code -m}). A mode fixes the VM's IPA size (its PA bits: KVM_VM_TYPE_ARM_IPA_SIZE) and the
 * guest's own page size, which in {@code kvm_page_table_test} aligns and places the test region;
 * the stage-2 granule is the host's page size, whatever the mode. The VA bits belong to the
 * guest's stage-1 table, which ptlab does not model yet.
 */
public enum GuestMode {
    P52V48_4K(0, 52, 48, Granule.G4K),
    P52V48_16K(1, 52, 48, Granule.G16K),
    P52V48_64K(2, 52, 48, Granule.G64K),
    P48V48_4K(3, 48, 48, Granule.G4K),
    P48V48_16K(4, 48, 48, Granule.G16K),
    P48V48_64K(5, 48, 48, Granule.G64K),
    P40V48_4K(6, 40, 48, Granule.G4K),
    P40V48_16K(7, 40, 48, Granule.G16K),
    P40V48_64K(8, 40, 48, Granule.G64K),
    P36V48_4K(12, 36, 48, Granule.G4K),
    P36V48_16K(13, 36, 48, Granule.G16K),
    P36V48_64K(14, 36, 48, Granule.G64K),
    P36V47_16K(16, 36, 47, Granule.G16K);

    /** The IDs of the selftests' other modes (x86, s390, LoongArch, RISC-V): not arm64's. */
    private static final int LAST_ID = 25;

    private final int id;
    private final int paBits;
    private final int vaBits;
    private final Granule pageSize;

    GuestMode(int id, int paBits, int vaBits, Granule pageSize) {
        this.id = id;
        this.paBits = paBits;
        this.vaBits = vaBits;
        this.pageSize = pageSize;
    }

    /** The selftests' numeric ID ({@code -m}). */
    public int id() { return id; }
    public int paBits() { return paBits; }
    public int vaBits() { return vaBits; }
    /** The guest's page size (its stage-1 granule). */
    public Granule guestGranule() { return pageSize; }

    /** {@code PA-bits:40, VA-bits:48, 4K pages}, as {@code vm_guest_mode_string} (without its column padding). */
    public String description() {
        return "PA-bits:" + paBits + ", VA-bits:" + vaBits + ", " + pageSize.label().toUpperCase(Locale.ROOT) + " pages";
    }

    /**
     * The modes {@code guest_modes_append_default} enables on an arm64 host whose KVM offers IPA
     * sizes up to {@code ipaLimit} bits for guests with the page sizes {@code granules}, in the
     * order {@code for_each_guest_mode} runs them (by ID).
     */
    public static List<GuestMode> supported(int ipaLimit, Set<Granule> granules) {
        List<GuestMode> l = new ArrayList<>();
        for (GuestMode m : values()) if (m.supportedBy(ipaLimit, granules)) l.add(m);
        return l;
    }

    public boolean supportedBy(int ipaLimit, Set<Granule> granules) {
        return paBits <= ipaLimit && granules.contains(pageSize);
    }

    /**
     * The mode {@code text} names: a numeric ID as {@code -m} takes it, or a name such as
     * {@code P40V48_4K}.
     *
     * @throws IllegalArgumentException naming {@code -m} when no arm64 mode has that ID or name
     */
    public static GuestMode parse(String text) {
        String t = text == null ? "" : text.trim();
        for (GuestMode m : values()) if (Integer.toString(m.id).equals(t) || m.name().equalsIgnoreCase(t)) return m;
        if (t.matches("[0-9]+") && Integer.parseInt(t) <= LAST_ID) {
            throw new IllegalArgumentException("-m: guest mode ID " + t + " is not an arm64 mode (arm64 has 0-8, 12-14, 16)");
        }
        throw new IllegalArgumentException("-m: " + text + " is not a guest mode ID (arm64: 0-8, 12-14, 16) or name such as P40V48_4K");
    }
}
