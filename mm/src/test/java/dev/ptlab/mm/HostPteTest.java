package dev.ptlab.mm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.longs;

import dev.ptlab.core.arch.BreakBeforeMake;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import org.junit.jupiter.api.Test;

class HostPteTest {
    private static final Geometry G = Geometry.process(Granule.G4K, 48);

    @Test
    void swapStyleEntriesRoundTripTypeAndOffsetAndAreNeverValidOrTables() {
        qt().forAll(integers().between(0, 31), longs().between(0, (1L << HostPte.SWP_OFFSET_BITS) - 1)).checkAssert((type, offset) -> {
            long e = HostPte.swapEntry(type, offset);
            assertThat(HostPte.swapType(e)).isEqualTo(type);
            assertThat(HostPte.swapOffset(e)).isEqualTo(offset);
            assertThat(Pte.isValid(e)).isFalse();
            for (int level = 0; level <= 3; level++) assertThat(Pte.isTable(e, level)).isFalse();
            assertThat(HostPte.isDeviceExclusive(e)).isEqualTo(type == HostPte.SWP_DEVICE_EXCLUSIVE);
            assertThat(HostPte.isSwap(e)).isEqualTo(type < HostPte.MAX_SWAPFILES && e != 0);
        });
    }

    @Test
    void deviceExclusiveNamesThePfnAndEveryNonZeroEntryKeepsItsTableAlive() {
        long e = HostPte.deviceExclusive(0x12345);
        assertThat(HostPte.swapOffset(e)).isEqualTo(0x12345);
        assertThat(HostPte.describe(G, e)).isEqualTo("device-exclusive offset=0x12345");
        assertThat(Pte.isCounted(Stage.PROCESS, e)).isTrue();
        assertThat(Pte.isCounted(Stage.HYP, e)).as("hyp tables count valid entries only").isFalse();
        assertThat(Pte.isCounted(Stage.PROCESS, 0)).isFalse();
    }

    @Test
    void presentEntriesCarryTheirPermissionsAndAddress() {
        long pa = 0x100_0020_3000L;
        long rw = HostPte.present(G, pa, 3, true, true, false, true, true);
        assertThat(HostPte.pa(G, rw)).isEqualTo(pa);
        assertThat(Pte.isValidLeaf(rw, 3)).isTrue();
        assertThat(HostPte.isWrite(rw)).isTrue();
        assertThat(HostPte.isExec(rw)).isFalse();
        assertThat(HostPte.isYoung(rw)).isTrue();
        assertThat(HostPte.isDirty(rw)).isTrue();
        long ro = HostPte.wrprotect(rw);
        assertThat(HostPte.isWrite(ro)).isFalse();
        assertThat(HostPte.isWrite(HostPte.mkWrite(ro))).isTrue();
        assertThat(HostPte.isYoung(HostPte.mkOld(rw))).isFalse();
        long none = HostPte.present(G, pa, 2, false, false, false, false, false);
        assertThat(HostPte.isUser(none)).isFalse();
        assertThat(Pte.isTable(none, 2)).as("a level-2 present leaf is a block").isFalse();
        assertThat(HostPte.describe(G, ro)).isEqualTo("present pa=0x10000203000 ro young dirty");
    }

    @Test
    void permissionAgeAndDirtyChangesNeedNoBreakBeforeMakeButAnAddressChangeDoes() {
        long pte = HostPte.present(G, 0x4000_0000L, 3, true, true, true, true, false);
        for (long changed : new long[] {HostPte.wrprotect(pte), HostPte.mkOld(pte), HostPte.mkDirty(pte), pte & ~HostPte.USER,
                pte | HostPte.UXN}) {
            assertThat(BreakBeforeMake.storeAllowed(Stage.PROCESS, 3, pte, changed)).as(HostPte.describe(G, changed)).isTrue();
        }
        long moved = HostPte.present(G, 0x4000_1000L, 3, true, true, true, true, false);
        assertThat(BreakBeforeMake.storeAllowed(Stage.PROCESS, 3, pte, moved)).isFalse();
    }

    @Test
    void outOfRangeFieldsAreRefusedByName() {
        assertThatThrownBy(() -> HostPte.swapEntry(32, 0)).hasMessageContaining("type: 32");
        assertThatThrownBy(() -> HostPte.swapEntry(0, 1L << 50)).hasMessageContaining("offset: 0x4000000000000");
    }
}
