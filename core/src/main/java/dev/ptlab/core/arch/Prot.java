package dev.ptlab.core.arch;

import dev.ptlab.core.PageTableException;
import java.util.Locale;

/**
 * Requested access rights and memory type of a mapping, independent of descriptor format.
 *
 * <p>Bit values follow the kernel's {@code enum kvm_pgtable_prot} (v6.17): PX, UX, W, R, DEVICE,
 * NORMAL_NC in the low bits, and SW0..SW3 at descriptor bits 55..58 so they can be OR-ed into a
 * leaf directly. Validity depends on the table kind: see {@link Stage2Descriptor#attributes} and
 * {@link HypDescriptor#attributes}.
 */
public final class Prot {
    public static final long PX_BIT = 1L;
    public static final long UX_BIT = 1L << 1;
    public static final long W_BIT = 1L << 2;
    public static final long R_BIT = 1L << 3;
    public static final long DEVICE_BIT = 1L << 4;
    public static final long NORMAL_NC_BIT = 1L << 5;
    public static final long SW0_BIT = 1L << 55;
    public static final long SW1_BIT = 1L << 56;
    public static final long SW2_BIT = 1L << 57;
    public static final long SW3_BIT = 1L << 58;
    public static final long SW_MASK = SW0_BIT | SW1_BIT | SW2_BIT | SW3_BIT;
    public static final long X_BITS = PX_BIT | UX_BIT;
    private static final long ALL = PX_BIT | UX_BIT | W_BIT | R_BIT | DEVICE_BIT | NORMAL_NC_BIT | SW_MASK;

    public static final Prot NONE = new Prot(0);
    public static final Prot R = new Prot(R_BIT);
    public static final Prot RW = new Prot(R_BIT | W_BIT);
    public static final Prot RX = new Prot(R_BIT | X_BITS);
    public static final Prot RWX = new Prot(R_BIT | W_BIT | X_BITS);
    public static final Prot DEVICE_RW = new Prot(R_BIT | W_BIT | DEVICE_BIT);

    private final long bits;

    private Prot(long bits) {
        this.bits = bits;
    }

    /** A prot from raw bits; unknown bits are an error naming the value. */
    public static Prot of(long bits) {
        if ((bits & ~ALL) != 0) {
            throw PageTableException.invalidArgument("prot", bits, "has unknown bits 0x" + Long.toHexString(bits & ~ALL));
        }
        return new Prot(bits);
    }

    /**
     * Parses the textual form used by scenario files: letters {@code r w x} (x = PX|UX), or
     * {@code px}/{@code ux} for one execute right, optionally followed by {@code +device},
     * {@code +nc}, {@code +sw0}..{@code +sw3}; {@code none} for no access. Example: {@code rw+device}.
     */
    public static Prot parse(String text) {
        if (text == null) throw new IllegalArgumentException("prot: null; expected e.g. r, rw, rx, rwx, rw+device, none");
        String t = text.trim().toLowerCase(Locale.ROOT);
        if (t.isEmpty()) {
            throw new IllegalArgumentException("prot: \"" + text + "\" is empty; expected e.g. r, rw, rx, rwx, rw+device, none");
        }
        // Limit -1 keeps trailing empty parts, so "rw+" or "rw+device+" is an error, not "rw".
        String[] parts = t.split("\\+", -1);
        long bits = 0;
        String perms = parts[0];
        if (!perms.equals("none") && !perms.equals("-")) {
            int i = 0;
            while (i < perms.length()) {
                if (perms.startsWith("px", i)) { bits |= PX_BIT; i += 2; continue; }
                if (perms.startsWith("ux", i)) { bits |= UX_BIT; i += 2; continue; }
                char c = perms.charAt(i++);
                switch (c) {
                    case 'r': bits |= R_BIT; break;
                    case 'w': bits |= W_BIT; break;
                    case 'x': bits |= X_BITS; break;
                    default:
                        throw new IllegalArgumentException("prot: \"" + text + "\" has unknown permission '" + c
                                + "'; expected letters r, w, x (or px, ux), or none");
                }
            }
        }
        for (int p = 1; p < parts.length; p++) {
            switch (parts[p]) {
                case "device": bits |= DEVICE_BIT; break;
                case "nc": bits |= NORMAL_NC_BIT; break;
                case "sw0": bits |= SW0_BIT; break;
                case "sw1": bits |= SW1_BIT; break;
                case "sw2": bits |= SW2_BIT; break;
                case "sw3": bits |= SW3_BIT; break;
                default:
                    throw new IllegalArgumentException("prot: \"" + text + "\" has unknown attribute \"" + parts[p]
                            + "\"; expected device, nc, sw0, sw1, sw2 or sw3");
            }
        }
        return new Prot(bits);
    }

    public long bits() { return bits; }
    public boolean has(long bit) { return (bits & bit) == bit; }
    public boolean readable() { return (bits & R_BIT) != 0; }
    public boolean writable() { return (bits & W_BIT) != 0; }
    public boolean privExec() { return (bits & PX_BIT) != 0; }
    public boolean userExec() { return (bits & UX_BIT) != 0; }
    public boolean anyExec() { return (bits & X_BITS) != 0; }
    public boolean device() { return (bits & DEVICE_BIT) != 0; }
    public boolean normalNc() { return (bits & NORMAL_NC_BIT) != 0; }
    public long swBits() { return bits & SW_MASK; }

    public Prot with(long bit) { return new Prot(bits | bit); }
    public Prot without(long bit) { return new Prot(bits & ~bit); }

    @Override
    public boolean equals(Object o) {
        return o instanceof Prot && ((Prot) o).bits == bits;
    }

    @Override
    public int hashCode() {
        return Long.hashCode(bits);
    }

    /** The same textual form {@link #parse} reads. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        if (readable()) sb.append('r');
        if (writable()) sb.append('w');
        if (privExec() && userExec()) sb.append('x');
        else if (privExec()) sb.append("px");
        else if (userExec()) sb.append("ux");
        if (sb.length() == 0) sb.append("none");
        if (device()) sb.append("+device");
        if (normalNc()) sb.append("+nc");
        for (int i = 0; i < 4; i++) {
            if ((bits & (SW0_BIT << i)) != 0) sb.append("+sw").append(i);
        }
        return sb.toString();
    }
}
