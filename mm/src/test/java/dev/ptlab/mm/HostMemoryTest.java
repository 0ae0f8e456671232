package dev.ptlab.mm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;

import dev.ptlab.core.arch.Granule;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

class HostMemoryTest {
    private static final long BASE = 1L << 40;
    private static final long PAGE = 4096;

    @Test
    void foliosAreAlignedDisjointAndAllMemoryComesBackAsWholeBlocks() {
        // Each op: order in 0..4 to allocate, or -k to free the k-th oldest live folio.
        qt().withExamples(200).forAll(lists().of(integers().between(-6, 4)).ofSizeBetween(1, 80)).checkAssert(ops -> {
            HostMemory mem = new HostMemory(BASE, 64 * PAGE, Granule.G4K, 4);
            List<Folio> live = new ArrayList<>();
            TreeMap<Long, Long> model = new TreeMap<>(); // start -> end of live folios
            for (int op : ops) {
                if (op >= 0) {
                    Folio f = mem.allocate(op, Folio.ANON);
                    if (f == null) {
                        // Only allowed when no aligned free run of that order exists.
                        assertThat(hasFreeAlignedRun(model, 1L << op)).isFalse();
                        continue;
                    }
                    assertThat(f.order()).isEqualTo(op);
                    assertThat((f.pa() - BASE) % (PAGE << op)).as("natural alignment").isZero();
                    Long before = model.floorKey(f.pa() + f.size() - 1);
                    assertThat(before == null || model.get(before) <= f.pa()).as("disjoint from live folios").isTrue();
                    model.put(f.pa(), f.pa() + f.size());
                    live.add(f);
                    for (int p = 0; p < f.pages(); p++) assertThat(mem.folioOf(f.pa() + p * PAGE)).isSameAs(f);
                } else if (!live.isEmpty()) {
                    Folio f = live.remove(Math.min(-op - 1, live.size() - 1));
                    f.put();
                    model.remove(f.pa());
                    assertThat(mem.folioOf(f.pa())).isNull();
                }
                long used = model.entrySet().stream().mapToLong(e -> (e.getValue() - e.getKey()) / PAGE).sum();
                assertThat(mem.pagesInUse()).isEqualTo(used);
            }
            for (Folio f : live) f.put();
            assertThat(mem.pagesInUse()).isZero();
            // Fully coalesced: every max-order block can be allocated again.
            for (int i = 0; i < 4; i++) assertThat(mem.allocate(4, 0)).isNotNull();
            assertThat(mem.allocate(0, 0)).isNull();
        });
    }

    private static boolean hasFreeAlignedRun(TreeMap<Long, Long> live, long pages) {
        for (long start = BASE; start < BASE + 64 * PAGE; start += pages * PAGE) {
            long end = start + pages * PAGE;
            Long k = live.floorKey(end - 1);
            if (k == null || live.get(k) <= start) return true;
        }
        return false;
    }

    @Test
    void splittingALargeFolioGivesOrderZeroFoliosWithItsContentsAndCounts() {
        HostMemory mem = new HostMemory(BASE, 16 * PAGE, Granule.G4K, 4);
        Folio big = mem.allocate(2, Folio.ANON);
        big.writeInt(PAGE + 8, 42);
        big.markDirty();
        Folio[] small = mem.split(big, 1, 1);
        assertThat(small).hasSize(4);
        assertThat(small[1].readInt(8)).isEqualTo(42);
        assertThat(small[2].readInt(8)).isZero();
        for (int i = 0; i < 4; i++) {
            assertThat(small[i].pa()).isEqualTo(big.pa() + i * PAGE);
            assertThat(small[i].refcount()).isEqualTo(1);
            assertThat(small[i].mapcount()).isEqualTo(1);
            assertThat(small[i].isAnon() && small[i].isDirty()).isTrue();
            assertThat(mem.folioOf(small[i].pa())).isSameAs(small[i]);
        }
        for (Folio f : small) {
            f.decMapcount();
            f.put();
        }
        assertThat(mem.pagesInUse()).isZero();
        assertThat(mem.allocate(4, 0)).as("the pages merged back").isNotNull();
    }

    @Test
    void misuseIsReportedWithTheArgument() {
        assertThatThrownBy(() -> new HostMemory(BASE + PAGE, 16 * PAGE, Granule.G4K, 4)).hasMessageContaining("base: 0x10000001000");
        HostMemory mem = new HostMemory(BASE, 16 * PAGE, Granule.G4K, 4);
        assertThatThrownBy(() -> mem.allocate(5, 0)).hasMessageContaining("order: 5");
        assertThatThrownBy(() -> mem.folioOf(0)).hasMessageContaining("pa: 0x0");
        Folio f = mem.allocate(0, 0);
        f.put();
        assertThatThrownBy(f::put).hasMessageContaining("put below zero");
        assertThat(f.tryGet()).as("a freed folio cannot be revived").isFalse();
    }
}
