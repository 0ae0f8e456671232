package dev.ptlab.mm;

import static dev.ptlab.mm.MmFixture.G1;
import static dev.ptlab.mm.MmFixture.M2;
import static dev.ptlab.mm.MmFixture.PAGE;
import static dev.ptlab.mm.MmFixture.PRIVATE;
import static dev.ptlab.mm.MmFixture.RW;
import static dev.ptlab.mm.MmFixture.SHARED;
import static dev.ptlab.mm.MmFixture.assertAllReturned;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.Errno;
import dev.ptlab.core.hw.Access;
import java.util.IdentityHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** mmap, munmap, faults, COW, THP, hugetlb, shared memory, mprotect, madvise, reclaim, age, GUP. */
class AddressSpaceOpsTest {
    private final Host host = MmFixture.host(1);
    private final AddressSpace mm = host.newAddressSpace();

    private Folio folioAt(AddressSpace space, long addr) {
        long pte = space.pte(addr);
        assertThat(HostPte.isPresent(pte)).as("present at 0x%x", addr).isTrue();
        return host.memory().folioOf(HostPte.pa(space.geometry(), pte));
    }

    @Test
    void mmapThenMunmapReturnsEveryPageAndTableFrame() {
        long len = 8L << 20;
        long a = mm.mmap(0, len, RW, PRIVATE);
        assertThat(a).isGreaterThanOrEqualTo(AddressSpace.MMAP_BASE);
        assertThat(a % M2).as("aligned to the largest block that fits the length").isZero();
        for (long p = a; p < a + len; p += PAGE) mm.writeInt(p, (int) (p >>> 12));
        assertThat(mm.rss()).isEqualTo(len / PAGE);
        assertThat(host.memory().pagesInUse()).isEqualTo(len / PAGE);
        // root + level 1 + level 2 + 4 level-3 tables
        assertThat(host.tableMemory().framesInUse()).isEqualTo(7);
        host.checkInvariants(true);

        // A hole in the middle splits the VMA in two and frees that page.
        mm.munmap(a + 4 * PAGE, PAGE);
        assertThat(mm.vmas()).hasSize(2);
        assertThat(mm.findVma(a + 4 * PAGE)).isNull();
        assertThat(mm.rss()).isEqualTo(len / PAGE - 1);
        assertThat(mm.pte(a + 4 * PAGE)).isZero();

        mm.munmap(a, len);
        assertThat(mm.vmas()).isEmpty();
        assertThat(mm.rss()).isZero();
        assertThat(mm.stats().count(MmEvent.ZAPPED_PAGE)).isEqualTo(len / PAGE);
        assertThat(mm.stats().count(MmEvent.TABLE_FREED)).isEqualTo(6);
        assertAllReturned(host);
        assertThat(host.tableMemory().framesInUse()).as("only the root").isEqualTo(1);
    }

    @Test
    void closeFreesEverythingTheRootToo() {
        long a = mm.mmap(0, 4 * M2, RW, PRIVATE);
        for (long p = a; p < a + 4 * M2; p += 64 * PAGE) mm.writeInt(p, 1);
        AddressSpace child = mm.fork();
        child.close();
        assertThat(child.closed()).isTrue();
        assertThat(host.addressSpaces()).containsExactly(mm);
        mm.close();
        assertThat(host.addressSpaces()).isEmpty();
        assertThat(host.memory().pagesInUse()).isZero();
        assertThat(host.tableMemory().framesInUse()).isZero();
        assertThatThrownBy(() -> mm.readInt(a)).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }

