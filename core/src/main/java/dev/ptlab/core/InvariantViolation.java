package dev.ptlab.core;

/** A table, refcount or break-before-make invariant does not hold. Thrown loudly, never swallowed. */
public final class InvariantViolation extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public InvariantViolation(String message) {
        super(message);
    }
}
