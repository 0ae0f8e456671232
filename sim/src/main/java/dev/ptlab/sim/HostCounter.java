package dev.ptlab.sim;

import dev.ptlab.mm.AddressSpace;
import dev.ptlab.mm.MmEvent;
import dev.ptlab.mm.notify.NotifierEvent;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * The host side of a phase report (zero with fixed host memory): MMU-notifier invalidations the
 * VM received by {@link NotifierEvent} ({@code notifier-unmap}, {@code notifier-clear}, ...),
 * stage-2 leaves they removed, aging calls that found stage-2 young, and the {@link MmEvent}
 * counts of the memslots' address spaces ({@code host-fault}, {@code host-anon-page}, ...). A
 * registry rather than an enum because most entries follow the mm's own enums: a new
 * {@link MmEvent} or {@link NotifierEvent} is reported with nothing to add here.
 */
public final class HostCounter implements PhaseCounter {
    /** Every host-side counter, in report order. */
    public static final List<HostCounter> ALL = all();
    /** Stage-2 leaves (pages and blocks) the notifiers' invalidations removed. */
    public static final HostCounter STAGE2_UNMAPPED = byKey("notifier-stage2-unmapped");

    private final Entry entry;
    private final ToLongFunction<Vm> read;
    /** Position in {@link #ALL}, where a phase report keeps its value. */
    final int index;

    private HostCounter(List<HostCounter> all, String key, boolean compared, ToLongFunction<Vm> read) {
        this.entry = new Entry(key, Text.NON_ZERO, compared);
        this.read = read;
        this.index = all.size();
        all.add(this);
    }

    private static List<HostCounter> all() {
        List<HostCounter> l = new ArrayList<>();
        for (NotifierEvent e : NotifierEvent.values()) new HostCounter(l, notifierKey(e), false, vm -> vm.notifierInvalidations(e));
        new HostCounter(l, "notifier-stage2-unmapped", true, Vm::notifierUnmappedLeaves);
        new HostCounter(l, "notifier-young", false, Vm::notifierYoung);
        for (MmEvent e : MmEvent.values()) new HostCounter(l, hostKey(e), e == MmEvent.FAULT, vm -> sum(vm, e));
        return Collections.unmodifiableList(l);
    }

    private static String notifierKey(NotifierEvent e) {
        return "notifier-" + PhaseCounter.keyOf(e);
    }

    private static String hostKey(MmEvent e) {
        return "host-" + PhaseCounter.keyOf(e);
    }

    private static long sum(Vm vm, MmEvent e) {
        long n = 0;
        for (AddressSpace a : vm.addressSpaces()) n += a.stats().count(e);
        return n;
    }

    /** The counter of notifier invalidations of {@code event}. */
    public static HostCounter notifier(NotifierEvent event) {
        return byKey(notifierKey(event));
    }

    /** The counter of the address spaces' {@code event}. */
    public static HostCounter host(MmEvent event) {
        return byKey(hostKey(event));
    }

    /** The counter named {@code key} ({@code notifier-stage2-unmapped}, ...). */
    public static HostCounter byKey(String key) {
        for (HostCounter c : ALL) if (c.key().equals(key)) return c;
        throw new IllegalArgumentException("host counter: " + key + " is not one of " + ALL);
    }

    @Override
    public Entry entry() { return entry; }

    long read(Vm vm) {
        return read.applyAsLong(vm);
    }

    @Override
    public long valueIn(PhaseReport phase) {
        return phase.get(this);
    }

    @Override
    public String toString() {
        return key();
    }
}