    @Test
    void anonymousPagesReadZeroAndWritesReadBack() {
        long a = mm.mmap(0, 16 * PAGE, RW, PRIVATE);
        assertThat(mm.readInt(a + 12)).isZero();
        assertThat(mm.readLong(a + 5 * PAGE + 64)).isZero();
        // No zero page: the read fault allocated a page, writable and dirty since the VMA is.
        long pte = mm.pte(a);
        assertThat(HostPte.isWrite(pte)).isTrue();
        assertThat(HostPte.isDirty(pte)).isTrue();
        assertThat(mm.stats().count(MmEvent.ANON_PAGE)).isEqualTo(2);
        mm.writeInt(a + 12, 0xCAFE);
        mm.writeLong(a + 5 * PAGE + 64, 0x1234_5678_9ABCL);
        assertThat(mm.readInt(a + 12)).isEqualTo(0xCAFE);
        assertThat(mm.readInt(a + 8)).isZero();
        assertThat(mm.readLong(a + 5 * PAGE + 64)).isEqualTo(0x1234_5678_9ABCL);
        assertThat(mm.getAndAddInt(a + 12, 2)).isEqualTo(0xCAFE);
        assertThat(mm.readInt(a + 12)).isEqualTo(0xCAFE + 2);
        assertThat(mm.stats().count(MmEvent.ANON_PAGE)).as("no new fault for pages already mapped").isEqualTo(2);
        host.checkInvariants(true);
    }

    @Test
    void accessSetsYoungAndDirtyLikeHardware() {
        long a = mm.mmap(0, PAGE, Mman.PROT_READ, PRIVATE);
        long pa = mm.access(a + 100, Access.READ);
        long pte = mm.pte(a);
        assertThat(pa).isEqualTo(HostPte.pa(mm.geometry(), pte) + 100);
        assertThat(HostPte.isYoung(pte)).isTrue();
        assertThat(HostPte.isWrite(pte)).as("read-only VMA").isFalse();
        assertThat(mm.age(a, PAGE)).isEqualTo(1);
        assertThat(HostPte.isYoung(mm.pte(a))).isFalse();
        mm.access(a, Access.READ);
        assertThat(HostPte.isYoung(mm.pte(a))).isTrue();
        assertThatThrownBy(() -> mm.access(a, Access.EXEC)).isInstanceOf(SegmentationFault.class);
    }

    @Test
    void execNeedsProtExec() {
        long a = mm.mmap(0, PAGE, Mman.PROT_READ | Mman.PROT_EXEC, PRIVATE);
        mm.access(a, Access.EXEC);
        assertThat(HostPte.isExec(mm.pte(a))).isTrue();
        mm.mprotect(a, PAGE, Mman.PROT_READ);
        assertThat(HostPte.isExec(mm.pte(a))).isFalse();
        assertThat(mm.handleFault(a, Access.EXEC)).isEqualTo(FaultResult.SEGV_ACCERR);
        mm.mprotect(a, PAGE, Mman.PROT_READ | Mman.PROT_EXEC);
        assertThat(HostPte.isExec(mm.pte(a))).as("mprotect gives exec back to the entry").isTrue();
        assertThat(mm.handleFault(a, Access.EXEC)).isEqualTo(FaultResult.DONE);
        assertThat(mm.stats().count(MmEvent.SPURIOUS_FAULT)).isEqualTo(1);
    }

    @Test
    void cowAfterForkGivesEachSideItsOwnCopy() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        for (int i = 0; i < 4; i++) mm.writeInt(a + i * PAGE, 100 + i);
        Folio f0 = folioAt(mm, a);
        AddressSpace child = mm.fork();
        assertThat(mm.stats().count(MmEvent.FORK)).isEqualTo(1);
        // Shared read-only on both sides, one map count and reference per entry.
        assertThat(folioAt(child, a)).isSameAs(f0);
        assertThat(f0.mapcount()).isEqualTo(2);
        assertThat(f0.refcount()).isEqualTo(2);
        assertThat(HostPte.isWrite(mm.pte(a))).isFalse();
        assertThat(HostPte.isWrite(child.pte(a))).isFalse();
        assertThat(HostPte.isYoung(child.pte(a))).as("the child's copy is old").isFalse();
        assertThat(child.rss()).isEqualTo(4);
        host.checkInvariants(true);
        for (int i = 0; i < 4; i++) assertThat(child.readInt(a + i * PAGE)).isEqualTo(100 + i);

