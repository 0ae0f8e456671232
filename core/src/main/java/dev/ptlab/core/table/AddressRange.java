package dev.ptlab.core.table;

import dev.ptlab.core.PageTableException;

/**
 * A half-open range of input addresses {@code [start, end)}: {@code start} is included,
 * {@code end} is not. The kernel's {@code struct kvm_mem_range}.
 *
 * <p>The record only checks that the range is not empty ({@code start < end}, compared as signed
 * values, which is how every address ptlab handles compares: input addresses are below 2^52).
 * It does <em>not</em> require page alignment: a range can describe any byte span, for example
 * a memory region of the host. Each operation that takes a range says what it does with an
 * unaligned one; {@link Stage2PageTable#idmapGreedy} only maps whole pages inside it, so an
 * unaligned end simply clips the result.
 */
public record AddressRange(long start, long end) {
    /** @throws PageTableException EINVAL naming the range if it is empty or reversed */
    public AddressRange {
        if (start >= end) {
            throw PageTableException.invalidArgument("range", "[0x" + Long.toHexString(start) + ", 0x"
                    + Long.toHexString(end) + ")", "is empty or reversed (start must be below end)");
        }
    }

    /** The range {@code [start, start + size)}. */
    public static AddressRange ofSize(long start, long size) {
        if (size <= 0) throw PageTableException.invalidArgument("size", size, "is not positive");
        long end = start + size;
        if (end < start) {
            throw PageTableException.invalidArgument("size", size, "overflows from start 0x" + Long.toHexString(start));
        }
        return new AddressRange(start, end);
    }

    /** Bytes in the range. */
    public long size() {
        return end - start;
    }

    /** Whether {@code addr} lies in {@code [start, end)}. */
    public boolean contains(long addr) {
        return start <= addr && addr < end;
    }

    /** Whether {@code other} lies entirely inside this range. */
    public boolean contains(AddressRange other) {
        return start <= other.start && other.end <= end;
    }

    /** Whether the two ranges share at least one address. */
    public boolean overlaps(AddressRange other) {
        return start < other.end && other.start < end;
    }

    @Override
    public String toString() {
        return "[0x" + Long.toHexString(start) + ", 0x" + Long.toHexString(end) + ")";
    }
}
