package dev.ptlab.core.walk;

import dev.ptlab.core.PageTableException;

/**
 * Flags of one walk (bit values as in the kernel's {@code enum kvm_pgtable_walk_flags}).
 *
 * <p>Which flags a caller may give: {@link #ALL} for a walk with a visitor of its own
 * ({@code PageTable.walk}, {@link Walker#walk}); the table operations that take flags accept
 * only the ones their Javadoc lists ({@link #FAULT} for mkyoung and relaxPerms, plus
 * {@link #SKIP_CMO} for map). {@link #SKIP_BBM_TLBI} is internal: it is right only for a table
 * no hardware can see yet, which only the operations themselves know.
 */
public final class WalkFlags {
    private WalkFlags() {}

    /** Visit leaf entries, including invalid ones (an invalid entry is a leaf). */
    public static final int LEAF = 1;
    /** Visit table entries before descending into them. */
    public static final int TABLE_PRE = 1 << 1;
    /** Visit table entries after their subtree, with the value observed before descending. */
    public static final int TABLE_POST = 1 << 2;
    /** Other software walkers may run concurrently: compare-and-swap updates, deferred freeing. */
    public static final int SHARED = 1 << 3;
    /** A fault walk: RACED stops the walk so the vCPU re-faults (default policy {@link WalkPolicy#FAULT}). */
    public static final int HANDLE_FAULT = 1 << 4;
    /** Break-before-make without TLB invalidation (the table is not yet visible to hardware). */
    public static final int SKIP_BBM_TLBI = 1 << 5;
    /** Skip D-cache/I-cache maintenance when installing leaves. */
    public static final int SKIP_CMO = 1 << 6;

    /** Every defined flag; any other bit is refused. */
    public static final int ALL = LEAF | TABLE_PRE | TABLE_POST | SHARED | HANDLE_FAULT | SKIP_BBM_TLBI | SKIP_CMO;
    /** The flags of the fault path: what mkyoung and relaxPerms accept. */
    public static final int FAULT = SHARED | HANDLE_FAULT;

    /**
     * Refuses {@code flags} unless every bit is in {@code allowed}: EINVAL naming "flags", with
     * the bits {@code operation} does not accept.
     */
    public static void check(int flags, int allowed, String operation) {
        int bad = flags & ~allowed;
        if (bad != 0) {
            throw PageTableException.invalidArgument("flags", toString(flags), "has " + toString(bad)
                    + ", which " + operation + " does not accept (allowed: " + toString(allowed) + ")");
        }
    }

    public static boolean has(int flags, int flag) {
        return (flags & flag) != 0;
    }

    public static String toString(int flags) {
        StringBuilder sb = new StringBuilder();
        String[] names = {"LEAF", "TABLE_PRE", "TABLE_POST", "SHARED", "HANDLE_FAULT", "SKIP_BBM_TLBI", "SKIP_CMO"};
        for (int i = 0; i < names.length; i++) {
            if ((flags & (1 << i)) != 0) sb.append(sb.length() > 0 ? "|" : "").append(names[i]);
        }
        int unknown = flags & ~ALL;
        if (unknown != 0) sb.append(sb.length() > 0 ? "|" : "").append("0x").append(Integer.toHexString(unknown));
        return sb.length() == 0 ? "0" : sb.toString();
    }
}
