package dev.ptlab.mm.device;

import dev.ptlab.core.Errno;
import dev.ptlab.core.InvariantViolation;
import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.Folio;
import dev.ptlab.mm.GupResult;
import dev.ptlab.mm.HostMemory;
import dev.ptlab.mm.HostPte;
import dev.ptlab.mm.Mman;
import dev.ptlab.mm.MmException;
import dev.ptlab.mm.Vma;
import dev.ptlab.mm.notify.IntervalSubscription;
import dev.ptlab.mm.notify.NotifierEvent;
import dev.ptlab.mm.notify.NotifierRange;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongConsumer;

/**
 * A simulated device that mirrors part of a host address space in its own page table, like the
 * kernel's test_hmm "dmirror" device, with nouveau's GPU-atomics protocol for device-exclusive
 * access (reference mm-exclusive-rcu.md A.6, A.13).
 *
 * <p>The device keeps a flat table of mirrored pages (page → PA | {@link #READ} / {@link #WRITE}
 * / {@link #ATOMIC}) under its mutex, and an interval subscription over the whole address space.
 * It maps a page only inside the interval sequence protocol: {@code readBegin}, resolve the page
 * through the mm (GUP or {@link AddressSpace#makeDeviceExclusive}) with no device lock held, take
 * the mutex, {@code readRetry}, map. Its invalidate callback takes the same mutex, so a mirror
 * entry seen under the mutex still names the page the host maps: device accesses read and write
 * the folio's contents under the mutex.
 *
 * <p>Lock order: the device never calls into the mm while holding its mutex (the mm calls the
 * invalidate callback, which takes the mutex, from operations that hold the mmap lock).
 *
 * <p>Thread-safe: several threads may drive one device.
 *
 * <p>Why one class of this size: every path (read, write, atomic add, conversion) runs the same
 * sequence protocol against the same mutex and invalidate callback, and the give-up rule (many
 * consecutive races lost to invalidations, never wall time alone) is shared by all of them;
 * splitting the paths apart would put the protocol's two halves in different files.
 */
public final class MirrorDevice implements AutoCloseable {
    /** Mirror entry bit: the device may read the page. */
    public static final long READ = 1;
    /** Mirror entry bit: the device may write the page. */
    public static final long WRITE = 1 << 1;
    /** Mirror entry bit: the page is device-exclusive to this device (atomics allowed; implies READ and WRITE). */
    public static final long ATOMIC = 1 << 2;
    private static final long PERMS = READ | WRITE | ATOMIC;

    /**
     * Consecutive attempts one device access or conversion may lose to invalidations before it
     * gives up with EBUSY. Counted in lost races, not time or tries: an attempt is lost only when
     * an invalidation starts inside it ({@code readBegin} first waits out one already in
     * progress, so a descheduled invalidating thread delays the device without costing it an
     * attempt), and a thread the scheduler stops mid-attempt loses at most that one attempt.
     * Ordinary traffic makes losses rare and independent: device-atomics with two devices and
     * vCPUs on one address space retries about 1 conversion in 15, so even a loss rate of 90%
     * gives 1000 losses in a row with probability 10^-46, while an attempt that can never
     * succeed (a livelock: an invalidation the device causes itself and fails on) loses 1000 in
     * a row within milliseconds.
     */
    static final int MAX_LOST_RACES = 1000;
    /**
     * The losing streak must also have lasted this long: nouveau's HMM_RANGE_DEFAULT_TIMEOUT
     * (1 s), so a burst of invalidations on a fast machine does not make the device give up
     * sooner than the driver would. Measured from the end of the streak's first lost attempt:
     * never the time of one attempt alone.
     */
    static final long TIMEOUT_NANOS = 1_000_000_000L;

