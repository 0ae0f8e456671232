package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.walk.WalkFlags;
import org.junit.jupiter.api.Test;

/**
 * {@code updateLeafAttrs} refuses set/clear bits that would need break-before-make (memory type,
 * output address, ...) before it walks, in every mode: on memory that does not check stores, on
 * each path an update can take (the exclusive run path, the exclusive per-entry path that an
 * execute-field change takes, the shared per-entry path of fault walks), and leaves the table as
 * it was.
 */
class Stage2AttrRefusalTest {
    static final long A = 0x4000_0000L, P = 0x8000_0000L, K4 = 0x1000;
    /** A memory-type change: needs break-before-make. */
    static final long MEMATTR = Stage2Descriptor.MEMATTR_MASK;
    /** An output-address bit: needs break-before-make. */
    static final long OA_BIT = 1L << 30;

    /** A stage-2 table on memory that does not check stores: only the refusal can stop a bad update. */
    private static Stage2PageTable table() {
        PhysicalMemory mem = new PhysicalMemory(0x10_0000_0000L, 64L << 20, Granule.G4K, false);
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, new TlbSystem(), 3, 0);
        MemCache cache = new MemCache(mem);
        cache.topUp(8);
        t.map(A, 4 * K4, P, Prot.parse("rw"), cache);
        return t;
    }

    private static long[] entries(Stage2PageTable t) {
        long[] e = new long[4];
        for (int i = 0; i < e.length; i++) e[i] = t.getLeaf(A + i * K4).pte();
        return e;
    }

    private static void assertRefused(long set, long clear, int flags) {
        Stage2PageTable t = table();
        long[] before = entries(t);
        long updates = t.counters().attrUpdates();
        assertThatThrownBy(() -> Stage2Attrs.updateLeafAttrs(t, A, 4 * K4, set, clear, flags))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("touches bits that need break-before-make");
        assertThat(entries(t)).as("table unchanged").containsExactly(before);
        assertThat(t.counters().attrUpdates()).isEqualTo(updates);
        t.checkRefcounts();
    }

    @Test
    void exclusiveRunPathRefusesAMemoryTypeChange() {
        assertRefused(MEMATTR, 0, 0);
        assertRefused(0, MEMATTR, 0);
    }

    @Test
    void exclusivePerEntryPathRefusesAnOutputAddressChange() {
        // An execute-field change keeps the update off the run path (I-cache maintenance may be due).
        assertRefused(OA_BIT | Stage2Descriptor.XN_NONE, Stage2Descriptor.XN_MASK, 0);
    }

    @Test
    void sharedPerEntryPathRefusesAMemoryTypeAndAnOutputAddressChange() {
        assertRefused(MEMATTR, 0, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT);
        assertRefused(0, OA_BIT, WalkFlags.SHARED);
    }

    @Test
    void exemptBitsAreStillApplied() {
        Stage2PageTable t = table();
        Stage2Attrs.updateLeafAttrs(t, A, 4 * K4, 0, Stage2Descriptor.S2AP_W, WalkFlags.SHARED);
        for (long e : entries(t)) assertThat(Stage2Descriptor.writable(e)).isFalse();
        assertThat(t.counters().attrUpdates()).isEqualTo(4);
    }
}
