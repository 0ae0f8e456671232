package dev.ptlab.core.check;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.arch.Stage2Descriptor;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.NestedMmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.ArrayList;
import java.util.List;

/**
 * Checks, at a quiescent point, that no TLB entry grants an access the table denies: a
 * <em>stale grant</em>. Every cached entry of the table's VMID is compared with every leaf the
 * table now has inside the entry's span; the entry is stale if, for some page of it, the table
 * has no valid leaf, a different output address, or withholds a right (read, write, execute) the
 * entry gives.
 *
 * <p>Not stale: an entry more restrictive than the table (the CPU faults and the fault handler
 * finds nothing to do, or a local TLBI after relaxPerms fixes it), and an entry whose only
 * difference is the access flag (a cleared AF need not be invalidated; the page just stays
 * "young" to that CPU) or software bits. Memory attributes are not rights and are not compared.
 *
 * <p>Walk-cache entries ({@link #staleWalkEntries}) are held to a stricter rule: a cached table
 * descriptor must still be the table descriptor at its level (same next-table address). A walk
 * starting from one that is not would read a table the translation no longer goes through, or a
 * freed frame; only an any-level TLBI removes it, never a last-level one.
 *
 * <p>"Quiescent" means no operation is between a table change and the TLBI the protocol
 * requires after it (wrprotect is followed by its caller's range TLBI, for example) and no MMU
 * is filling. Call it with the vCPUs parked and the writer done.
 */
public final class TlbChecker {
    private TlbChecker() {}

    /** One stale grant: what the TLB holds and what the table says for one page of it. */
    public static final class StaleGrant {
        public final String tlb;
        public final long address;
        public final int tlbLevel;
        public final long tlbPte;
        public final int tableLevel;
        public final long tablePte;
        public final String reason;

        StaleGrant(String tlb, long address, int tlbLevel, long tlbPte, int tableLevel, long tablePte, String reason) {
            this.tlb = tlb;
            this.address = address;
            this.tlbLevel = tlbLevel;
            this.tlbPte = tlbPte;
            this.tableLevel = tableLevel;
            this.tablePte = tablePte;
            this.reason = reason;
        }

        @Override
        public String toString() {
            return "stale grant in " + tlb + " at 0x" + Long.toHexString(address) + ": TLB has level-" + tlbLevel + " 0x"
                    + Long.toHexString(tlbPte) + ", table has level-" + tableLevel + " 0x" + Long.toHexString(tablePte) + " (" + reason
                    + "); removed by TLBI IPAS2E1IS or IPAS2LE1IS of 0x" + Long.toHexString(address)
                    + " with no TTL hint or TTL level " + tlbLevel + ", a range TLBI over it with TTL 0 or " + tlbLevel
                    + ", or VMALLS12E1IS";
        }
    }

    /** One walk-cache entry that no longer matches the table: the cached table descriptor and what is there now. */
    public static final class StaleWalk {
        public final String tlb;
        public final int vmid;
        /** First address the entry covers. */
        public final long address;
        public final int level;
        public final long cachedPte;
        /** Level of the entry the table now has on the path (the cached level, or above it). */
        public final int tableLevel;
        public final long tablePte;

        StaleWalk(String tlb, int vmid, long address, int level, long cachedPte, int tableLevel, long tablePte) {
            this.tlb = tlb;
            this.vmid = vmid;
            this.address = address;
            this.level = level;
            this.cachedPte = cachedPte;
            this.tableLevel = tableLevel;
            this.tablePte = tablePte;
        }

        @Override
        public String toString() {
            String now = tableLevel == level ? "level-" + level + " entry 0x" + Long.toHexString(tablePte)
                    : "level-" + tableLevel + " entry 0x" + Long.toHexString(tablePte) + " above it (no level-" + level + " table)";
            return "stale walk-cache entry in " + tlb + " (vmid " + vmid + ") at 0x" + Long.toHexString(address) + " level " + level
                    + ": cached table descriptor 0x" + Long.toHexString(cachedPte) + ", the table now has a " + now
                    + "; removed by TLBI IPAS2E1IS of an address in it with no TTL hint (or a hint below level " + level
                    + "), RIPAS2E1IS over it with TTL 0, or VMALLS12E1IS - not by IPAS2LE1IS/RIPAS2LE1IS or a TTL hint of level "
                    + level + " or deeper";
        }
    }