        child.writeInt(a, 7);
        assertThat(child.stats().count(MmEvent.COW_COPY)).isEqualTo(1);
        assertThat(folioAt(child, a)).isNotSameAs(f0);
        assertThat(f0.mapcount()).isEqualTo(1);
        assertThat(f0.refcount()).isEqualTo(1);
        // The parent is now the only user: its write reuses the page in place.
        mm.writeInt(a, 8);
        assertThat(mm.stats().count(MmEvent.COW_REUSE)).isEqualTo(1);
        assertThat(folioAt(mm, a)).isSameAs(f0);
        assertThat(mm.readInt(a)).isEqualTo(8);
        assertThat(child.readInt(a)).isEqualTo(7);
        assertThat(child.readInt(a + PAGE)).isEqualTo(101);
        host.checkInvariants(true);

        child.close();
        Folio f1 = folioAt(mm, a + PAGE);
        assertThat(f1.mapcount()).isEqualTo(1);
        mm.writeInt(a + PAGE, 9);
        assertThat(folioAt(mm, a + PAGE)).isSameAs(f1);
        assertThat(mm.stats().count(MmEvent.COW_REUSE)).isEqualTo(2);
        mm.munmap(a, 4 * PAGE);
        assertAllReturned(host);
    }

    @Test
    void writeFaultCopiesWhileAGupReferenceIsHeld() {
        long a = mm.mmap(0, PAGE, RW, PRIVATE);
        mm.writeInt(a, 5);
        mm.mprotect(a, PAGE, Mman.PROT_READ);
        mm.mprotect(a, PAGE, RW);
        assertThat(HostPte.isWrite(mm.pte(a))).as("adding write changes no entry").isFalse();
        GupResult pin = new GupResult();
        mm.getUserPage(a, 0, pin);
        Folio old = pin.folio;
        mm.writeInt(a, 6);
        // Another reference exists, so the write cannot reuse the page.
        assertThat(mm.stats().count(MmEvent.COW_COPY)).isEqualTo(1);
        assertThat(folioAt(mm, a)).isNotSameAs(old);
        assertThat(old.readInt(0)).isEqualTo(5);
        assertThat(old.mapcount()).isZero();
        assertThat(old.refcount()).isEqualTo(1);
        host.checkInvariants(false);
        pin.folio.put();
        assertThat(old.isFree()).isTrue();
        host.checkInvariants(true);
    }

    @Test
    void thpFaultMapsABlockAndSplitPmdSplitsItIntoOrderZeroFolios() {
        long a = mm.mmap(0, 2 * M2, RW, PRIVATE);
        mm.madvise(a, 2 * M2, Mman.MADV_HUGEPAGE);
        assertThat(mm.findVma(a).thp()).isTrue();
        mm.writeInt(a + 5 * PAGE, 55);
        assertThat(mm.pteLevel(a)).isEqualTo(2);
        assertThat(mm.stats().count(MmEvent.THP_PAGE)).isEqualTo(1);
        Folio thp = folioAt(mm, a);
        assertThat(thp.order()).isEqualTo(9);
        assertThat(thp.mapcount()).isEqualTo(1);
        assertThat(thp.refcount()).isEqualTo(1);
        assertThat(mm.rss()).isEqualTo(512);
        host.checkInvariants(true);

        GupResult r = new GupResult();
        mm.getUserPage(a + 7 * PAGE + 12, 0, r);
        assertThat(r.mappingSize).isEqualTo(M2);
        assertThat(r.mappingPa).isEqualTo(thp.pa());
        assertThat(r.pa).isEqualTo(thp.pa() + 7 * PAGE);
        assertThat(r.folio).isSameAs(thp);
        r.folio.put();

        mm.getUserPage(a + 5 * PAGE, Mman.FOLL_SPLIT_PMD, r);
        assertThat(mm.pteLevel(a)).isEqualTo(3);
        assertThat(r.mappingSize).isEqualTo(PAGE);
        assertThat(r.folio.order()).isZero();
        assertThat(r.folio.refcount()).as("mapping + GUP").isEqualTo(2);
        assertThat(r.folio.readInt(0)).isEqualTo(55);
        Map<Folio, Boolean> seen = new IdentityHashMap<>();
        for (long p = a; p < a + M2; p += PAGE) {
            Folio f = folioAt(mm, p);
            assertThat(f.order()).isZero();
            assertThat(f.mapcount()).isEqualTo(1);
            seen.put(f, true);
        }
        assertThat(seen).hasSize(512);
        assertThat(thp.refcount()).as("the large folio is gone").isZero();
        assertThat(host.memory().pagesInUse()).isEqualTo(512);
        host.checkInvariants(false);
        r.folio.put();
        host.checkInvariants(true);
        assertThat(mm.readInt(a + 5 * PAGE)).isEqualTo(55);
        mm.munmap(a, 2 * M2);
        assertAllReturned(host);
    }

    @Test
    void thpFallsBackToPagesWhereTheBlockLeavesTheVma() {
        long a = mm.mmap(0, 2 * M2, RW, PRIVATE);
        mm.madvise(a + PAGE, M2, Mman.MADV_HUGEPAGE);
        assertThat(mm.vmas()).hasSize(3);
        mm.writeInt(a + PAGE, 1);
        assertThat(mm.pteLevel(a + PAGE)).as("[a, a+2M) is not all inside the THP area").isEqualTo(3);
        mm.writeInt(a + M2 + PAGE, 1);
        assertThat(mm.pteLevel(a + M2 + PAGE)).isEqualTo(3);
        assertThat(mm.stats().count(MmEvent.THP_PAGE)).isZero();
        mm.madvise(a, 2 * M2, Mman.MADV_NOHUGEPAGE);
        assertThat(mm.vmas()).allMatch(v -> !v.thp());
    }

    @Test
    void thpCowAfterForkSplitsThePmdAndCopiesOnePage() {
        long a = mm.mmap(0, M2, RW, PRIVATE);
        mm.madvise(a, M2, Mman.MADV_HUGEPAGE);
        mm.writeInt(a + 3 * PAGE, 33);
        Folio thp = folioAt(mm, a);
        AddressSpace child = mm.fork();
        assertThat(child.pteLevel(a)).as("copied as a block").isEqualTo(2);
        assertThat(thp.mapcount()).isEqualTo(2);
        host.checkInvariants(true);
        child.writeInt(a + 3 * PAGE, 44);
        assertThat(child.pteLevel(a)).isEqualTo(3);
        assertThat(child.stats().count(MmEvent.THP_SPLIT)).isEqualTo(1);
        // Parent block (1) + the child's 511 remaining PTEs on the large folio.
        assertThat(thp.mapcount()).isEqualTo(1 + 511);
        assertThat(thp.refcount()).isEqualTo(1 + 511);
        assertThat(mm.readInt(a + 3 * PAGE)).isEqualTo(33);
        assertThat(child.readInt(a + 3 * PAGE)).isEqualTo(44);
        host.checkInvariants(true);
        // Partial munmap of the parent's block: split first, the rest stays mapped.
        mm.munmap(a, 4 * PAGE);
        assertThat(mm.pteLevel(a + 4 * PAGE)).isEqualTo(3);
        assertThat(thp.mapcount()).isEqualTo(508 + 511);
        host.checkInvariants(true);
        child.close();
        mm.munmap(a, M2);
        assertAllReturned(host);
    }

    @Test
    void hugetlbMapsBlocksAndRefusesSplitPmd() {
        Host big = MmFixture.host(2);
        AddressSpace s = big.newAddressSpace();
        long a = s.mmap(0, 2 * M2, RW, PRIVATE | Mman.MAP_HUGETLB | Mman.MAP_HUGE_2MB);
        assertThat(a % M2).isZero();
        s.writeInt(a + M2 + 8, 3);
        assertThat(s.pteLevel(a + M2)).isEqualTo(2);
        Folio f = big.memory().folioOf(HostPte.pa(s.geometry(), s.pte(a + M2)));
        assertThat(f.isHugetlb()).isTrue();
        assertThat(f.isAnon()).isTrue();
        assertThat(f.order()).isEqualTo(9);
        assertThat(s.stats().count(MmEvent.HUGETLB_PAGE)).isEqualTo(1);

        long g = s.mmap(0, G1, Mman.PROT_READ, PRIVATE | Mman.MAP_HUGETLB | Mman.MAP_HUGE_1GB);
        assertThat(g % G1).isZero();
        assertThat(s.readInt(g + 12345 * 4)).isZero();
        assertThat(s.pteLevel(g)).isEqualTo(1);
        assertThat(big.memory().folioOf(HostPte.pa(s.geometry(), s.pte(g))).order()).isEqualTo(18);
        big.checkInvariants(true);

        GupResult r = new GupResult();
        assertThatThrownBy(() -> s.getUserPage(a, Mman.FOLL_SPLIT_PMD, r))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EOPNOTSUPP));
        s.getUserPage(g + 5 * PAGE, 0, r);
        assertThat(r.mappingSize).isEqualTo(G1);
        assertThat(r.pa).isEqualTo(r.mappingPa + 5 * PAGE);
        r.folio.put();
        // Hugetlb areas are cut only at huge page boundaries.
        assertThatThrownBy(() -> s.munmap(a, PAGE)).isInstanceOfSatisfying(MmException.class,
                e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
        assertThatThrownBy(() -> s.mmap(0, PAGE, RW, PRIVATE | Mman.MAP_HUGETLB))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
        assertThatThrownBy(() -> s.mmap(a + PAGE, PAGE, RW, PRIVATE | Mman.MAP_FIXED))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
        assertThatThrownBy(() -> s.mprotect(a, PAGE, Mman.PROT_READ))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
        s.munmap(a, M2);
        assertThat(s.readInt(a + M2 + 8)).isEqualTo(3);
        // A private hugetlb page is COW after fork, copied whole.
        AddressSpace c = s.fork();
        c.writeInt(a + M2 + 8, 4);
        assertThat(c.stats().count(MmEvent.COW_COPY)).isEqualTo(1);
        assertThat(s.readInt(a + M2 + 8)).isEqualTo(3);
        assertThat(c.readInt(a + M2 + 8)).isEqualTo(4);
        big.checkInvariants(true);
        c.close();
        s.close();
        assertAllReturned(big);
    }

    @Test
    void sharedMappingIsSeenByParentAndChild() {
        long a = mm.mmap(0, 4 * PAGE, RW, SHARED);
        mm.writeInt(a + PAGE, 11);
        AddressSpace child = mm.fork();
        assertThat(child.pte(a + PAGE)).as("shared areas are not copied").isZero();
        assertThat(child.readInt(a + PAGE)).isEqualTo(11);
        Folio f = folioAt(mm, a + PAGE);
        assertThat(folioAt(child, a + PAGE)).isSameAs(f);
        assertThat(f.isAnon()).isFalse();
        assertThat(f.mapcount()).isEqualTo(2);
        assertThat(f.refcount()).as("two entries + the shared-memory object").isEqualTo(3);
        child.writeInt(a + PAGE, 12);
        assertThat(mm.readInt(a + PAGE)).isEqualTo(12);
        assertThat(child.stats().count(MmEvent.COW_COPY)).isZero();
        host.checkInvariants(true);
        mm.munmap(a, 4 * PAGE);
        assertThat(f.isFree()).as("the child's VMA still uses the object").isFalse();
        assertThat(child.readInt(a + PAGE)).isEqualTo(12);
        child.munmap(a, 4 * PAGE);
        assertThat(f.isFree()).isTrue();
        assertAllReturned(host);
    }

    @Test
    void sharedHugetlbPagesAreSharedWholeAcrossFork() {
        long a = mm.mmap(0, 2 * M2, RW, SHARED | Mman.MAP_HUGETLB | Mman.MAP_HUGE_2MB);
        mm.writeInt(a + M2 + 64, 1);
        AddressSpace child = mm.fork();
        assertThat(child.readInt(a + M2 + 64)).isEqualTo(1);
        assertThat(child.pteLevel(a + M2)).isEqualTo(2);
        Folio f = folioAt(child, a + M2);
        assertThat(folioAt(mm, a + M2)).isSameAs(f);
        assertThat(f.isHugetlb()).isTrue();
        assertThat(f.isAnon()).isFalse();
        assertThat(f.refcount()).isEqualTo(3);
        child.writeInt(a + M2 + 64, 2);
        assertThat(mm.readInt(a + M2 + 64)).isEqualTo(2);
        host.checkInvariants(true);
        child.close();
        mm.munmap(a, 2 * M2);
        assertAllReturned(host);
    }

    @Test
    void mprotectReadOnlyMakesWritesSegvAndNoVmaIsMapErr() {
        long a = mm.mmap(0, 2 * PAGE, RW, PRIVATE);
        mm.writeInt(a, 1);
        mm.mprotect(a, PAGE, Mman.PROT_READ);
        assertThat(mm.vmas()).hasSize(2);
        assertThat(HostPte.isWrite(mm.pte(a))).isFalse();
        assertThat(mm.readInt(a)).isEqualTo(1);
        assertThatThrownBy(() -> mm.writeInt(a, 2))
                .isInstanceOfSatisfying(SegmentationFault.class, e -> assertThat(e.mapError()).isFalse());
        assertThat(mm.handleFault(a, Access.WRITE)).isEqualTo(FaultResult.SEGV_ACCERR);
        mm.writeInt(a + PAGE, 2);
        assertThatThrownBy(() -> mm.readInt(a + 2 * PAGE))
                .isInstanceOfSatisfying(SegmentationFault.class, e -> assertThat(e.mapError()).isTrue());
        assertThat(mm.handleFault(0x10, Access.READ)).isEqualTo(FaultResult.SEGV_MAPERR);
        assertThat(mm.handleFault(-4096, Access.READ)).isEqualTo(FaultResult.SEGV_MAPERR);
        assertThat(mm.stats().count(MmEvent.SEGV)).isEqualTo(5);

        mm.mprotect(a, 2 * PAGE, Mman.PROT_NONE);
        assertThat(HostPte.isUser(mm.pte(a))).isFalse();
        assertThatThrownBy(() -> mm.readInt(a)).isInstanceOf(SegmentationFault.class);
        mm.mprotect(a, 2 * PAGE, RW);
        assertThat(mm.readInt(a)).isEqualTo(1);
        mm.writeInt(a, 3);
        assertThat(mm.stats().count(MmEvent.COW_REUSE)).isEqualTo(1);
        assertThatThrownBy(() -> mm.mprotect(a, 3 * PAGE, RW))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOMEM));
        host.checkInvariants(true);
    }

    @Test
    void dontneedRefillsWithZerosAndKeepsTables() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        for (int i = 0; i < 4; i++) mm.writeInt(a + i * PAGE, 9);
        long frames = host.tableMemory().framesInUse();
        mm.madvise(a + PAGE, 2 * PAGE, Mman.MADV_DONTNEED);
        assertThat(mm.pte(a + PAGE)).isZero();
        assertThat(mm.rss()).isEqualTo(2);
        assertThat(host.tableMemory().framesInUse()).isEqualTo(frames);
        assertThat(mm.readInt(a + PAGE)).isZero();
        assertThat(mm.readInt(a)).isEqualTo(9);
        assertThat(mm.readInt(a + 3 * PAGE)).isEqualTo(9);
        host.checkInvariants(true);
        assertThatThrownBy(() -> mm.madvise(a, 8 * PAGE, Mman.MADV_DONTNEED))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOMEM));
        assertThat(mm.rss()).as("the mapped part was zapped anyway").isZero();
    }

    @Test
    void reclaimThenReadRestoresTheContents() {
        long a = mm.mmap(0, 2 * PAGE, RW, PRIVATE);
        mm.writeInt(a + 40, 77);
        mm.readInt(a + PAGE);
        assertThat(mm.reclaimPage(a)).isTrue();
        assertThat(HostPte.isSwap(mm.pte(a))).isTrue();
        assertThat(HostPte.isSoftDirty(mm.pte(a))).as("soft-dirty carried into the swap entry").isTrue();
        assertThat(host.swapSlotsInUse()).isEqualTo(1);
        assertThat(mm.rss()).isEqualTo(1);
        assertThat(host.memory().pagesInUse()).isEqualTo(1);
        assertThat(mm.stats().count(MmEvent.RECLAIM)).isEqualTo(1);
        host.checkInvariants(true);

        assertThat(mm.readInt(a + 40)).isEqualTo(77);
        assertThat(mm.stats().count(MmEvent.SWAP_IN)).isEqualTo(1);
        assertThat(host.swapSlotsInUse()).isZero();
        assertThat(HostPte.isWrite(mm.pte(a))).as("a read swap-in maps read-only").isFalse();
        mm.writeInt(a + 40, 78);
        assertThat(mm.stats().count(MmEvent.COW_REUSE)).isEqualTo(1);

        // Pinned: not reclaimable. Unmapped: nothing to do.
        GupResult pin = new GupResult();
        mm.getUserPage(a, 0, pin);
        assertThat(mm.reclaimPage(a)).isFalse();
        pin.folio.put();
        assertThat(mm.reclaimPage(a + 5 * PAGE)).isFalse();

        // A swap entry is shared by fork and swapped in by each side.
        assertThat(mm.reclaimPage(a)).isTrue();
        AddressSpace child = mm.fork();
        long slot = HostPte.swapOffset(mm.pte(a));
        assertThat(host.swapCount(slot)).isEqualTo(2);
        host.checkInvariants(true);
        assertThat(child.readInt(a + 40)).isEqualTo(78);
        assertThat(host.swapCount(slot)).isEqualTo(1);
        child.close();
        mm.munmap(a, 2 * PAGE);
        assertAllReturned(host);
    }

    @Test
    void pageoutReclaimsTheRange() {
        long a = mm.mmap(0, 8 * PAGE, RW, PRIVATE);
        for (int i = 0; i < 8; i++) mm.writeInt(a + i * PAGE, i);
        mm.madvise(a, 8 * PAGE, Mman.MADV_PAGEOUT);
        assertThat(mm.rss()).isZero();
        assertThat(host.swapSlotsInUse()).isEqualTo(8);
        for (int i = 0; i < 8; i++) assertThat(mm.readInt(a + i * PAGE)).isEqualTo(i);
        assertThat(host.swapSlotsInUse()).isZero();
    }

    @Test
    void reclaimOfAThpSplitsItFirst() {
        long a = mm.mmap(0, M2, RW, PRIVATE);
        mm.madvise(a, M2, Mman.MADV_HUGEPAGE);
        mm.writeInt(a + PAGE, 21);
        assertThat(mm.reclaimPage(a + PAGE)).isTrue();
        assertThat(mm.pteLevel(a)).isEqualTo(3);
        assertThat(folioAt(mm, a).order()).as("the folio was split too").isZero();
        assertThat(mm.rss()).isEqualTo(511);
        host.checkInvariants(true);
        assertThat(mm.readInt(a + PAGE)).isEqualTo(21);
    }

    @Test
    void ageClearsYoungAndAsksTheNotifiers() {
        long a = mm.mmap(0, 8 * PAGE, RW, PRIVATE);
        for (int i = 0; i < 3; i++) mm.readInt(a + i * PAGE);
        assertThat(mm.age(a, 8 * PAGE)).isEqualTo(3);
        assertThat(mm.age(a, 8 * PAGE)).isZero();
        long[] asked = {0};
        mm.notifiers().register(new dev.ptlab.mm.notify.MmuNotifier() {
            @Override
            public boolean clearFlushYoung(long start, long end) {
                asked[0]++;
                return start == a + 2 * PAGE; // the secondary MMU used that page
            }
        });
        mm.readInt(a);
        assertThat(mm.age(a, 8 * PAGE)).isEqualTo(2);
        assertThat(asked[0]).as("once per present leaf").isEqualTo(3);
    }

    @Test
    void gupFaultsInBreaksCowAndReportsErrors() {
        long a = mm.mmap(0, 2 * PAGE, RW, PRIVATE);
        long ro = mm.mmap(0, PAGE, Mman.PROT_READ, PRIVATE);
        GupResult r = new GupResult();
        assertThatThrownBy(() -> mm.getUserPage(a, Mman.FOLL_NOFAULT, r))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EFAULT));
        mm.getUserPage(a + 8, 0, r);
        assertThat(r.pa).isEqualTo(HostPte.pa(mm.geometry(), mm.pte(a)));
        assertThat(r.writable).isTrue();
        assertThat(r.folio.refcount()).isEqualTo(2);
        r.folio.put();
        AddressSpace child = mm.fork();
        mm.getUserPage(a, Mman.FOLL_NOFAULT, r);
        assertThat(r.writable).isFalse();
        r.folio.put();
        assertThatThrownBy(() -> mm.getUserPage(a, Mman.FOLL_WRITE | Mman.FOLL_NOFAULT, r)).isInstanceOf(MmException.class);
        mm.getUserPage(a, Mman.FOLL_WRITE, r);
        assertThat(r.writable).isTrue();
        assertThat(mm.stats().count(MmEvent.COW_COPY)).isEqualTo(1);
        r.folio.put();
        assertThatThrownBy(() -> mm.getUserPage(ro, Mman.FOLL_WRITE, r))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EFAULT));
        assertThatThrownBy(() -> mm.getUserPage(0x1000, 0, r))
                .isInstanceOfSatisfying(MmException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EFAULT));
        assertThatThrownBy(() -> mm.getUserPage(a, 0x100, r)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("gupFlags");
        child.close();
        host.checkInvariants(true);
    }

    @Test
    void mmapFixedReplacesAndHintsAreHonouredWhenFree() {
        long a = mm.mmap(0, 4 * PAGE, RW, PRIVATE);
        mm.writeInt(a + PAGE, 5);
        long b = mm.mmap(a + PAGE, PAGE, Mman.PROT_READ, PRIVATE | Mman.MAP_FIXED);
        assertThat(b).isEqualTo(a + PAGE);
        assertThat(mm.vmas()).hasSize(3);
        assertThat(mm.readInt(a + PAGE)).as("the old page was unmapped").isZero();
        long hint = 0x7000_0000_0000L;
        assertThat(mm.mmap(hint, PAGE, RW, PRIVATE)).isEqualTo(hint);
        assertThat(mm.mmap(hint, PAGE, RW, PRIVATE)).as("taken: placed elsewhere").isNotEqualTo(hint);
        assertThat(mm.mmap(hint + 2 * PAGE + 1, PAGE, RW, PRIVATE)).as("unaligned hint: placed elsewhere").isLessThan(hint);
        long c = mm.mmap(0, 3 * M2, RW, PRIVATE);
        assertThat(c % M2).isZero();
        host.checkInvariants(true);
    }

    @Test
    void badArgumentsNameWhatIsWrong() {
        assertThatThrownBy(() -> mm.mmap(0, 0, RW, PRIVATE)).isInstanceOfSatisfying(MmException.class,
                e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL)).hasMessageContaining("length");
        assertThatThrownBy(() -> mm.mmap(0, PAGE, 8, PRIVATE)).hasMessageContaining("prot");
        assertThatThrownBy(() -> mm.mmap(0, PAGE, RW, Mman.MAP_ANONYMOUS)).hasMessageContaining("MAP_SHARED");
        assertThatThrownBy(() -> mm.mmap(0, PAGE, RW, PRIVATE | 0x100)).hasMessageContaining("flags");
        assertThatThrownBy(() -> mm.mmap(0x1001, PAGE, RW, PRIVATE | Mman.MAP_FIXED)).hasMessageContaining("addr");
        assertThatThrownBy(() -> mm.mmap(0, PAGE, RW, PRIVATE | Mman.MAP_FIXED)).isInstanceOfSatisfying(MmException.class,
                e -> assertThat(e.errno()).isEqualTo(Errno.EPERM));
        assertThatThrownBy(() -> mm.mmap(0, M2, RW, PRIVATE | Mman.MAP_HUGETLB | (25 << Mman.MAP_HUGE_SHIFT)))
                .hasMessageContaining("huge page size");
        assertThatThrownBy(() -> mm.munmap(0x1001, PAGE)).hasMessageContaining("addr");
        assertThatThrownBy(() -> mm.madvise(0x1000_0000, PAGE, 99)).hasMessageContaining("advice");
        assertThatThrownBy(() -> mm.readInt(0x1000_0002)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("addr");
        assertThatThrownBy(() -> new Host(null, 1, 48, false)).hasMessageContaining("granule");
        assertThatThrownBy(() -> new Host(dev.ptlab.core.arch.Granule.G4K, 0, 48, false)).hasMessageContaining("memoryBytes");
    }
}
