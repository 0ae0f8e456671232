package dev.ptlab.core.table;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** {@link TableCounters} keeps one adder per {@link TableCounter}: the visitors' named fields are the same adders. */
class TableCounterTest {
    @Test
    void everyCounterHasItsOwnAdderReachedByNameAndByConstant() {
        TableCounters t = new TableCounters();
        TableCounter[] all = TableCounter.values();
        for (int i = 0; i < all.length; i++) t.add(all[i], i + 1);
        for (int i = 0; i < all.length; i++) assertThat(t.get(all[i])).as(all[i].key()).isEqualTo(i + 1);
        t.breakBeforeMake.add(10);
        t.invalidWindowSteps.add(10);
        assertThat(t.breakBeforeMake()).isEqualTo(t.get(TableCounter.BREAK_BEFORE_MAKE)).isEqualTo(11);
        assertThat(t.invalidWindowSteps()).isEqualTo(t.get(TableCounter.INVALID_WINDOW_STEPS)).isEqualTo(all.length + 10);
        assertThat(t.raced()).isEqualTo(t.get(TableCounter.RACED));
        t.reset();
        for (TableCounter c : all) assertThat(t.get(c)).as(c.key()).isZero();
        Set<String> keys = new HashSet<>();
        for (TableCounter c : all) keys.add(c.key());
        assertThat(keys).hasSize(all.length).contains("bbm", "table-raced", "invalid-window-steps");
    }

    @Test
    void theTextTheBenchDigestsKeepsItsForm() {
        TableCounters t = new TableCounters();
        t.leavesInstalled.add(3);
        t.coalesced.add(1);
        assertThat(t.toString()).isEqualTo("bbm=0 leaves+=3 leaves-=0 tables+=0 tables-=0 raced=0 coalesced=1 invalidWindowSteps=0 "
                + "splits=0 attrUpdates=0");
    }
}
