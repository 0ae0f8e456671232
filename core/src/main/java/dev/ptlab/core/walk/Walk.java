package dev.ptlab.core.walk;

import dev.ptlab.core.mem.Reclaimer;

/**
 * What one walk covers and how it reacts: the input range, the {@link WalkFlags}, the
 * {@link WalkPolicy} and, for a {@link WalkFlags#SHARED} walk, the {@link Reclaimer} whose read
 * section protects it. The walker's entry points take one of these instead of a row of
 * positional arguments.
 *
 * <pre>{@code Walker.walk(geometry, memory, rootPa, Walk.range(ipa, size).flags(LEAF | SHARED).reclaimer(r), visitor)}</pre>
 *
 * <p>A description is a small mutable value, built once per operation (the walk itself allocates
 * its {@link VisitContext} anyway). The walker reads it once, when the walk starts; changing it
 * afterwards does not affect a walk in progress.
 */
public final class Walk {
    private long addr;
    private long size;
    private int flags;
    private WalkPolicy policy;
    private Reclaimer reclaimer;

    private Walk(long addr, long size) {
        this.addr = addr;
        this.size = size;
    }

    /** A walk of {@code [addr, addr + size)} with no flags, the default policy and no reclaimer. */
    public static Walk range(long addr, long size) {
        return new Walk(addr, size);
    }

    /** Sets the walk flags ({@link WalkFlags}). */
    public Walk flags(int flags) {
        this.flags = flags;
        return this;
    }

    /** Sets the policy; null restores the default for the flags ({@link WalkPolicy#forFlags}). */
    public Walk policy(WalkPolicy policy) {
        this.policy = policy;
        return this;
    }

    /** Sets the reclaimer a {@link WalkFlags#SHARED} walk runs inside a read section of (ignored by exclusive walks). */
    public Walk reclaimer(Reclaimer reclaimer) {
        this.reclaimer = reclaimer;
        return this;
    }

    public long addr() { return addr; }
    public long size() { return size; }
    public int flags() { return flags; }
    public Reclaimer reclaimer() { return reclaimer; }

    /**
     * The policy the walk applies to non-OK statuses: the one set, else the kernel's default for
     * the flags (HANDLE_FAULT walks stop on RACED, others go on). This is the only place the
     * default is chosen.
     */
    public WalkPolicy policy() {
        WalkPolicy p = policy;
        return p != null ? p : WalkPolicy.forFlags(flags);
    }

    @Override
    public String toString() {
        return "Walk[0x" + Long.toHexString(addr) + " +0x" + Long.toHexString(size) + ", " + WalkFlags.toString(flags)
                + ", " + policy() + "]";
    }
}