    /** Things a device counts. */
    public enum Counter {
        /** A read found no mirror entry and faulted the page in through GUP. */
        READ_FAULT,
        /** A write found no writable mirror entry and faulted the page in through GUP with FOLL_WRITE. */
        WRITE_FAULT,
        /** An atomic found no atomic mapping and had to make the page exclusive (a device fault). */
        ATOMIC_FAULT,
        /** Pages this device made device-exclusive and mapped {@link #ATOMIC}. */
        CONVERSION,
        /** A conversion found an invalidation had raced with it (sequence check) and started again. */
        CONVERSION_RETRY,
        /** A GUP fault found an invalidation had raced with it and was dropped (the access looks again). */
        FAULT_RETRY,
        /** Atomic adds done. */
        ATOMIC_ADD,
        /** Ints read or written by {@link #read} / {@link #write}. */
        INT_ACCESS,
        /** EXCLUSIVE invalidations this device's own conversions caused, ignored (else it would livelock). */
        OWN_EXCLUSIVE_IGNORED,
        /**
         * This device's conversion found the page already device-exclusive and its GUP restored
         * it first: another device's entry (stealing the page) or this device's own (a conversion
         * redone after a lost race, or an entry whose mirror mapping an invalidation dropped).
         * The restore's CLEAR event, raised on the converting thread, did not fail the
         * conversion's own sequence check (so it is not in {@link #invalidations}).
         */
        CONVERSION_RESTORE,
        /** Mirror entries dropped by invalidations. */
        PAGE_INVALIDATED,
        /** {@link #ATOMIC} entries dropped by invalidations: atomic access revoked. */
        ATOMIC_REVOKED
    }

    private final AddressSpace mm;
    private final String name;
    private final HostMemory memory;
    private final int pageShift;
    private final long pageSize;
    /** Guards {@link #mirror} and orders mapping against invalidation (dmirror's mutex, nouveau's svmm->mutex). */
    private final ReentrantLock mutex = new ReentrantLock();
    private final MirrorTable mirror = new MirrorTable();
    private final IntervalSubscription subscription;
    private final AtomicLongArray counts = new AtomicLongArray(Counter.values().length);
    private final AtomicLongArray invalidations = new AtomicLongArray(NotifierEvent.values().length);
    private volatile boolean closed;
    /**
     * Test seam: run by the converting thread after a conversion is mapped, while it still holds
     * the folio lock (the window in which the kernel guarantees exclusivity), so tests can
     * interleave CPU faults, fork and reclaim with a driver that holds the lock.
     */
    volatile LongConsumer whileLocked;
    /** Per thread: the page it is converting for this device inside makeDeviceExclusive, or -1. */
    private final ThreadLocal<long[]> converting = ThreadLocal.withInitial(() -> new long[] {-1});

    /** A device access to one page's contents, run under the mutex while the mirror maps the page. */
    @FunctionalInterface
    private interface PageAccess {
        /** @param folio the folio holding the page; {@code offset} is the page's offset in it */
        void apply(Folio folio, long offset);
    }

    /**
     * Creates a device mirroring {@code mm} and subscribes it to invalidations of the whole
     * address space.
     */
    public MirrorDevice(AddressSpace mm, String name) {
        if (mm == null) throw new IllegalArgumentException("mm: null");
        if (name == null || name.isEmpty()) throw new IllegalArgumentException("name: \"" + name + "\" is empty");
        this.mm = mm;
        this.name = name;
        this.memory = mm.host().memory();
        this.pageShift = mm.host().granule().shift();
        this.pageSize = 1L << pageShift;
        long span = mm.geometry().iaLimit();
        this.subscription = mm.notifiers().insertInterval(0, span, this::invalidate);
    }

    public String name() { return name; }
    public AddressSpace mm() { return mm; }

    // ------------------------------------------------------------------------------------------
    // device accesses (dmirror's READ / WRITE ioctls)

