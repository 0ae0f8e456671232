package dev.ptlab.cli.scenario;

import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.table.TableCounters;

/**
 * The table, TLBI and cache-maintenance counters at one moment. A command takes one before it
 * runs its operation and prints the differences after: {@code Counts before = new
 * Counts(m); ...; before.tablesInstalled()}.
 */
final class Counts {
    private final Machine m;
    private final long bbm;
    private final long leavesInstalled;
    private final long leavesRemoved;
    private final long tablesInstalled;
    private final long tablesFreed;
    private final long coalesced;
    private final long windowSteps;
    private final long splits;
    private final long attrUpdates;
    private final long tlbis;
    private final long localTlbis;
    private final long[] tlbiKinds;
    private final long dcacheOps;
    private final long dcacheBytes;
    private final long icacheOps;

    Counts(Machine m) {
        this.m = m;
        TableCounters c = m.table().counters();
        bbm = c.breakBeforeMake();
        leavesInstalled = c.leavesInstalled();
        leavesRemoved = c.leavesRemoved();
        tablesInstalled = c.tablesInstalled();
        tablesFreed = c.tablesFreed();
        coalesced = c.coalesced();
        windowSteps = c.invalidWindowSteps();
        splits = c.splits();
        attrUpdates = c.attrUpdates();
        TlbSystem t = m.tlbs();
        tlbis = t.totalFlushes();
        localTlbis = t.localIpaFlushes();
        tlbiKinds = m.tlbiKinds();
        CacheMaintenance cmo = m.memory().cacheMaintenance();
        dcacheOps = cmo.dcacheOps();
        dcacheBytes = cmo.dcacheBytes();
        icacheOps = cmo.icacheOps();
    }

    private TableCounters now() {
        return m.table().counters();
    }

    long bbm() { return now().breakBeforeMake() - bbm; }
    long leavesInstalled() { return now().leavesInstalled() - leavesInstalled; }
    long leavesRemoved() { return now().leavesRemoved() - leavesRemoved; }
    long tablesInstalled() { return now().tablesInstalled() - tablesInstalled; }
    long tablesFreed() { return now().tablesFreed() - tablesFreed; }
    long coalesced() { return now().coalesced() - coalesced; }
    long invalidWindowSteps() { return now().invalidWindowSteps() - windowSteps; }
    long splits() { return now().splits() - splits; }
    long attrUpdates() { return now().attrUpdates() - attrUpdates; }
    long tlbis() { return m.tlbs().totalFlushes() - tlbis; }
    long localTlbis() { return m.tlbs().localIpaFlushes() - localTlbis; }
    long dcacheOps() { return m.memory().cacheMaintenance().dcacheOps() - dcacheOps; }
    long dcacheBytes() { return m.memory().cacheMaintenance().dcacheBytes() - dcacheBytes; }
    long icacheOps() { return m.memory().cacheMaintenance().icacheOps() - icacheOps; }

    /** "2 TLBIs". */
    String tlbiCount() {
        return Machine.plural(tlbis(), "TLBI", "TLBIs");
    }

    /** "1 range TLBI", "3 TLBIs (2 by IPA, 1 range)": the TLBIs since, by kind. */
    String tlbisByKind() {
        return m.tlbisSince(tlbis, tlbiKinds);
    }

    /** "installed 2 tables". */
    String installedTables() {
        return "installed " + Machine.plural(tablesInstalled(), "table", "tables");
    }

    /** "1 BBM, 2 TLBIs". */
    String bbmAndTlbis() {
        return bbm() + " BBM, " + tlbiCount();
    }

    /** "3 leaves" whose attributes changed. */
    String attrUpdatedLeaves() {
        return Machine.plural(attrUpdates(), "leaf", "leaves");
    }
}
