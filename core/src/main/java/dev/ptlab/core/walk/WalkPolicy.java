package dev.ptlab.core.walk;

/**
 * Maps each non-OK visit status to what the walker does next. RETRY revisits the same entry
 * (re-reading it) at most {@link #maxRetries()} times, after which the walk stops with that
 * status, so every walk terminates.
 */
public final class WalkPolicy {
    /** What the walker does after a visit. */
    public enum Action { CONTINUE, RETRY, STOP }

    /** Fault walks: a raced or missing entry ends the walk; the vCPU re-faults. */
    public static final WalkPolicy FAULT = new WalkPolicy(Action.STOP, Action.STOP, 0);
    /** Range walks (unmap, wrprotect, ...): skip a raced or missing entry and go on. */
    public static final WalkPolicy RANGE = new WalkPolicy(Action.CONTINUE, Action.CONTINUE, 0);
    /** Stop on a missing entry (hyp unmap stops at the first hole), skip raced ones. */
    public static final WalkPolicy STOP_AT_HOLE = new WalkPolicy(Action.CONTINUE, Action.STOP, 0);

    private final Action onRaced;
    private final Action onNotMapped;
    private final int maxRetries;

    private WalkPolicy(Action onRaced, Action onNotMapped, int maxRetries) {
        this.onRaced = onRaced;
        this.onNotMapped = onNotMapped;
        this.maxRetries = maxRetries;
    }

    public static WalkPolicy of(Action onRaced, Action onNotMapped, int maxRetries) {
        if (onRaced == null) throw new IllegalArgumentException("onRaced: null");
        if (onNotMapped == null) throw new IllegalArgumentException("onNotMapped: null");
        if (maxRetries < 0 || maxRetries > 1_000_000) {
            throw new IllegalArgumentException("maxRetries: " + maxRetries + " is outside 0..1000000");
        }
        return new WalkPolicy(onRaced, onNotMapped, maxRetries);
    }

    /** The kernel's default: HANDLE_FAULT walks stop on RACED, others treat it as done. */
    public static WalkPolicy forFlags(int flags) {
        return WalkFlags.has(flags, WalkFlags.HANDLE_FAULT) ? FAULT : RANGE;
    }

    public Action onRaced() { return onRaced; }
    public Action onNotMapped() { return onNotMapped; }
    public int maxRetries() { return maxRetries; }

    public Action actionFor(Status status) {
        switch (status) {
            case OK: return Action.CONTINUE;
            case RACED: return onRaced;
            case NOT_MAPPED: return onNotMapped;
            default: throw new IllegalStateException("visitor returned " + status + ", which is internal to map and must not reach the walker");
        }
    }

    @Override
    public String toString() {
        return "WalkPolicy[raced=" + onRaced + ", notMapped=" + onNotMapped + ", maxRetries=" + maxRetries + "]";
    }
}
