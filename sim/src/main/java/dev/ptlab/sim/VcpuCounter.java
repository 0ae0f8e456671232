package dev.ptlab.sim;

import java.util.function.ToLongFunction;

/**
 * The vCPUs' own counts over a phase ({@link VcpuStats}, summed over the vCPUs), in report
 * order. Accesses, faults by type and level and the latency histogram are the phase's shape
 * rather than counters, and reports give them their own places.
 */
public enum VcpuCounter implements PhaseCounter {
    RACED("raced", "raced", Text.COLUMN, true, VcpuStats::raced),
    SPURIOUS("spurious", "spurious", Text.COLUMN, true, VcpuStats::spurious),
    MMIO_EXITS("mmioExits", "mmio-exits", Text.JSON_ONLY, false, VcpuStats::mmioExits),
    ADDRESS_SIZE_ERRORS("addressSizeErrors", "address-size-errors", Text.JSON_ONLY, false, VcpuStats::addressSizeErrors),
    /** Faults retried because an MMU-notifier invalidation raced with them: a host-side effect. */
    SEQ_RETRIES("seqRetries", "seq-retries", Text.NON_ZERO, true, VcpuStats::seqRetries),
    /** Faults whose host page GUP refused: a host-side effect. */
    EFAULT_EXITS("efaultExits", "efault-exits", Text.NON_ZERO, true, VcpuStats::efaultExits);

    private final Entry entry;
    private final ToLongFunction<VcpuStats> read;

    VcpuCounter(String key, String label, Text text, boolean compared, ToLongFunction<VcpuStats> read) {
        this.entry = new Entry(key, label, text, compared);
        this.read = read;
    }

    @Override
    public Entry entry() { return entry; }

    @Override
    public long valueIn(PhaseReport phase) {
        return read.applyAsLong(phase.vcpus());
    }
}
