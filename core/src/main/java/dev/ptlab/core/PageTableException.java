package dev.ptlab.core;

/**
 * A real error of a table operation (as opposed to a visit status such as RACED): bad arguments,
 * an address outside the table, an empty memory cache. It names the address and level where it
 * happened when there is one, and carries the errno the kernel would have returned.
 */
public class PageTableException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    /** Level value meaning "not tied to a level". */
    public static final int NO_LEVEL = Integer.MIN_VALUE;
    /** Address value meaning "not tied to an address". */
    public static final long NO_ADDRESS = -1L;

    private final Errno errno;
    private final long address;
    private final int level;
    private final String argument;

    public PageTableException(Errno errno, long address, int level, String reason) {
        this(errno, address, level, reason, null);
    }

    private PageTableException(Errno errno, long address, int level, String reason, String argument) {
        super(format(errno, address, level, reason));
        this.errno = errno;
        this.address = address;
        this.level = level;
        this.argument = argument;
    }

    /** {@link #withContext}: the same error under a longer message. */
    private PageTableException(String message, PageTableException of) {
        super(message, of);
        this.errno = of.errno;
        this.address = of.address;
        this.level = of.level;
        this.argument = of.argument;
    }

    private static String format(Errno errno, long address, int level, String reason) {
        StringBuilder sb = new StringBuilder();
        if (address != NO_ADDRESS) sb.append("at 0x").append(Long.toHexString(address));
        if (level != NO_LEVEL) sb.append(sb.length() > 0 ? " " : "").append("level ").append(level);
        if (sb.length() > 0) sb.append(": ");
        sb.append(reason).append(" (").append(errno).append(')');
        return sb.toString();
    }

    /** An argument error: names the argument and its value. */
    public static PageTableException invalidArgument(String name, Object value, String why) {
        return new PageTableException(Errno.EINVAL, NO_ADDRESS, NO_LEVEL, name + ": " + value + " " + why, name);
    }

    public static PageTableException invalidArgument(String name, long hexValue, String why) {
        return invalidArgument(name, (Object) ("0x" + Long.toHexString(hexValue)), why);
    }

    /**
     * This error with {@code context} (where it happened, e.g. which vCPU's fault) in front of its
     * message: same errno, address, level and argument, so a layer adds where without hiding what
     * behind another exception type.
     */
    public PageTableException withContext(String context) {
        return new PageTableException(context + ": " + getMessage(), this);
    }

    public Errno errno() {
        return errno;
    }

    /** The kernel's negative return value (e.g. -12). */
    public int kernelReturn() {
        return errno.kernelReturn();
    }

    public long address() {
        return address;
    }

    public int level() {
        return level;
    }

    /**
     * The machine-readable reason of an argument error: the name of the argument that was refused
     * (as {@link #invalidArgument} was given it, e.g. {@code "pa-bits"}), or {@code null} when the
     * error is not about one argument. Callers branch on this, never on the message text.
     */
    public String argument() {
        return argument;
    }
}
