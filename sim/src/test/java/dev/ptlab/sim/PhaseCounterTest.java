package dev.ptlab.sim;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.hw.TlbiScope;
import dev.ptlab.core.mem.CacheCounter;
import dev.ptlab.core.table.TableCounter;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.notify.NotifierEvent;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The counter registries: every source counter reported once, keys unique, and a phase's values read from the right source. */
class PhaseCounterTest {
    private static List<String> keys() {
        List<String> k = new ArrayList<>();
        for (PhaseCounter c : PhaseReport.COUNTERS) k.add(c.key());
        for (VcpuCounter c : VcpuCounter.values()) k.add(c.key());
        return k;
    }

    @Test
    void everyCoreCounterIsAPhaseCounterAndEveryKeyIsUnique() {
        List<String> keys = keys();
        assertThat(new HashSet<>(keys)).as("unique keys").hasSameSizeAs(keys);
        Set<String> vm = new HashSet<>();
        for (VmCounter c : VmCounter.values()) vm.add(c.key());
        for (TableCounter c : TableCounter.values()) assertThat(vm).as(c.name()).contains(c.key());
        for (CacheCounter c : CacheCounter.values()) assertThat(vm).as(c.name()).contains(c.key());
        for (TlbiScope s : TlbiScope.values()) assertThat(vm.contains(s.key())).as(s.name()).isEqualTo(s.stage2());
        for (NotifierEvent e : NotifierEvent.values()) assertThat(keys).contains(HostCounter.notifier(e).key());
        for (MmEvent e : MmEvent.values()) assertThat(keys).contains(HostCounter.host(e).key());
        assertThat(HostCounter.host(MmEvent.EXCLUSIVE_RESTORE).key()).isEqualTo("host-exclusive-restore");
        assertThat(HostCounter.notifier(NotifierEvent.EXCLUSIVE).key()).isEqualTo("notifier-exclusive");
    }

    @Test
    void theReportOrderIsTheVmsChangesThenTheHostSideThenTheLevels() {
        List<PhaseCounter> c = PhaseReport.COUNTERS;
        assertThat(c.get(0)).isEqualTo(VmCounter.BBM);
        assertThat(c.subList(c.size() - 2, c.size())).containsExactly(VmCounter.FRAMES_PEAK, VmCounter.FRAMES_IN_USE);
        assertThat(c.indexOf(VmCounter.INVALID_WINDOW_STEPS)).isEqualTo(c.indexOf(HostCounter.ALL.get(0)) - 1);
    }

    @Test
    void aPhaseReadsEachCounterFromItsOwnSource() {
        // One vCPU, 8M of 2M blocks with fixed host memory: create maps 4 blocks through 1 table.
        KvmPageTableSelftest.Result r = KvmPageTableSelftest.run(VmConfig.defaults().withHostMemory(HostMemoryModel.FIXED),
                KvmPageTableSelftest.Options.defaults().memory(8L << 20).backing(Backing.THP).vcpus(1));
        PhaseReport create = r.phase("create");
        assertThat(create.get(VmCounter.LEAVES_INSTALLED)).isEqualTo(4);
        assertThat(create.counter("leaves-installed")).isEqualTo(4);
        assertThat(create.get(VmCounter.TLBI_RANGE)).isZero();
        assertThat(r.phase("log-enable").get(VmCounter.TLBI_RANGE)).isEqualTo(1);
        assertThat(create.get(VmCounter.FRAMES_IN_USE)).as("a level") .isEqualTo(create.get(VmCounter.FRAMES_PEAK));
        assertThat(create.get(VcpuCounter.RACED)).isEqualTo(create.vcpus().raced());
        for (HostCounter h : HostCounter.ALL) assertThat(create.get(h)).as(h.key()).isZero();
        assertThat(create.counters().keySet()).containsExactlyElementsOf(
                PhaseReport.COUNTERS.stream().map(PhaseCounter::key).toList());
    }
}
