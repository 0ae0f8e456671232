package dev.ptlab.mm;

/** A CPU access ended in SIGSEGV: {@link #mapError()} for SEGV_MAPERR (no VMA), else SEGV_ACCERR. */
public final class SegmentationFault extends RuntimeException {
    private final long addr;
    private final boolean mapError;

    public SegmentationFault(long addr, boolean mapError, String message) {
        super("SIGSEGV (" + (mapError ? "SEGV_MAPERR" : "SEGV_ACCERR") + ") at 0x" + Long.toHexString(addr) + ": " + message);
        this.addr = addr;
        this.mapError = mapError;
    }

    public long addr() { return addr; }
    public boolean mapError() { return mapError; }
}
