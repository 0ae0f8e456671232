package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * How a memslot's host memory is backed, as the KVM selftests name it ({@code -s} of
 * {@code kvm_page_table_test}; {@code vm_mem_backing_src_alias} in
 * tools/testing/selftests/kvm/lib/test_util.c, Linux 7.1-rc4): private anonymous base pages,
 * transparent huge pages, hugetlb pages of the host's default or an explicit size, or shared
 * memory (shmem, a shared hugetlb file).
 *
 * <p>Two sizes matter and are kept apart: the backing's <em>granularity</em> ({@link #size}, the
 * selftest's {@code get_backing_src_pagesz}: its stride in create and its alignment), and the
 * largest stage-2 mapping a fault may make from it ({@link #mappingSize}): KVM's
 * {@code user_mem_abort} maps a contiguous hugetlb page (CONT_PMD: 32M with 4K pages, 1G with
 * 16K, 16G with 64K) as PMD blocks, and a CONT_PTE one (64K with 4K, 2M with 16K or 64K) as
 * pages; only PMD and PUD sizes become blocks of their own size.
 *
 * <p>Instances compare by what they back with, not by the name they were parsed from: {@code thp}
 * and {@code anonymous_thp} are equal, and print as given ({@link #toString()}; the selftest's
 * name is {@link #selftestName()}).
 */
public final class Backing {
    /** The kind of host memory. */
    public enum Kind {
        /** Private anonymous base pages (the selftest's {@code anonymous}, with MADV_NOHUGEPAGE). */
        ANONYMOUS,
        /** Private anonymous memory with MADV_HUGEPAGE: PMD-size THPs. */
        THP,
        /** Private anonymous MAP_HUGETLB pages. */
        HUGETLB,
        /** Shared memory of base pages (the selftest's {@code shmem}: a memfd mapped MAP_SHARED). */
        SHMEM,
        /** A shared hugetlb file (the selftest's {@code shared_hugetlb}: a MFD_HUGETLB memfd, MAP_SHARED). */
        SHARED_HUGETLB
    }

    /** Base pages of the granule's size: the selftest's {@code anonymous} (ptlab's short name {@code page}). */
    public static final Backing PAGE = new Backing(Kind.ANONYMOUS, 0, "page");
    /** Transparent huge pages, one level-2 block each (2M with 4K, 32M with 16K, 512M with 64K): {@code anonymous_thp}. */
    public static final Backing THP = new Backing(Kind.THP, 0, "thp");
    /**
     * hugetlb pages of the host's default size, which on arm64 is the PMD size (2M with 4K, 32M
     * with 16K, 512M with 64K): {@code anonymous_hugetlb}.
     */
    public static final Backing HUGETLB = new Backing(Kind.HUGETLB, 0, "hugetlb");

    /** The explicit hugetlb sizes the selftest names ({@code anonymous_hugetlb_16kb} ... {@code _16gb}). */
    private static final long[] NAMED_HUGE_SIZES = {16L << 10, 64L << 10, 512L << 10, 1L << 20, 2L << 20, 8L << 20, 16L << 20,
        32L << 20, 256L << 20, 512L << 20, 1L << 30, 2L << 30, 16L << 30};

    private final Kind kind;
    /** An explicit hugetlb page size, or 0 for the host's default. */
    private final long hugeSize;
    private final String label;

    private Backing(Kind kind, long hugeSize, String label) {
        this.kind = kind;
        this.hugeSize = hugeSize;
        this.label = label;
    }

    /** Private hugetlb pages of {@code size} bytes ({@code anonymous_hugetlb_<size>}); 0 for the host's default size. */
    public static Backing hugetlb(long size) {
        if (size < 0) throw new IllegalArgumentException("hugetlb size: " + size + " is negative");
        return new Backing(Kind.HUGETLB, size, size == 0 ? "anonymous_hugetlb" : "anonymous_hugetlb_" + sizeName(size));
    }

    /** Shared memory: {@code shmem}, or with {@code hugetlb} a shared hugetlb file of the default size ({@code shared_hugetlb}). */
    public static Backing shared(boolean hugetlb) {
        return hugetlb ? new Backing(Kind.SHARED_HUGETLB, 0, "shared_hugetlb") : new Backing(Kind.SHMEM, 0, "shmem");
    }

    public Kind kind() { return kind; }

    /** Whether the host memory is hugetlb pages (private or shared). */
    public boolean hugetlb() {
        return kind == Kind.HUGETLB || kind == Kind.SHARED_HUGETLB;
    }

    /** Whether the host memory is shared (MAP_SHARED), so it is not anonymous and never COW. */
    public boolean shared() {
        return kind == Kind.SHMEM || kind == Kind.SHARED_HUGETLB;
    }

    /** The name the selftests give it: {@code anonymous}, {@code anonymous_thp}, {@code anonymous_hugetlb_1gb}, {@code shmem}, ... */
    public String selftestName() {
        switch (kind) {
            case ANONYMOUS: return "anonymous";
            case THP: return "anonymous_thp";
            case SHMEM: return "shmem";
            case SHARED_HUGETLB: return "shared_hugetlb";
            default: return hugetlb(hugeSize).label;
        }
    }

    /** The name it was given: ptlab's short names ({@code page}, {@code thp}, {@code hugetlb}) or the selftest's. */
    public String label() {
        return label;
    }

    /**
     * The backing's granularity with host page size {@code g}: one host page of it (the
     * selftest's {@code large_page_size}).
     */
    public long size(Granule g) {
        switch (kind) {
            case ANONYMOUS: case SHMEM: return g.pageSize();
            case THP: return g.levelSize(2);
            default: return hugeSize == 0 ? g.levelSize(2) : hugeSize;
        }
    }

    /**
     * The largest stage-2 mapping a fault makes from this backing with granule {@code g}, as
     * {@code user_mem_abort} picks it (Linux 7.1-rc4, arch/arm64/kvm/mmu.c): a PUD- or PMD-size
     * page maps as a block of its size, a CONT_PMD one as PMD blocks, anything smaller than a PMD
     * as pages.
     */
    public long mappingSize(Granule g) {
        long size = size(g);
        if (g == Granule.G4K && size == g.levelSize(1)) return size;
        if (size >= g.levelSize(2)) return g.levelSize(2);
        return g.pageSize();
    }

    /**
     * The hugetlb sizes the arm64 host offers with page size {@code g} (arch/arm64/mm/hugetlbpage.c:
     * PUD with 4K pages only, CONT_PMD, PMD, CONT_PTE).
     */
    public static List<Long> hugetlbSizes(Granule g) {
        List<Long> s = new ArrayList<>();
        switch (g) {
            case G4K: s.add(64L << 10); s.add(2L << 20); s.add(32L << 20); s.add(1L << 30); break;
            case G16K: s.add(2L << 20); s.add(32L << 20); s.add(1L << 30); break;
            default: s.add(2L << 20); s.add(512L << 20); s.add(16L << 30); break;
        }
        return s;
    }

    /**
     * Checks that a host with page size {@code g} offers this backing.
     *
     * @throws IllegalArgumentException naming the backing and the sizes that exist
     */
    public void check(Granule g) {
        if (kind != Kind.HUGETLB || hugeSize == 0 || hugetlbSizes(g).contains(hugeSize)) return;
        List<String> names = new ArrayList<>();
        for (long s : hugetlbSizes(g)) names.add("anonymous_hugetlb_" + sizeName(s));
        throw new IllegalArgumentException("backing: " + label + " is not a hugetlb size of a " + g.label() + "-page arm64 host (it has "
                + String.join(", ", names) + ")");
    }

    /**
     * Parses a backing: the selftest's names ({@code anonymous}, {@code anonymous_thp},
     * {@code anonymous_hugetlb}, {@code anonymous_hugetlb_<size>}, {@code shmem},
     * {@code shared_hugetlb}) or ptlab's short ones ({@code page}/{@code 4k}, {@code thp},
     * {@code hugetlb}, the last now the host's default huge page like {@code anonymous_hugetlb}).
     */
    public static Backing parse(String text) {
        if (text == null) throw new IllegalArgumentException("backing: null");
        String t = text.trim().toLowerCase(Locale.ROOT);
        switch (t) {
            case "page": case "4k": return PAGE;
            case "thp": return THP;
            case "hugetlb": return HUGETLB;
            case "anonymous": return new Backing(Kind.ANONYMOUS, 0, t);
            case "anonymous_thp": return new Backing(Kind.THP, 0, t);
            case "anonymous_hugetlb": return new Backing(Kind.HUGETLB, 0, t);
            case "shmem": return shared(false);
            case "shared_hugetlb": return shared(true);
            default:
                for (long s : NAMED_HUGE_SIZES) if (t.equals("anonymous_hugetlb_" + sizeName(s))) return hugetlb(s);
                throw new IllegalArgumentException("backing: " + text + " is not one of anonymous, anonymous_thp, anonymous_hugetlb, "
                        + "anonymous_hugetlb_<16kb|64kb|512kb|1mb|2mb|8mb|16mb|32mb|256mb|512mb|1gb|2gb|16gb>, shmem, shared_hugetlb "
                        + "(or page, thp, hugetlb)");
        }
    }

    /** {@code 64kb}, {@code 2mb}, {@code 1gb}: the suffix of the selftest's hugetlb names. */
    private static String sizeName(long bytes) {
        if (bytes % (1L << 30) == 0) return (bytes >> 30) + "gb";
        if (bytes % (1L << 20) == 0) return (bytes >> 20) + "mb";
        return (bytes >> 10) + "kb";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Backing && ((Backing) o).kind == kind && ((Backing) o).hugeSize == hugeSize;
    }

    @Override
    public int hashCode() {
        return Objects.hash(kind, hugeSize);
    }

    @Override
    public String toString() {
        return label;
    }
}