    /**
     * Reads {@code nInts} ints from {@code addr} as the device: mirrored pages are read through
     * the mirror, others are faulted in through GUP first (without FOLL_WRITE).
     *
     * @throws MmException EFAULT if a page has no VMA or is not readable
     */
    public int[] read(long addr, int nInts) {
        checkInts(addr, nInts);
        int[] out = new int[nInts];
        forEachPageRun(addr, nInts, (page, first, count) ->
                accessPage(page, READ, (folio, offset) -> {
                    long off = offset + ((addr + 4L * first) & (pageSize - 1));
                    for (int i = 0; i < count; i++) out[first + i] = folio.readInt(off + 4L * i);
                }));
        counts.addAndGet(Counter.INT_ACCESS.ordinal(), nInts);
        return out;
    }

    /**
     * Writes {@code values} from {@code addr} as the device: pages without a writable mirror
     * entry are faulted in through GUP with FOLL_WRITE (breaking COW).
     *
     * @throws MmException EPERM if a VMA does not allow writing (as hmm_range_fault and the
     *     dmirror ioctl report it), EFAULT if a page has no VMA
     */
    public void write(long addr, int[] values) {
        if (values == null) throw new IllegalArgumentException("values: null");
        checkInts(addr, values.length);
        forEachPageRun(addr, values.length, (page, first, count) ->
                accessPage(page, WRITE, (folio, offset) -> {
                    long off = offset + ((addr + 4L * first) & (pageSize - 1));
                    for (int i = 0; i < count; i++) folio.writeInt(off + 4L * i, values[first + i]);
                }));
        counts.addAndGet(Counter.INT_ACCESS.ordinal(), values.length);
    }

    /**
     * A device atomic: adds {@code delta} to the int at {@code addr} and returns the previous
     * value. If the page is not mapped {@link #ATOMIC} this is a device fault: the page is made
     * device-exclusive first, which revokes any other device's exclusive access (its GUP restores
     * the other device's entry, reference A.3), and the add is done before the folio lock is
     * released, so the device makes progress even while a CPU keeps taking the page back.
     */
    public int atomicAdd(long addr, int delta) {
        checkInts(addr, 1);
        ensureOpen();
        long page = addr & -pageSize;
        long inPage = addr & (pageSize - 1);
        int[] old = new int[1];
        PageAccess add = (folio, offset) -> old[0] = folio.getAndAddInt(offset + inPage, delta);
        if (!tryMapped(page, ATOMIC, add)) {
            counts.incrementAndGet(Counter.ATOMIC_FAULT.ordinal());
            convertPage(page, add);
        }
        counts.incrementAndGet(Counter.ATOMIC_ADD.ordinal());
        return old[0];
    }

    /**
     * dmirror's EXCLUSIVE ioctl: makes {@code nPages} pages from {@code addr} device-exclusive
     * to this device and maps them {@link #ATOMIC}. Returns the number of pages converted.
     *
     * @throws MmException as {@link AddressSpace#makeDeviceExclusive} (EFAULT, EOPNOTSUPP), or
     *     EBUSY if a page kept being invalidated; pages converted before the failure stay converted
     */
    public int makeExclusive(long addr, long nPages) {
        checkPages(addr, nPages);
        ensureOpen();
        int n = 0;
        for (long i = 0; i < nPages; i++) {
            convertPage(addr + (i << pageShift), null);
            n++;
        }
        return n;
    }

    /**
     * dmirror's CHECK_EXCLUSIVE: whether any of {@code nPages} pages from {@code addr} is still
     * mapped {@link #ATOMIC} (false once every page's exclusive access was revoked).
     */
    public boolean checkExclusive(long addr, long nPages) {
        checkPages(addr, nPages);
        long first = addr >>> pageShift;
        mutex.lock();
        try {
            return mirror.anyInRange(first, first + nPages, ATOMIC);
        } finally {
            mutex.unlock();
        }
    }

    /** Whether the page containing {@code addr} is mapped {@link #ATOMIC} by this device. */
    public boolean hasAtomicAccess(long addr) {
        return (mirrorEntry(addr) & ATOMIC) != 0;
    }

