package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Pte;
import org.junit.jupiter.api.Test;

/** {@link AddressRange}'s half-open edges, and how a {@link Leaf} prints. */
class AddressRangeTest {
    @Test
    void aRangeHoldsItsStartButNotItsEnd() {
        AddressRange r = AddressRange.ofSize(0x1000, 0x3000); // [0x1000, 0x4000)
        assertThat(r.size()).isEqualTo(0x3000);
        assertThat(r.contains(0x1000)).isTrue();
        assertThat(r.contains(0x3fff)).isTrue();
        assertThat(r.contains(0x4000)).isFalse();
        assertThat(r.contains(0xfff)).isFalse();
        assertThat(r.contains(AddressRange.ofSize(0x1000, 0x3000))).isTrue();
        assertThat(r.contains(AddressRange.ofSize(0x1000, 0x3001))).isFalse();
        assertThat(r.contains(AddressRange.ofSize(0xfff, 0x10))).isFalse();
        assertThat(r).hasToString("[0x1000, 0x4000)");
    }

    @Test
    void adjacentRangesDoNotOverlapAndOneSharedAddressIsEnough() {
        AddressRange r = AddressRange.ofSize(0x1000, 0x3000);
        assertThat(r.overlaps(AddressRange.ofSize(0x4000, 0x1000))).isFalse();
        assertThat(r.overlaps(AddressRange.ofSize(0, 0x1000))).isFalse();
        assertThat(r.overlaps(AddressRange.ofSize(0x3fff, 0x1000))).isTrue();
        assertThat(r.overlaps(AddressRange.ofSize(0, 0x1001))).isTrue();
    }

    @Test
    void aLeafPrintsItsEntryAndLevel() {
        Leaf l = new Leaf(0x8000_0000L | Pte.VALID, 2);
        assertThat(l.valid()).isTrue();
        assertThat(l).hasToString("Leaf[pte=0x80000001, level=2]");
        assertThat(new Leaf(0, 3).valid()).isFalse();
    }
}
