package dev.ptlab.mm.device;

import static dev.ptlab.mm.Mman.MAP_ANONYMOUS;
import static dev.ptlab.mm.Mman.MAP_PRIVATE;
import static dev.ptlab.mm.Mman.PROT_READ;
import static dev.ptlab.mm.Mman.PROT_WRITE;
import static org.assertj.core.api.Assertions.assertThat;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Host;
import dev.ptlab.mm.HostPte;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.notify.NotifierEvent;
import org.junit.jupiter.api.Test;

/** The example of docs/host-memory.md, statement for statement (DocsSnippetsTest compares the two), with its stated results asserted. */
class ReadmeExampleTest {
    @Test
    void theDocumentedExampleDoesWhatThePageSays() {
        // --- docs/host-memory.md begins ---
        Host host = new Host(Granule.G4K, 64L << 20, 48, true);        // 64 MiB of host RAM, checking on
        AddressSpace mm = host.newAddressSpace();
        long buf = mm.mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
        for (int i = 0; i < 4 * 1024; i++) mm.writeInt(buf + 4L * i, i);   // CPU faults allocate zeroed pages

        MirrorDevice gpu = new MirrorDevice(mm, "gpu0");
        gpu.makeExclusive(buf, 4);                                      // 4 entries become device-exclusive
        String entry = HostPte.describe(mm.geometry(), mm.pte(buf));    // "device-exclusive offset=0x..."
        int v = mm.readInt(buf + 8);                                    // CPU fault restores the page: 2
        boolean stillAtomic = gpu.hasAtomicAccess(buf);                 // false: the restore revoked it

        AddressSpace child = mm.fork();                                 // the other 3 restored, then COW
        child.writeInt(buf + 4096, -1);                                 // the child's own copy
        host.checkInvariants(true);                                     // folio counts vs every table
        gpu.close();
        child.close();
        mm.close();                                                     // every page and table frame returned
        // --- docs/host-memory.md ends ---

        assertThat(entry).startsWith("device-exclusive offset=0x");
        assertThat(v).isEqualTo(2);
        assertThat(stillAtomic).isFalse();
        assertThat(mm.stats().count(MmEvent.EXCLUSIVE_RESTORE)).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.FORK_RESTORE)).isEqualTo(3);
        assertThat(mm.notifiers().count(NotifierEvent.EXCLUSIVE)).as("4 conversions").isEqualTo(4);
        assertThat(mm.notifiers().count(NotifierEvent.CLEAR)).as("1 restore (6.15+)").isEqualTo(1);
        assertThat(host.memory().pagesInUse()).isZero();
        assertThat(host.tableMemory().framesInUse()).isZero();
    }
}
