package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;

/**
 * What every workload's options share: the guest memory's size and backing and the number of
 * vCPUs (defaults: the selftest's, 1 GiB, anonymous, one vCPU). {@link #slotBase} places the
 * random workloads' memslot at the top of guest-physical space; the selftest places its own
 * ({@link KvmPageTableSelftest#plan}). A workload's own options extend this with its knobs.
 *
 * @param <T> the workload's options type, so the setters chain
 */
public abstract class WorkloadOptions<T extends WorkloadOptions<T>> {
    long memory = 1L << 30;
    Backing backing = Backing.PAGE;
    int vcpus = 1;

    @SuppressWarnings("unchecked")
    private T self() {
        return (T) this;
    }

    public T memory(long bytes) {
        this.memory = bytes;
        return self();
    }

    public T backing(Backing b) {
        this.backing = b;
        return self();
    }

    public T vcpus(int n) {
        this.vcpus = n;
        return self();
    }

    /** Takes the memory, backing and vCPUs of {@code from}. */
    public T layout(WorkloadOptions<?> from) {
        return memory(from.memory).backing(from.backing).vcpus(from.vcpus);
    }

    public long memory() { return memory; }
    public Backing backing() { return backing; }
    public int vcpus() { return vcpus; }

    /**
     * Checks the layout against {@code config} and returns the memslot's guest-physical base.
     *
     * @throws IllegalArgumentException naming the option when the run is impossible
     */
    public long slotBase(VmConfig config) {
        Granule g = config.granule();
        long unit = backing.size(g);
        if (vcpus < 1 || vcpus > 512) throw new IllegalArgumentException("vcpus: " + vcpus + " is outside 1..512");
        if (memory <= 0 || memory % unit != 0) {
            throw new IllegalArgumentException("memory: " + Sizes.format(memory) + " is not a positive multiple of the " + backing
                    + " backing's page size " + Sizes.format(unit) + " (" + g.label() + " granule)");
        }
        long limit = 1L << config.ipaBits();
        if (memory > limit) {
            throw new IllegalArgumentException("memory: " + Sizes.format(memory) + " is more than the " + config.ipaBits()
                    + "-bit IPA space (" + Sizes.format(limit) + ")");
        }
        if (memory / unit < vcpus) {
            throw new IllegalArgumentException("vcpus: " + vcpus + " is more than the " + memory / unit + " large pages to share");
        }
        return (limit - memory) & -unit;
    }

    /** Just the memslot's layout: to check or describe it before (or apart from) a workload's own options. */
    public static final class Layout extends WorkloadOptions<Layout> {}
}
