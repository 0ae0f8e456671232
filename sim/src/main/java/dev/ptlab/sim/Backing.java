package dev.ptlab.sim;

import dev.ptlab.core.arch.Granule;

/**
 * How a memslot's host memory is backed, which bounds the stage-2 mapping size a fault may use
 * (KVM's vma_pagesize): base pages, transparent huge pages (PMD size), or hugetlb pages (PUD size
 * where the granule has level-1 blocks, else PMD size).
 */
public enum Backing {
    /** Base pages of the granule's size ("anonymous"). */
    PAGE("page"),
    /** Transparent huge pages: one level-2 block (2M with 4K, 32M with 16K, 512M with 64K). */
    THP("thp"),
    /** hugetlbfs pages: a level-1 block with 4K (1G); 16K and 64K have no level-1 blocks, so level 2. */
    HUGETLB("hugetlb");

    private final String label;

    Backing(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    /** Size of one host page of this backing with granule {@code g}. */
    public long size(Granule g) {
        switch (this) {
            case PAGE: return g.pageSize();
            case THP: return g.levelSize(2);
            default: return g == Granule.G4K ? g.levelSize(1) : g.levelSize(2);
        }
    }

    /** Parses {@code page}/{@code 4k}/{@code anonymous}, {@code thp}/{@code anonymous_thp}, {@code hugetlb}/{@code anonymous_hugetlb}. */
    public static Backing parse(String text) {
        if (text == null) throw new IllegalArgumentException("backing: null");
        switch (text.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "page": case "4k": case "anonymous": case "anon": return PAGE;
            case "thp": case "anonymous_thp": return THP;
            case "hugetlb": case "anonymous_hugetlb": return HUGETLB;
            default:
                throw new IllegalArgumentException("backing: " + text + " is not one of page, thp, hugetlb");
        }
    }

    @Override
    public String toString() {
        return label;
    }
}