    /**
     * The mirror entry of the page containing {@code addr}: its physical address | {@link #READ}
     * / {@link #WRITE} / {@link #ATOMIC}, or 0 if the device does not map it.
     */
    public long mirrorEntry(long addr) {
        if (addr < 0) throw new IllegalArgumentException("addr: 0x" + Long.toHexString(addr) + " is negative");
        mutex.lock();
        try {
            return mirror.get(addr >>> pageShift);
        } finally {
            mutex.unlock();
        }
    }

    /** Pages the device maps. */
    public int mirroredPages() {
        mutex.lock();
        try {
            return mirror.size();
        } finally {
            mutex.unlock();
        }
    }

    /** Pages the device maps {@link #ATOMIC}. */
    public int atomicPages() {
        mutex.lock();
        try {
            return mirror.count(ATOMIC);
        } finally {
            mutex.unlock();
        }
    }

    // ------------------------------------------------------------------------------------------
    // mapping

    /** A run of ints of one access that fall in one page. */
    @FunctionalInterface
    private interface PageRun {
        void apply(long page, int first, int count);
    }

    private void forEachPageRun(long addr, int nInts, PageRun run) {
        ensureOpen();
        int done = 0;
        while (done < nInts) {
            long a = addr + 4L * done;
            long page = a & -pageSize;
            int fit = (int) Math.min(nInts - done, (page + pageSize - a) >>> 2);
            run.apply(page, done, fit);
            done += fit;
        }
    }

    /**
     * Runs {@code access} on {@code page} once the mirror maps it with {@code need} (READ or
     * WRITE), faulting it in through GUP as often as invalidations take it away again.
     */
    private void accessPage(long page, long need, PageAccess access) {
        if (tryMapped(page, need, access)) return;
        LosingStreak lost = new LosingStreak();
        while (true) {
            lost.attempts++;
            faultIn(page, need == WRITE);
            if (tryMapped(page, need, access)) return;
            // The fault-in lost: an invalidation raced with it, or took the page away again.
            if (lost.lose()) throw busy(page, "a " + (need == WRITE ? "write" : "read") + " fault", lost);
        }
    }

    /** Runs {@code access} under the mutex if the mirror maps {@code page} with {@code need}; false if not. */
    private boolean tryMapped(long page, long need, PageAccess access) {
        mutex.lock();
        try {
            long e = mirror.get(page >>> pageShift);
            if ((e & need) == 0) return false;
            runOnPage(page, e & ~PERMS, access);
            return true;
        } finally {
            mutex.unlock();
        }
    }

    /** Called under the mutex with a mapped page: its folio is live because the host still maps it. */
    private void runOnPage(long page, long pa, PageAccess access) {
        Folio folio = memory.folioOf(pa);
        if (folio == null) {
            throw new InvariantViolation(name + ": mirror maps 0x" + Long.toHexString(page) + " to freed page 0x"
                    + Long.toHexString(pa) + " (an invalidation was missed)");
        }
        access.apply(folio, pa - folio.pa());
    }

    /**
     * The hmm_range_fault step of dmirror: resolves {@code page} through GUP and maps it READ
     * (and WRITE if the host entry is writable) unless an invalidation raced with the lookup, in
     * which case nothing is mapped and the caller looks again.
     */
    private void faultIn(long page, boolean write) {
        counts.incrementAndGet((write ? Counter.WRITE_FAULT : Counter.READ_FAULT).ordinal());
        if (write) {
            // hmm_range_fault refuses a write fault on a VMA without VM_WRITE with -EPERM before
            // faulting, which is what dmirror's write ioctl returns (exclusive_mprotect).
            Vma vma = mm.findVma(page);
            if (vma != null && !vma.writable()) {
                throw new MmException(Errno.EPERM, page, name + ": device write to " + vma + ", which is not writable");
            }
        }
        long seq = subscription.readBegin();
        GupResult gup = new GupResult();
        mm.getUserPage(page, write ? Mman.FOLL_WRITE : 0, gup);
        try {
            mutex.lock();
            try {
                if (subscription.readRetry(seq)) {
                    counts.incrementAndGet(Counter.FAULT_RETRY.ordinal());
                    return;
                }
                long key = page >>> pageShift;
                long old = mirror.get(key);
                // A conversion by another thread of this device sends only an EXCLUSIVE event
                // with our owner, which does not bump the sequence; it keeps the PA, so the page
                // we resolved is still right, but do not downgrade its ATOMIC mapping.
                if ((old & ATOMIC) != 0 && (old & ~PERMS) == gup.pa) return;
                mirror.put(key, gup.pa | READ | (gup.writable ? WRITE : 0));
            } finally {
                mutex.unlock();
            }
        } finally {
            gup.folio.put();
        }
    }