    /**
     * Every walk-cache entry of {@code vmid} in {@code tlb} whose table descriptor is no longer
     * the table's entry at that level for the address (a different next table, a leaf, or
     * nothing). Same quiescence as {@link #staleGrants}.
     */
    public static List<StaleWalk> staleWalkEntries(PageTable table, Tlb tlb, int vmid) {
        Geometry g = table.geometry();
        List<long[]> cached = new ArrayList<>();
        tlb.forEachWalkEntry((v, level, base, pte, gen) -> {
            if (v == vmid) cached.add(new long[] {level, base, pte});
        });
        List<StaleWalk> found = new ArrayList<>();
        int flags = WalkFlags.LEAF | WalkFlags.TABLE_PRE | (g.stage() == Stage.STAGE2 ? WalkFlags.SHARED : 0);
        for (long[] e : cached) {
            int level = (int) e[0];
            long base = e[1];
            long pte = e[2];
            long[] deepest = {Integer.MIN_VALUE, 0}; // level and value of the deepest entry at or above `level`
            if (base >= 0 && base < g.iaLimit()) {
                table.walk(base, 1, (ctx, visit) -> {
                    if (ctx.level() <= level && ctx.level() > deepest[0]) {
                        deepest[0] = ctx.level();
                        deepest[1] = ctx.old();
                    }
                    return Status.OK;
                }, flags, WalkPolicy.RANGE);
            }
            int nowLevel = (int) deepest[0];
            long now = deepest[1];
            boolean same = nowLevel == level && Pte.isTable(now, level) && g.outputAddress(now) == g.outputAddress(pte);
            if (!same) found.add(new StaleWalk(tlb.name(), vmid, base, level, pte, nowLevel == Integer.MIN_VALUE ? -1 : nowLevel, now));
        }
        return found;
    }

    /**
     * Every stale grant {@code tlb} holds for {@code table} (entries of VMID {@code vmid}). Walks
     * the table under its MMU lock (read), one shared walk per cached entry.
     */
    public static List<StaleGrant> staleGrants(PageTable table, Tlb tlb, int vmid) {
        Geometry g = table.geometry();
        boolean stage2 = g.stage() == Stage.STAGE2;
        List<StaleGrant> found = new ArrayList<>();
        List<long[]> cached = new ArrayList<>();
        tlb.forEachEntry((v, level, base, pte) -> {
            if (v == vmid) cached.add(new long[] {level, base, pte});
        });
        long limit = g.iaLimit();
        for (long[] e : cached) {
            int level = (int) e[0];
            long base = e[1];
            long pte = e[2];
            long span = g.granule().levelSize(level);
            if (base < 0 || base >= limit) {
                found.add(new StaleGrant(tlb.name(), base, level, pte, -1, 0, "cached address outside the input-address space"));
                continue;
            }
            long oa = g.outputAddress(pte);
            int walkFlags = WalkFlags.LEAF | (stage2 ? WalkFlags.SHARED : 0);
            table.walk(base, Math.min(span, limit - base), (ctx, visit) -> {
                long t = ctx.old();
                long page = ctx.entryBase();
                long at = Math.max(page, base);
                String why = compare(g, stage2, pte, oa + (at - base), t, at - page);
                if (why != null) found.add(new StaleGrant(tlb.name(), at, level, pte, ctx.level(), t, why));
                return Status.OK;
            }, walkFlags, WalkPolicy.RANGE);
        }
        return found;
    }

