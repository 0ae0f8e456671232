package dev.ptlab.mm;

/**
 * What {@link AddressSpace#getUserPage} found, in a holder the caller reuses (one per vCPU), so
 * the fault path allocates nothing.
 */
public final class GupResult {
    /** The folio holding the page; the caller owns one reference on it and must {@link Folio#put()} it. */
    public Folio folio;
    /** Physical address of the page containing the address (page-aligned). */
    public long pa;
    /** Whether the host entry allows writes (true after a FOLL_WRITE success). */
    public boolean writable;
    /** Size of the host leaf mapping the address: a page, a PMD-mapped THP, a hugetlb page. */
    public long mappingSize;
    /** Physical address of that host leaf (aligned to {@link #mappingSize}). */
    public long mappingPa;

    public void clear() {
        folio = null;
        pa = 0;
        writable = false;
        mappingSize = 0;
        mappingPa = 0;
    }
}