    /**
     * Makes {@code page} device-exclusive to this device and maps it ATOMIC; runs {@code access}
     * (if any) under the mutex right after mapping, while the folio lock still guarantees
     * exclusivity. nouveau's loop: readBegin, make_device_exclusive (folio locked, referenced),
     * mutex, readRetry; on a lost race unlock and put the folio and start again (the 2025 fix:
     * keeping the lock across the retry would self-deadlock in the next conversion).
     */
    private void convertPage(long page, PageAccess access) {
        long key = page >>> pageShift;
        long[] mine = converting.get();
        LosingStreak lost = new LosingStreak();
        while (true) {
            lost.attempts++;
            long seq = subscription.readBegin();
            Folio folio;
            mine[0] = page;
            try {
                folio = mm.makeDeviceExclusive(page, this);
            } finally {
                mine[0] = -1;
            }
            boolean mapped = false;
            try {
                // FOLL_SPLIT_PMD made it an order-0 folio; the page's PA is the folio's.
                long pa = folio.pa();
                mutex.lock();
                try {
                    if (!subscription.readRetry(seq)) {
                        mirror.put(key, pa | READ | WRITE | ATOMIC);
                        counts.incrementAndGet(Counter.CONVERSION.ordinal());
                        if (access != null) runOnPage(page, pa, access);
                        mapped = true;
                    }
                } finally {
                    mutex.unlock();
                }
                LongConsumer hook = whileLocked;
                if (mapped && hook != null) hook.accept(page);
            } finally {
                folio.unlock();
                folio.put();
            }
            if (mapped) return;
            counts.incrementAndGet(Counter.CONVERSION_RETRY.ordinal());
            if (lost.lose()) throw busy(page, "a conversion", lost);
        }
    }

    // ------------------------------------------------------------------------------------------
    // invalidation

    /**
     * The interval invalidator: drops the mirror entries of the range and bumps the
     * subscription's sequence, so a mapping racing with it is not installed. Two events caused
     * by this device's own conversion leave the sequence alone (else every conversion would fail
     * its own check and livelock, reference A.6), both because the page keeps its PA:
     * <ul>
     * <li>the EXCLUSIVE event with this device as owner (nouveau's filter; since 6.15 EXCLUSIVE
     *     means a conversion and nothing else);
     * <li>the restore the conversion's own GUP makes when the page is already device-exclusive
     *     (another device's, when stealing it, or an old one of this device's whose mirror entry
     *     was lost): since 6.15 a CLEAR with no owner over the one page. Notifier callbacks run
     *     on the thread that invalidates, so it is recognised as a one-page CLEAR this thread
     *     raised for the page it is converting while the host entry there is still
     *     device-exclusive (invalidate_range_start comes before the entry changes). That last
     *     test keeps out the one other one-page CLEAR the conversion's GUP can raise, a COW
     *     break, which replaces the page and must fail the check. nouveau has no such filter:
     *     its retry would restore its own new entry, fail again, and loop until its timeout. A
     *     CPU restore runs on another thread and still bumps the sequence.
     * </ul>
     */
    private boolean invalidate(IntervalSubscription sub, NotifierRange range, long currentSeq) {
        if (range.event() == NotifierEvent.EXCLUSIVE && range.owner() == this) {
            counts.incrementAndGet(Counter.OWN_EXCLUSIVE_IGNORED.ordinal());
            return true;
        }
        boolean ownRestore = range.event() == NotifierEvent.CLEAR && range.owner() == null
                && converting.get()[0] == range.start() && range.end() - range.start() == pageSize
                && HostPte.isDeviceExclusive(mm.pte(range.start()));
        if (ownRestore) counts.incrementAndGet(Counter.CONVERSION_RESTORE.ordinal());
        else invalidations.incrementAndGet(range.event().ordinal());
        long r;
        mutex.lock();
        try {
            if (!ownRestore) sub.setSeq(currentSeq);
            long first = range.start() >>> pageShift;
            long end = (range.end() + pageSize - 1) >>> pageShift;
            r = mirror.removeRange(first, end, ATOMIC);
        } finally {
            mutex.unlock();
        }
        counts.addAndGet(Counter.PAGE_INVALIDATED.ordinal(), MirrorTable.removed(r));
        counts.addAndGet(Counter.ATOMIC_REVOKED.ordinal(), MirrorTable.flagged(r));
        return true;
    }

