package dev.ptlab.sim;

/** How the guest-abort handler serialises against other table users. */
public enum FaultLocking {
    /** Linux 6.2+: faults take the MMU lock for reading and run as shared walks (CAS, LOCKED entries). */
    SHARED("shared"),
    /** Before 6.2 (and pKVM): every fault takes the MMU lock for writing and walks exclusively. */
    WRITE("write");

    private final String label;

    FaultLocking(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    public static FaultLocking parse(String text) {
        for (FaultLocking f : values()) if (f.label.equalsIgnoreCase(text.trim())) return f;
        throw new IllegalArgumentException("fault locking: " + text + " is not one of shared, write");
    }

    @Override
    public String toString() {
        return label;
    }
}
