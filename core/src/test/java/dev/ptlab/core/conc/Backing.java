package dev.ptlab.core.conc;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import java.util.Random;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What a guest's IPA space is backed by, as the host sees it (the memslots and the host's page
 * tables): a deterministic IPA → PA function and the rights of each region. Test support for
 * {@link Vcpu} and {@link StressRun}.
 *
 * <p>The space {@code [base, base + regions * regionSize)} is cut into block-sized regions. Each
 * has fixed rights (what the memslot allows), a "huge" flag (backed by a huge page: the fault
 * path maps the whole block) and a generation. {@code pa(ipa, gen) = ipa + PA_OFFSET + (gen mod
 * 16) * span}: migrating a region (the MMU-notifier invalidation that unmaps it, then a new
 * backing page) bumps its generation, so a translation that still uses the old mapping gives a
 * PA that is visibly wrong.
 *
 * <p>The invalidation sequence ({@link #seq()}) is KVM's {@code mmu_invalidate_seq}: the fault
 * path snapshots it before resolving the PA and re-checks it under the MMU lock before mapping.
 */
public final class Backing {
    /** Added to every IPA (block aligned), so PA == IPA never passes by accident. */
    public static final long PA_OFFSET = 0x1_0000_0000L;

    public final long base;
    public final long regionSize;
    public final int regions;
    private final Prot[] rights;
    private final boolean[] huge;
    private final AtomicIntegerArray generation;
    private final AtomicIntegerArray dirtyLog;
    private final AtomicLong seq = new AtomicLong();

    public Backing(long base, long regionSize, int regions, Random rnd) {
        if ((base & (regionSize - 1)) != 0) throw new IllegalArgumentException("base not aligned to the region size");
        this.base = base;
        this.regionSize = regionSize;
        this.regions = regions;
        this.rights = new Prot[regions];
        this.huge = new boolean[regions];
        this.generation = new AtomicIntegerArray(regions);
        this.dirtyLog = new AtomicIntegerArray(regions);
        Prot[] choices = {Prot.RWX, Prot.RWX, Prot.RW, Prot.RW, Prot.RX, Prot.R};
        for (int i = 0; i < regions; i++) {
            rights[i] = choices[rnd.nextInt(choices.length)];
            huge[i] = rnd.nextBoolean();
        }
        // At least two huge regions and two page-backed ones, whatever the seed.
        huge[0] = true;
        huge[1] = true;
        huge[regions - 1] = false;
        huge[regions - 2] = false;
        rights[0] = Prot.RWX;
        rights[regions - 1] = Prot.RWX;
    }

    /** Bytes of IPA space backed. */
    public long span() {
        return regionSize * regions;
    }

    public long end() {
        return base + span();
    }

    public boolean contains(long ipa) {
        return ipa >= base && ipa < end();
    }

    public int region(long ipa) {
        if (!contains(ipa)) throw new IllegalArgumentException("0x" + Long.toHexString(ipa) + " is not backed");
        return (int) ((ipa - base) / regionSize);
    }

    public long regionBase(int region) {
        return base + region * regionSize;
    }

    public Prot rights(long ipa) {
        return rights[region(ipa)];
    }

    public boolean huge(long ipa) {
        return huge[region(ipa)];
    }

    public boolean hugeRegion(int region) {
        return huge[region];
    }

    /** Whether dirty logging is on for the region of {@code ipa}: faults then map pages only (KVM's force_pte). */
    public boolean dirtyLogging(long ipa) {
        return dirtyLog.get(region(ipa)) != 0;
    }

    /**
     * Turns dirty logging of {@code region} on or off. Call with the table's MMU lock held for
     * writing; bumps the invalidation sequence, so a fault that chose its mapping size before
     * the change re-faults instead of installing a block in a dirty-logged region (KVM gets the
     * same from the memslot update waiting for SRCU readers).
     */
    public void setDirtyLogging(int region, boolean on) {
        dirtyLog.set(region, on ? 1 : 0);
        seq.incrementAndGet();
    }

    /** The mapping size a fault at {@code ipa} wants: the region's block if it is huge and not dirty-logged, else a page. */
    public long mappingSize(long ipa, long pageSize) {
        return huge(ipa) && !dirtyLogging(ipa) ? regionSize : pageSize;
    }

    public int generation(long ipa) {
        return generation.get(region(ipa));
    }

    /** The PA backing {@code ipa} in generation {@code gen} of its region. */
    public long pa(long ipa, int gen) {
        return ipa + PA_OFFSET + (long) (gen & 15) * span();
    }

    /** Whether the memslot allows {@code access} at {@code ipa} (anything else is the guest's error). */
    public boolean allows(long ipa, Access access) {
        Prot p = rights(ipa);
        switch (access) {
            case READ: return p.readable();
            case WRITE: return p.writable();
            default: return p.privExec();
        }
    }

    public long seq() {
        return seq.get();
    }

    /**
     * The backing of {@code region} changes (page migration). Call with the table's MMU lock
     * held for writing, after the region was unmapped (and its TLBIs completed).
     */
    public void migrate(int region) {
        generation.incrementAndGet(region);
        seq.incrementAndGet();
    }

    /** Whether {@code pa} is what {@code ipa} was backed by in one of the generations {@code [g1, g2]}. */
    public boolean paMatches(long ipa, long pa, int g1, int g2) {
        for (int g = g1; g <= g2; g++) {
            if (pa(ipa, g) == pa) return true;
        }
        return false;
    }
}