    // ------------------------------------------------------------------------------------------
    // counters, lifetime

    public long count(Counter c) {
        return counts.get(c.ordinal());
    }

    /** Non-zero counters. */
    public Map<Counter, Long> counts() {
        return nonZero(Counter.class, counts);
    }

    /** Invalidation callbacks this device acted on for {@code event} (its own conversions' events not included). */
    public long invalidations(NotifierEvent event) {
        return invalidations.get(event.ordinal());
    }

    /** Invalidations acted on, by event (events never seen are left out). */
    public Map<NotifierEvent, Long> invalidationCounts() {
        return nonZero(NotifierEvent.class, invalidations);
    }

    private static <E extends Enum<E>> Map<E, Long> nonZero(Class<E> type, AtomicLongArray values) {
        Map<E, Long> m = new EnumMap<>(type);
        for (E e : type.getEnumConstants()) {
            long v = values.get(e.ordinal());
            if (v != 0) m.put(e, v);
        }
        return m;
    }

    /** Removes the subscription (waiting out an invalidation in progress) and drops the mirror. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        subscription.remove();
        mutex.lock();
        try {
            mirror.clear();
        } finally {
            mutex.unlock();
        }
    }

    public boolean closed() {
        return closed;
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("device " + name + ": closed");
    }

    /**
     * The attempts of one access or conversion and its current run of attempts lost to
     * invalidations (one per access: the device may be driven by several threads).
     */
    private static final class LosingStreak {
        int attempts;
        int lost;
        long since;

        /** Counts a lost attempt; true when the device should give up ({@link #MAX_LOST_RACES}, {@link #TIMEOUT_NANOS}). */
        boolean lose() {
            if (lost++ == 0) since = System.nanoTime();
            return lost >= MAX_LOST_RACES && System.nanoTime() - since >= TIMEOUT_NANOS;
        }
    }

    private MmException busy(long page, String what, LosingStreak lost) {
        return new MmException(Errno.EBUSY, page, name + ": " + what + " lost " + lost.lost + " races in a row to invalidations over "
                + (System.nanoTime() - lost.since) / 1_000_000 + " ms (" + lost.attempts + " tries)");
    }

    private static void checkInts(long addr, int nInts) {
        if (addr < 0 || (addr & 3) != 0) throw new IllegalArgumentException("addr: 0x" + Long.toHexString(addr) + " is not a 4-aligned address");
        if (nInts < 0) throw new IllegalArgumentException("nInts: " + nInts + " is negative");
    }

    private void checkPages(long addr, long nPages) {
        if (addr < 0 || (addr & (pageSize - 1)) != 0) {
            throw new IllegalArgumentException("addr: 0x" + Long.toHexString(addr) + " is not aligned to the page size 0x" + Long.toHexString(pageSize));
        }
        if (nPages <= 0) throw new IllegalArgumentException("nPages: " + nPages + " is not positive");
    }

    @Override
    public String toString() {
        return "device " + name;
    }
}
