package dev.ptlab.core.mem;

/**
 * The only door to table frames' {@code long[]} arrays, and it opens for ptlab's core alone
 * (the opaque table references of seed 004).
 *
 * <p>Outside the core, entries are reached only through a walk's
 * {@link dev.ptlab.core.walk.VisitContext} while that walk is active, and translations through an
 * {@link dev.ptlab.core.hw.Mmu}; so every read can be checked (inside a read section, frame still
 * live and not reused) and every write goes through the break-before-make discipline. Inside the
 * core, the walker, the MMU and the checkers each hold a grant obtained once in a static
 * initializer: {@code private static final FrameAccess FRAMES = FrameAccess.grant();}.
 *
 * <p>{@link #grant} checks its caller's package. Reflection can still get around it on the class
 * path, as it can around any Java access control; the point is that no ordinary API hands out a
 * frame.
 */
public final class FrameAccess {
    private static final FrameAccess INSTANCE = new FrameAccess();
    private static final StackWalker WALKER = StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE);
    private static final String CORE = "dev.ptlab.core";

    private FrameAccess() {}

    /**
     * The grant, for classes of the core's own packages ({@code dev.ptlab.core} and below).
     *
     * @throws IllegalCallerException when called from any other package
     */
    public static FrameAccess grant() {
        Class<?> caller = WALKER.getCallerClass();
        String pkg = caller.getPackageName();
        if (!pkg.equals(CORE) && !pkg.startsWith(CORE + ".")) {
            throw new IllegalCallerException("caller: " + caller.getName() + " is outside " + CORE
                    + "; table frames are reachable only through a walk's VisitContext or an Mmu");
        }
        return INSTANCE;
    }

    /** The descriptor array of the live frame at {@code pa} (checked in checking mode). */
    public long[] frame(PhysicalMemory memory, long pa) {
        return memory.table(pa);
    }

    /** How many times the frame at {@code pa} has been freed: unchanged means "not reused". */
    public int generation(PhysicalMemory memory, long pa) {
        return memory.generation(pa);
    }
}
