package dev.ptlab.core.table;

import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheMaintenance;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;

/**
 * One ordered log of everything a table does to the outside world: TLB invalidations (it wraps a
 * real {@link TlbSystem}, so TLBs stay coherent and the per-scope counters still count), cache
 * maintenance (as the memory's {@link CacheMaintenance.Listener}) and hand-overs to the
 * free-unlinked hook. Each event also records what a fresh walk of the table shows at the
 * {@link #watch} address at that very moment (walks are reentrant in one thread), and the value
 * of an optional {@link #probe}. Test support.
 */
final class OpsLog implements TlbMaintenance, CacheMaintenance.Listener {
    enum Kind { TLBI_IPA, TLBI_IPA_LOCAL, TLBI_RANGE, TLBI_VMID, TLBI_HYP, DC, IC, FREE_UNLINKED }

    /**
     * One call. {@code addr}/{@code size}/{@code level}: what the call named (IPA, PA for cache
     * maintenance; level hint for by-IPA TLBIs). {@code watched}: the entry translating the watch
     * address at the time of the call (null when nothing is watched).
     */
    record Event(Kind kind, long addr, long size, int level, Leaf watched, boolean probe) {
        boolean isTlbi() {
            return kind.name().startsWith("TLBI");
        }

        @Override
        public String toString() {
            return kind + " 0x" + Long.toHexString(addr) + "+0x" + Long.toHexString(size)
                    + (level == LEVEL_UNKNOWN ? " L?" : " L" + level) + " watched=" + watched + " probe=" + probe;
        }
    }

    final TlbSystem hw = new TlbSystem();
    final List<Event> events = new ArrayList<>();
    /** The table whose entry is read at each event (set once the table exists). */
    Stage2PageTable table;
    /** IPA whose translating entry each event records; negative for none. */
    long watch = -1;
    /** Extra fact recorded with each event (e.g. "the old subtree's frame is still allocated"). */
    BooleanSupplier probe = () -> false;

    private void add(Kind kind, long addr, long size, int level) {
        Leaf w = table != null && watch >= 0 ? table.getLeaf(watch) : null;
        events.add(new Event(kind, addr, size, level, w, probe.getAsBoolean()));
    }

    void clear() {
        events.clear();
    }

    List<Event> tlbis() {
        return events.stream().filter(Event::isTlbi).toList();
    }

    List<Kind> kinds() {
        return events.stream().map(Event::kind).toList();
    }

    /** A free-unlinked hook that logs the hand-over, then frees the subtree at once. */
    FreeUnlinkedHook recordingHook() {
        return (t, subtree) -> {
            add(Kind.FREE_UNLINKED, subtree.base(), 0, subtree.level());
            t.freeUnlinked(subtree);
        };
    }

    // ---- TlbMaintenance: log, then do it ----

    @Override
    public void flushVmidIpa(int vmid, long ipa, int levelHint) {
        add(Kind.TLBI_IPA, ipa, 0, levelHint);
        hw.flushVmidIpa(vmid, ipa, levelHint);
    }

    @Override
    public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
        add(Kind.TLBI_IPA_LOCAL, ipa, 0, levelHint);
        hw.flushVmidIpaLocal(local, vmid, ipa, levelHint);
    }

    @Override
    public void flushVmidRange(int vmid, long ipa, long size) {
        add(Kind.TLBI_RANGE, ipa, size, LEVEL_UNKNOWN);
        hw.flushVmidRange(vmid, ipa, size);
    }

    @Override
    public void flushVmid(int vmid) {
        add(Kind.TLBI_VMID, 0, 0, LEVEL_UNKNOWN);
        hw.flushVmid(vmid);
    }

    @Override
    public void flushHypVa(long va, int levelHint) {
        add(Kind.TLBI_HYP, va, 0, levelHint);
        hw.flushHypVa(va, levelHint);
    }

    // ---- CacheMaintenance.Listener ----

    @Override
    public void dcacheCleanInvalPoc(long pa, long size) {
        add(Kind.DC, pa, size, LEVEL_UNKNOWN);
    }

    @Override
    public void icacheInvalPou(long pa, long size) {
        add(Kind.IC, pa, size, LEVEL_UNKNOWN);
    }
}
