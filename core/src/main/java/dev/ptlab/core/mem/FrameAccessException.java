package dev.ptlab.core.mem;

/** A table frame was used after it was freed, or a PA does not name a live table frame. */
public final class FrameAccessException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public FrameAccessException(String message) {
        super(message);
    }
}
