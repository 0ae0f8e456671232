package dev.ptlab.core.conc;

import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.table.MmuLock;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.locks.LockSupport;

/**
 * One virtual CPU of a guest running on a {@link Stage2PageTable}: its own {@link Tlb}
 * (registered with the shared {@link TlbSystem}), its own {@link Mmu} on the table's root with
 * the table's VMID, and its own {@link MemCache}, topped up before each fault as the kernel
 * does. Not thread-safe: one thread drives one vCPU.
 *
 * <p>{@link #access} translates and, on a fault, handles it like KVM's {@code user_mem_abort}
 * (mm-exclusive-rcu.md §B.8), then re-executes the access:
 * <ul>
 *   <li>translation fault: map the page, or the whole block when the backing region is huge and
 *       not dirty-logged, with {@code SHARED | HANDLE_FAULT}; the mapping size and PA are chosen
 *       before the MMU lock is taken and the invalidation sequence re-checked under it (a changed
 *       sequence: re-fault);</li>
 *   <li>permission fault: if the fault granule is not the mapping size the backing wants (a
 *       page of a split huge region; a block of a dirty-logged one) map, which coalesces the
 *       table or shrinks the block; otherwise {@code relaxPerms(SHARED | HANDLE_FAULT)} with
 *       every right the backing allows (never fewer than the entry has, so relaxing never takes
 *       a right away);</li>
 *   <li>access-flag fault: {@code mkyoung(SHARED | HANDLE_FAULT)};</li>
 *   <li>RACED (or NOT_MAPPED): nothing, the access re-faults.</li>
 * </ul>
 * Like KVM, a translation fault maps read access, write access only for a write fault (or on a
 * coin toss, as a host page that is already writable would be), and execute only for an exec
 * fault, so permission faults and relaxPerms happen.
 *
 * <p>Every successful translation is checked against the {@link Backing}: the PA must be the
 * backing's PA of the IPA (in a generation current at some point during the translation) and
 * the access must be one the backing allows. Anything else is recorded as a violation.
 */
public final class Vcpu {
    public static final int FAULT_FLAGS = WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
    /** Faults one access may take before it counts as a livelock (if it also took {@link #LIVELOCK_NANOS}). */
    public static final int MAX_FAULTS_PER_ACCESS = 10_000;
    /** How long one access may keep faulting before it counts as a livelock. */
    public static final long LIVELOCK_NANOS = 3_000_000_000L;
    /** Re-faults of one access after which the vCPU yields between attempts. */
    static final int BACKOFF_AFTER = 64;

    public enum Outcome { OK, GUEST_ERROR, ABANDONED }

    public final int id;
    public final Stage2PageTable table;
    public final Tlb tlb;
    public final Mmu mmu;
    public final MemCache cache;
    public final Backing backing;
    private final Random rnd;
    private final long pageSize;
    private final int cacheFrames;

    // Statistics, owned by the vCPU's thread (read after it parked or ended).
    public long accesses, translationFaults, permissionFaults, accessFlagFaults;
    public long maps, blockMaps, relaxes, mkyoungs;
    public long raced, notMapped, seqRetries, refaults, guestErrors, maxFaultsInOneAccess;
    private Status lastStatus;
    /** Set by the driver to make an access that is backing off give up (the run is over). */
    public volatile boolean abandon;
    private final List<String> violations = Collections.synchronizedList(new ArrayList<>());

    public Vcpu(int id, Stage2PageTable table, TlbSystem tlbs, Backing backing, long seed) {
        this(id, table, tlbs, backing, seed, false);
    }

    /** @param hardwareAf the MMU sets access flags itself (VTCR_EL2.HA) instead of raising access-flag faults */
    public Vcpu(int id, Stage2PageTable table, TlbSystem tlbs, Backing backing, long seed, boolean hardwareAf) {
        this.id = id;
        this.table = table;
        this.backing = backing;
        this.tlb = new Tlb("vcpu" + id, table.geometry().granule());
        // Strict: no eviction, so an entry a protocol failed to invalidate stays to be found.
        tlb.setStrict(true);
        tlbs.register(tlb);
        this.mmu = new Mmu(table.geometry(), table.memory(), tlb, table.rootPa(), table.vmid(), table.fwb(), hardwareAf);
        this.cache = new MemCache(table.memory());
        this.rnd = new Random(seed);
        this.pageSize = table.geometry().granule().pageSize();
        // One table per level below the root, and one spare.
        this.cacheFrames = table.geometry().levels();
    }

    /** Violations seen so far (wrong PA, or an access the backing forbids that succeeded). */
    public List<String> violations() {
        synchronized (violations) {
            return new ArrayList<>(violations);
        }
    }

    /**
     * Performs one guest access: translate, handle faults, retry until it succeeds or is a guest
     * error (the backing forbids it).
     *
     * @throws AssertionError if it needs more than {@link #MAX_FAULTS_PER_ACCESS} faults and
     *     {@link #LIVELOCK_NANOS} (livelock), or the MMU reports an address-size fault
     */
    public Outcome access(long ipa, Access access) {
        accesses++;
        long started = 0;
        for (int faults = 0; ; faults++) {
            if (faults > 0) {
                refaults++;
                if (faults > maxFaultsInOneAccess) maxFaultsInOneAccess = faults;
                if (faults >= BACKOFF_AFTER) {
                    if (abandon) return Outcome.ABANDONED;
                    backoff(ipa, access, faults, started);
                }
                if (faults == BACKOFF_AFTER) started = System.nanoTime();
            }
            int g1 = backing.generation(ipa);
            long r = mmu.translate(ipa, access);
            if (!Translation.isFault(r)) {
                int g2 = backing.generation(ipa);
                check(ipa, access, r, g1, g2);
                return Outcome.OK;
            }
            if (!backing.allows(ipa, access)) {
                guestErrors++;
                return Outcome.GUEST_ERROR;
            }
            lastStatus = handleFault(ipa, access, r);
        }
    }

