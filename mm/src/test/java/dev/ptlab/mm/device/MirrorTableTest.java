package dev.ptlab.mm.device;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.lists;
import static org.quicktheories.generators.SourceDSL.longs;

import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The device's flat page table against a sorted map of pages, operation by operation. */
class MirrorTableTest {

    private static final long ATOMIC = MirrorDevice.ATOMIC;

    /**
     * Decodes one generated long into an operation on a small key space (so probe runs collide,
     * wrap around and get shifted back by deletions) and applies it to both; every result must agree.
     */
    private static void step(long op, MirrorTable t, NavigableMap<Long, Long> ref) {
        long key = (op >>> 8) % 96;
        long value = ((op >>> 16) % 1000 + 1) << 12 | ((op >>> 40) & 7);
        switch ((int) (op & 7)) {
            case 0: case 1: case 2: {
                Long prev = ref.put(key, value);
                assertThat(t.put(key, value)).isEqualTo(prev == null ? 0 : prev);
                break;
            }
            case 3: case 4: {
                Long prev = ref.remove(key);
                assertThat(t.remove(key)).isEqualTo(prev == null ? 0 : prev);
                break;
            }
            case 5: {
                // A range that is sometimes wider than the table (the scanning path).
                long len = (op >>> 44) % 5 == 0 ? 1L << 40 : (op >>> 44) % 24;
                Map<Long, Long> doomed = ref.subMap(key, true, key + len, false);
                long flagged = doomed.values().stream().filter(v -> (v & ATOMIC) != 0).count();
                int removed = doomed.size();
                long r = t.removeRange(key, key + len, ATOMIC);
                doomed.clear();
                assertThat(MirrorTable.removed(r)).isEqualTo(removed);
                assertThat(MirrorTable.flagged(r)).isEqualTo(flagged);
                break;
            }
            case 6: {
                long len = (op >>> 44) % 3 == 0 ? 1L << 40 : (op >>> 44) % 24 + 1;
                boolean any = ref.subMap(key, true, key + len, false).values().stream().anyMatch(v -> (v & ATOMIC) != 0);
                assertThat(t.anyInRange(key, key + len, ATOMIC)).isEqualTo(any);
                break;
            }
            default:
                assertThat(t.get(key)).isEqualTo(ref.getOrDefault(key, 0L));
        }
        assertThat(t.size()).isEqualTo(ref.size());
    }

    @Test
    void agreesWithASortedMap() {
        qt().withExamples(300).forAll(lists().of(longs().between(0, Long.MAX_VALUE)).ofSizeBetween(0, 400))
                .checkAssert((List<Long> ops) -> {
                    MirrorTable t = new MirrorTable();
                    NavigableMap<Long, Long> ref = new TreeMap<>();
                    for (long op : ops) step(op, t, ref);
                    for (long k = 0; k < 100; k++) assertThat(t.get(k)).as("key %d", k).isEqualTo(ref.getOrDefault(k, 0L));
                    assertThat(t.count(ATOMIC)).isEqualTo(ref.values().stream().filter(v -> (v & ATOMIC) != 0).count());
                });
    }

    @Test
    void growsAndKeepsEveryEntry() {
        MirrorTable t = new MirrorTable();
        for (long k = 0; k < 10_000; k++) t.put(k * 7919, (k + 1) << 12);
        assertThat(t.size()).isEqualTo(10_000);
        for (long k = 0; k < 10_000; k++) assertThat(t.get(k * 7919)).isEqualTo((k + 1) << 12);
        long r = t.removeRange(0, Long.MAX_VALUE, ATOMIC);
        assertThat(MirrorTable.removed(r)).isEqualTo(10_000);
        assertThat(t.size()).isZero();
        assertThat(t.get(7919)).isZero();
    }

    @Test
    void rejectsNegativeKeysAndEmptyValues() {
        MirrorTable t = new MirrorTable();
        assertThatThrownBy(() -> t.put(-1, 1)).isInstanceOf(IllegalArgumentException.class).hasMessage("key: -1 is negative");
        assertThatThrownBy(() -> t.put(1, 0)).isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("value: 0");
    }
}
