package dev.ptlab.core.conc;

import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A broken TLB maintenance for mutation tests: drops every broadcast stage-2 invalidation
 * ({@code flushVmidIpa}, {@code flushVmidRange}, {@code flushVmid}) and forwards the rest (the
 * local by-IPA flush of relaxPerms, hyp flushes). Given to a table, it is break-before-make
 * without the TLBI, and unmap without it: TLBs keep translations the table no longer has, and
 * tables are freed while MMU walks may still be reading them.
 */
public final class DroppingTlbi implements TlbMaintenance {
    private final TlbMaintenance real;
    private final AtomicLong dropped = new AtomicLong();

    public DroppingTlbi(TlbMaintenance real) {
        this.real = real;
    }

    /** Invalidations dropped so far. */
    public long dropped() {
        return dropped.get();
    }

    @Override
    public void flushVmidIpa(int vmid, long ipa, int levelHint) {
        dropped.incrementAndGet();
    }

    @Override
    public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
        real.flushVmidIpaLocal(local, vmid, ipa, levelHint);
    }

    @Override
    public void flushVmidRange(int vmid, long ipa, long size) {
        dropped.incrementAndGet();
    }

    @Override
    public void flushVmid(int vmid) {
        dropped.incrementAndGet();
    }

    @Override
    public void flushHypVa(long va, int levelHint) {
        real.flushHypVa(va, levelHint);
    }
}