    /**
     * After many faults for one access, yields (and then sleeps briefly) between re-faults. A
     * thread that holds an entry LOCKED can be descheduled here, unlike in the kernel, where the
     * MMU lock's read side disables preemption; a JVM thread spinning on its entry would only
     * steal its CPU. Fails once the access has been stuck for {@link #LIVELOCK_NANOS}.
     */
    private void backoff(long ipa, Access access, int faults, long started) {
        if (faults > MAX_FAULTS_PER_ACCESS && started != 0 && System.nanoTime() - started > LIVELOCK_NANOS) {
            dev.ptlab.core.table.Leaf leaf = table.getLeaf(ipa);
            throw new AssertionError(tlb.name() + ": livelock: " + faults + " faults in "
                    + (System.nanoTime() - started) / 1_000_000 + " ms for one " + access + " of 0x" + Long.toHexString(ipa)
                    + " (last fault: " + describe(mmu.translate(ipa, access)) + ", last handler status " + lastStatus
                    + ", table entry level " + leaf.level() + " 0x" + Long.toHexString(leaf.pte()) + ")");
        }
        if (faults < BACKOFF_AFTER * 4) Thread.yield(); else LockSupport.parkNanos(20_000);
    }

    private void check(long ipa, Access access, long pa, int g1, int g2) {
        if (!backing.paMatches(ipa, pa, g1, g2)) {
            violation("wrong translation: " + access + " of 0x" + Long.toHexString(ipa) + " gave PA 0x" + Long.toHexString(pa)
                    + ", backing has 0x" + Long.toHexString(backing.pa(ipa, g2)) + " (generations " + g1 + ".." + g2
                    + ", level " + mmu.lastLevel() + ", pte 0x" + Long.toHexString(mmu.lastPte()) + ", tlb hit " + mmu.lastTlbHit() + ")");
        }
        if (!backing.allows(ipa, access)) {
            violation("forbidden access succeeded: " + access + " of 0x" + Long.toHexString(ipa) + " (backing allows "
                    + backing.rights(ipa) + ", pte 0x" + Long.toHexString(mmu.lastPte()) + ", tlb hit " + mmu.lastTlbHit() + ")");
        }
    }

    private void violation(String what) {
        if (violations.size() < 100) violations.add(tlb.name() + ": " + what);
    }

    private Status handleFault(long ipa, Access access, long r) {
        FaultType type = Translation.faultType(r);
        int level = Translation.faultLevel(r);
        Status s;
        switch (type) {
            case TRANSLATION:
                translationFaults++;
                s = map(ipa, access);
                break;
            case PERMISSION:
                permissionFaults++;
                if (table.geometry().granule().levelSize(level) != backing.mappingSize(ipa, pageSize)) {
                    // KVM maps (not relaxes) when the fault granule is not the size it wants: a page
                    // of a split huge region is mapped as the block again (the table is coalesced),
                    // a block in a dirty-logged region is shrunk to a table with this page in it.
                    s = map(ipa, access);
                } else {
                    relaxes++;
                    s = table.relaxPerms(ipa, backing.rights(ipa), FAULT_FLAGS, tlb);
                }
                break;
            case ACCESS_FLAG:
                accessFlagFaults++;
                mkyoungs++;
                s = table.mkyoung(ipa, FAULT_FLAGS);
                break;
            default:
                throw new AssertionError(tlb.name() + ": " + describe(r) + " for " + access + " of 0x" + Long.toHexString(ipa));
        }
        if (s == Status.RACED) raced++;
        else if (s == Status.NOT_MAPPED) notMapped++;
        return s;
    }

    /** The map a fault does: page or block, rights as KVM chooses them, under the invalidation-sequence check. */
    private Status map(long ipa, Access access) {
        long seq = backing.seq();
        long size = backing.mappingSize(ipa, pageSize);
        boolean block = size > pageSize;
        long at = ipa & -size;
        long pa = backing.pa(at, backing.generation(at));
        Prot allowed = backing.rights(ipa);
        long bits = Prot.R_BIT;
        if (allowed.writable() && (access == Access.WRITE || rnd.nextBoolean())) bits |= Prot.W_BIT;
        if (access == Access.EXEC) bits |= Prot.X_BITS;
        cache.topUp(cacheFrames);
        MmuLock lock = table.mmuLock();
        lock.readLock();
        try {
            if (backing.seq() != seq) {
                // An invalidation ran since the PA was resolved: it may be stale. Re-fault.
                seqRetries++;
                return Status.RACED;
            }
            Status s = table.map(at, size, pa, Prot.of(bits), cache, FAULT_FLAGS);
            maps++;
            if (block) blockMaps++;
            return s;
        } finally {
            lock.readUnlock();
        }
    }

    /** Every statistic, for reports. */
    public String stats() {
        return String.format("%s: accesses=%d faults(translation=%d permission=%d af=%d) maps=%d (block=%d) relax=%d mkyoung=%d"
                        + " raced=%d notMapped=%d seqRetries=%d refaults=%d maxFaults/access=%d guestErrors=%d",
                tlb.name(), accesses, translationFaults, permissionFaults, accessFlagFaults, maps, blockMaps, relaxes, mkyoungs,
                raced, notMapped, seqRetries, refaults, maxFaultsInOneAccess, guestErrors);
    }

    static String describe(long r) {
        return Translation.isFault(r) ? Translation.faultType(r) + "@L" + Translation.faultLevel(r) : "pa 0x" + Long.toHexString(r);
    }
}
