package dev.ptlab.jcstress;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.WalkFlags;

/**
 * One small stage-2 table per jcstress state: 4K granule, 39-bit IPA (level-1 root, level-2 and
 * level-3 tables), a vCPU whose MMU (no hardware AF update) has its TLB registered so the
 * writer's TLBIs wait for its walks, and a memory cache. Not a test.
 */
final class Rig {
    static final int VMID = 9;
    static final int FAULT = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
    static final long K4 = 0x1000, M2 = 2L << 20;
    static final long A = 0x4000_0000L;
    /** Old and new PAs: they differ in both 32-bit halves, so a torn descriptor is neither. */
    static final long P = 0x8000_0000L, Q = 0x1_4000_0000L;

    final PhysicalMemory mem;
    final TlbSystem tlbs = new TlbSystem();
    final Stage2PageTable table;
    final MemCache cache;
    final Mmu mmu;

    Rig(boolean checking) {
        mem = new PhysicalMemory(0x10_0000_0000L, 8 * K4, Granule.G4K, checking);
        table = new Stage2PageTable(Geometry.stage2(Granule.G4K, 39), mem, tlbs, VMID, 0);
        cache = new MemCache(mem, 3); // exactly 3 frames: the rig's memory is 8 frames
        cache.topUp(3);
        Tlb tlb = new Tlb("vcpu", Granule.G4K, 16, 16);
        tlbs.register(tlb);
        mmu = new Mmu(table.geometry(), mem, tlb, table.rootPa(), VMID, false, false);
    }

    long leaf(long pa, Prot prot, int level) {
        return Stage2Descriptor.leaf(table.geometry(), pa, Stage2Descriptor.attributes(prot, false, table.geometry().oaFormat()), level);
    }

    /**
     * The MMU's translation of {@code addr}, expected to map to {@code oldPa} or {@code newPa} (the
     * PAs of {@code addr}'s page) plus the offset in the page:
     * 1 = old, 2 = translation fault at {@code lockedLevel} (the LOCKED entry), 3 = new, 0 = anything else.
     */
    int translate(long addr, long oldPa, long newPa, int lockedLevel) {
        long r = mmu.translate(addr, Access.READ);
        long off = addr & (K4 - 1);
        if (Translation.isFault(r)) {
            return Translation.faultType(r) == FaultType.TRANSLATION && Translation.faultLevel(r) == lockedLevel ? 2 : 0;
        }
        if (r == oldPa + off) return 1;
        if (r == newPa + off) return 3;
        return 0;
    }
}
