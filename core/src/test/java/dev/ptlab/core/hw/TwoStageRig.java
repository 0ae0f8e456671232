package dev.ptlab.core.hw;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage1Descriptor;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.Stage1PageTable;
import dev.ptlab.core.table.Stage2PageTable;

/**
 * A guest with a 48-bit stage 1 (TTBR0_EL1, one ASID) over a 48-bit stage 2 on one CPU. The
 * guest's page tables live in a 16-frame window at IPA = PA 0x4000_0000, mapped at stage 2 page
 * by page (16 frames never make a block), so each stage-1 table frame has its own stage-2 leaf.
 */
public final class TwoStageRig {
    public static final int VMID = 7;
    public static final int ASID = 1;
    public static final long TABLES = 0x4000_0000L;

    public final Granule g;
    public final PhysicalMemory host;
    public final PhysicalMemory guest;
    public final TlbSystem tlbs = new TlbSystem();
    public final Tlb tlb;
    public final Stage2PageTable s2;
    public final Stage1PageTable s1;
    public final MemCache cache;
    public final Mmu s2mmu;
    public final NestedMmu mmu;

    public TwoStageRig(Granule g, int walkEntries) {
        this(g, walkEntries, null);
    }

    /** {@code tlbi}: the stage-2 table's maintenance (null: the real {@link TlbSystem} sequences). */
    public TwoStageRig(Granule g, int walkEntries, java.util.function.Function<TlbSystem, TlbMaintenance> tlbi) {
        this.g = g;
        host = new PhysicalMemory(0x10_0000_0000L, 64L << 20, g, true);
        guest = new PhysicalMemory(TABLES, 16 * g.pageSize(), g, true);
        tlb = new Tlb("cpu0", g, 512, 64, walkEntries);
        tlb.setStrict(true);
        tlbs.register(tlb);
        cache = new MemCache(host);
        s2 = new Stage2PageTable(Geometry.stage2(g, 48), host, tlbi == null ? tlbs : tlbi.apply(tlbs), VMID, 0);
        s1 = new Stage1PageTable(Geometry.guestStage1(g, 48), guest, tlbs, VMID, ASID);
        mapS2(TABLES, guest.size(), TABLES, Prot.RW);
        s2mmu = new Mmu(s2.geometry(), host, tlb, s2.rootPa(), VMID, false, false);
        mmu = new NestedMmu(s2mmu, guest);
        load(ASID);
    }

    /** SCTLR_EL1.M = 1; TCR_EL1: T0SZ 16, TG0 = the granule, EPD1 (no TTBR1 half), IPS 0b101 (48 bits), AS (16-bit ASIDs). */
    public void load(int asid) {
        long tcr = 16L | (long) g.tg0() << NestedMmu.TG0_SHIFT | 1L << NestedMmu.EPD1_SHIFT | 5L << NestedMmu.IPS_SHIFT
                | 1L << NestedMmu.AS_SHIFT;
        mmu.loadEl1(1, tcr, (long) asid << 48 | s1.rootPa(), 0, Stage1Descriptor.MAIR_EL1);
    }

    public void mapS2(long ipa, long size, long pa, Prot prot) {
        cache.topUp(16);
        s2.map(ipa, size, pa, prot, cache);
    }
}
