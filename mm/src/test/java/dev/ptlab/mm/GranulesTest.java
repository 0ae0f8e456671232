package dev.ptlab.mm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.arch.Granule;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The same operations with 16K and 64K pages: THP and hugetlb at the granule's level-2 block. */
class GranulesTest {
    private static final int RW = Mman.PROT_READ | Mman.PROT_WRITE;
    private static final int PRIVATE = Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS;

    @ParameterizedTest
    @EnumSource(Granule.class)
    void pagesThpHugetlbForkAndTeardown(Granule g) {
        Host host = new Host(g, 2L << 30, 48, true);
        assertThat(host.memory().maxOrder()).isEqualTo(g == Granule.G4K ? 18 : g == Granule.G16K ? 11 : 13);
        long page = g.pageSize();
        long block = g.levelSize(2);
        AddressSpace mm = host.newAddressSpace();
        long a = mm.mmap(0, 4 * page, RW, PRIVATE);
        mm.writeInt(a + page + 4, 3);
        assertThat(mm.pteLevel(a + page)).isEqualTo(3);
        long t = mm.mmap(0, block, RW, PRIVATE);
        assertThat(t % block).isZero();
        mm.madvise(t, block, Mman.MADV_HUGEPAGE);
        mm.writeInt(t + 3 * page, 4);
        assertThat(mm.pteLevel(t)).isEqualTo(2);
        assertThat(mm.rss()).isEqualTo(1 + block / page);
        long h = mm.mmap(0, block, RW, PRIVATE | Mman.MAP_HUGETLB);
        mm.writeInt(h, 5);
        assertThat(mm.pteLevel(h)).isEqualTo(2);
        host.checkInvariants(true);
        AddressSpace child = mm.fork();
        child.writeInt(a + page + 4, 6);
        child.writeInt(t + 3 * page, 7);
        assertThat(mm.readInt(a + page + 4)).isEqualTo(3);
        assertThat(mm.readInt(t + 3 * page)).isEqualTo(4);
        assertThat(child.readInt(h)).isEqualTo(5);
        host.checkInvariants(true);
        Folio f = mm.makeDeviceExclusive(t + 3 * page, "dev");
        assertThat(f.order()).as("the THP's PTE page, COW-copied since the child shares the block").isZero();
        f.unlock();
        f.put();
        assertThat(mm.readInt(t + 3 * page)).isEqualTo(4);
        assertThatThrownBy(() -> mm.mmap(0, block, RW, PRIVATE | Mman.MAP_HUGETLB | Mman.MAP_HUGE_1GB))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
        host.checkInvariants(true);
        child.close();
        mm.close();
        assertThat(host.memory().pagesInUse()).isZero();
        assertThat(host.tableMemory().framesInUse()).isZero();
    }
}