    /** Null if {@code tlbPte} (translating to {@code expectedOa} here) grants nothing {@code tablePte} denies. */
    private static String compare(Geometry g, boolean stage2, long tlbPte, long expectedOa, long tablePte, long offsetInLeaf) {
        boolean r = stage2 ? Stage2Descriptor.readable(tlbPte) : true;
        boolean w = stage2 ? Stage2Descriptor.writable(tlbPte) : HypDescriptor.writable(tlbPte);
        boolean x = stage2 ? Stage2Descriptor.privExecutable(tlbPte) : HypDescriptor.executable(tlbPte);
        if (!r && !w && !x) return null;
        if (!Pte.isValid(tablePte)) return "the table has no valid leaf here";
        long oa = g.outputAddress(tablePte) + offsetInLeaf;
        if (oa != expectedOa) {
            return "output address 0x" + Long.toHexString(expectedOa) + " cached, 0x" + Long.toHexString(oa) + " in the table";
        }
        boolean tr = stage2 ? Stage2Descriptor.readable(tablePte) : true;
        boolean tw = stage2 ? Stage2Descriptor.writable(tablePte) : HypDescriptor.writable(tablePte);
        boolean tx = stage2 ? Stage2Descriptor.privExecutable(tablePte) : HypDescriptor.executable(tablePte);
        StringBuilder denied = new StringBuilder();
        if (r && !tr) denied.append("read ");
        if (w && !tw) denied.append("write ");
        if (x && !tx) denied.append("exec ");
        return denied.length() == 0 ? null : "the TLB grants " + denied.toString().trim() + ", the table denies it";
    }

    /**
     * One combined (VA→PA) entry that grants what the two stages now deny, or another PA:
     * {@code asid} -1 for a global entry; {@code now} says what the tables give instead.
     */
    public record StaleCombined(String tlb, int vmid, int asid, long va, int level, long cachedPa, String now) {
        @Override
        public String toString() {
            return "stale combined entry in " + tlb + " (vmid " + vmid + ", " + (asid < 0 ? "global" : "asid " + asid) + ") at VA 0x"
                    + Long.toHexString(va) + " level " + level + ": cached PA 0x" + Long.toHexString(cachedPa) + ", the tables now give "
                    + now + "; removed by TLBI VMALLE1IS (or VAE1IS of the VA, or VMALLS12E1IS) after the stage-2 TLBI has"
                    + " completed - IPAS2E1IS is not required to remove combined entries (Arm ARM D8.17.6.1)";
        }
    }

    /**
     * Every combined entry of {@code mmu}'s VMID in its TLB, global or of its current ASID, that
     * grants an access (EL1 read, write or execute) the current tables deny or gives another PA,
     * checked at the first and last page of its span through {@link NestedMmu#reference()}.
     * Entries of other ASIDs are not checked (their tables are not loaded). Quiescent points only.
     */
    public static List<StaleCombined> staleCombinedEntries(NestedMmu mmu) {
        NestedMmu ref = mmu.reference();
        Tlb tlb = mmu.tlb();
        long page = tlb.granule().pageSize();
        List<StaleCombined> found = new ArrayList<>();
        tlb.forEachCombinedEntry((vmid, asid, level, baseVa, s1pte, s2pte, pa) -> {
            if (vmid != mmu.vmid() || (asid >= 0 && asid != mmu.asid())) return;
            long span = tlb.granule().levelSize(level);
            for (long off : new long[] {0, span - page}) {
                for (Access a : Access.values()) {
                    if (!NestedMmu.combinedGrants(s1pte, s2pte, a)) continue;
                    long r = ref.translate(baseVa + off, a);
                    if (Translation.isFault(r) || r != pa + off) {
                        String now = Translation.isFault(r)
                                ? "a stage-" + (Translation.isStage2Fault(r) ? 2 : 1) + " " + Translation.faultType(r).label()
                                        + " fault at level " + Translation.faultLevel(r) + " for " + a.label()
                                        + (Translation.isStage2Fault(r) ? " (IPA 0x" + Long.toHexString(ref.lastFaultIpa()) + ")" : "")
                                : "PA 0x" + Long.toHexString(r);
                        found.add(new StaleCombined(tlb.name(), vmid, asid, baseVa + off, level, pa + off, now));
                        return;
                    }
                }
            }
        });
        return found;
    }
}
