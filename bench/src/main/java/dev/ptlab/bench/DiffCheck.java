package dev.ptlab.bench;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbMaintenance;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.CacheMaintenance;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.CoalescePolicy;
import dev.ptlab.core.table.FreeUnlinkedHook;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.table.UnlinkedTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Differential check for performance work on the core (not a benchmark, not a test): runs
 * seeded random sequences of table operations (map with every kind of PA alignment and prot,
 * unmap, wrprotect, eager split with small and large memory caches, coalescing under both
 * policies and a deferred free hook, owner annotations, mkyoung, relaxPerms, testClearYoung,
 * flush, createUnlinked/freeUnlinked, shared-walk maps, hyp map/unmap, destroy) over all three
 * granules, two IPA sizes, all four FWB/RANGE_TLBI combinations and checking mode on and off.
 * After every operation it hashes what the operation observably did: its status or exception
 * (class and message), every table and leaf entry in the window, the table's counters, every
 * TLBI call with its arguments in order, every cache-maintenance callback, frame and memory-
 * cache counts, the refcount check, and translations of random addresses by an MMU whose TLB
 * only the table's TLBIs keep coherent.
 *
 * <p>It prints one SHA-256 per configuration and a total. Run it against the core before and
 * after a change (the old core jar first on the class path) and compare the output:
 * <pre>
 * java -cp bench/target/benchmarks.jar dev.ptlab.bench.DiffCheck [seeds [ops]] &gt; after.txt
 * java -cp /tmp/base/core.jar:bench/target/benchmarks.jar dev.ptlab.bench.DiffCheck [seeds [ops]] &gt; before.txt
 * diff before.txt after.txt
 * </pre>
 */
public final class DiffCheck {
    private DiffCheck() {}

    static final long BASE = 1L << 30;
    static final long WINDOW = 2L << 30;
    static final long PA_BASE = 1L << 36;
    static final int VMID = 7;
    /** {@code -Ddiffcheck.log=true}: print every recorded line to stderr (to see what the runs do). */
    static final boolean LOG = Boolean.getBoolean("diffcheck.log");
    static final Prot[] PROTS = {Prot.R, Prot.RW, Prot.RX, Prot.RWX, Prot.DEVICE_RW, Prot.parse("rw+sw0"),
            Prot.parse("rw+nc"), Prot.parse("px"), Prot.NONE};

    public static void main(String[] args) throws Exception {
        int seeds = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        int ops = args.length > 1 ? Integer.parseInt(args[1]) : 300;
        MessageDigest total = MessageDigest.getInstance("SHA-256");
        for (Granule g : Granule.values()) {
            for (int ipaBits : new int[] {40, 48}) {
                for (int flags = 0; flags < 8; flags++) {
                    if ((flags & Stage2PageTable.IDMAP) != 0) continue;
                    for (boolean checking : new boolean[] {false, true}) {
                        for (int seed = 1; seed <= seeds; seed++) {
                            String name = g.label() + " ipa" + ipaBits + " flags" + flags + (checking ? " checking" : "") + " seed" + seed;
                            String h = new Run(g, ipaBits, flags, checking, seed).stage2(ops);
                            System.out.println(name + " " + h);
                            total.update((name + h).getBytes(StandardCharsets.UTF_8));
                        }
                    }
                }
            }
            for (boolean checking : new boolean[] {false, true}) {
                String name = g.label() + " hyp" + (checking ? " checking" : "");
                String h = new Run(g, 48, 0, checking, 99).hyp(ops);
                System.out.println(name + " " + h);
                total.update((name + h).getBytes(StandardCharsets.UTF_8));
            }
        }
        System.out.println("TOTAL " + HexFormat.of().formatHex(total.digest()));
    }

    static final class Run {
        final Granule g;
        final int ipaBits;
        final int flags;
        final boolean checking;
        final SplittableRandom rnd;
        final MessageDigest md;
        final long page;
        long tlbiHash = 17;
        long cmoHash = 19;

        Run(Granule g, int ipaBits, int flags, boolean checking, long seed) throws Exception {
            this.g = g;
            this.ipaBits = ipaBits;
            this.flags = flags;
            this.checking = checking;
            this.rnd = new SplittableRandom(seed * 1_000_003L + g.ordinal() * 31L + ipaBits * 7L + flags * 3L + (checking ? 1 : 0));
            this.md = MessageDigest.getInstance("SHA-256");
            this.page = g.pageSize();
        }

        void rec(String s) {
            if (LOG) System.err.println(s);
            md.update(s.getBytes(StandardCharsets.UTF_8));
            md.update((byte) '\n');
        }

        static long mix(long h, long v) {
            h ^= v + 0x9E37_79B9_7F4A_7C15L + (h << 6) + (h >>> 2);
            h *= 0xBF58_476D_1CE4_E5B9L;
            return h ^ (h >>> 31);
        }

        /** Records every TLBI with its arguments, then performs it. */
        TlbMaintenance recorder(TlbSystem sys) {
            return new TlbMaintenance() {
                @Override public void flushVmidIpa(int vmid, long ipa, int levelHint) {
                    tlbiHash = mix(mix(mix(mix(tlbiHash, 1), vmid), ipa), levelHint);
                    sys.flushVmidIpa(vmid, ipa, levelHint);
                }
                @Override public void flushVmidIpaLocal(Tlb local, int vmid, long ipa, int levelHint) {
                    tlbiHash = mix(mix(mix(mix(tlbiHash, 2), vmid), ipa), levelHint);
                    sys.flushVmidIpaLocal(local, vmid, ipa, levelHint);
                }
                @Override public void flushVmidRange(int vmid, long ipa, long size) {
                    tlbiHash = mix(mix(mix(mix(tlbiHash, 3), vmid), ipa), size);
                    sys.flushVmidRange(vmid, ipa, size);
                }
                @Override public void flushVmid(int vmid) {
                    tlbiHash = mix(mix(tlbiHash, 4), vmid);
                    sys.flushVmid(vmid);
                }
                @Override public void flushHypVa(long va, int levelHint) {
                    tlbiHash = mix(mix(mix(tlbiHash, 5), va), levelHint);
                    sys.flushHypVa(va, levelHint);
                }
            };
        }

        long alignUnit() {
            int r = rnd.nextInt(10);
            if (r < 4) return page;
            if (r < 8) return g.levelSize(2);
            return Math.min(g.levelSize(1), WINDOW / 2);
        }

        /** A random range inside the window: {start, size}. */
        long[] range() {
            long unit = alignUnit();
            long units = WINDOW / unit;
            long start = BASE + rnd.nextLong(units) * unit;
            long maxUnits = (BASE + WINDOW - start) / unit;
            long n = 1 + (rnd.nextInt(4) == 0 ? rnd.nextLong(maxUnits) : rnd.nextLong(Math.min(maxUnits, 3)));
            long size = n * unit;
            if (rnd.nextInt(4) == 0) {
                long shift = rnd.nextInt(5) * page;
                if (start - shift >= BASE) {
                    start -= shift;
                    size += shift;
                }
            }
            if (rnd.nextInt(4) == 0 && size > page) size -= rnd.nextLong(Math.min(size / page, 5)) * page;
            if (size <= 0) size = page;
            if (start + size > BASE + WINDOW) size = BASE + WINDOW - start;
            // Walks over up to 2 GiB of 4K pages are fine, but keep most of them small.
            return new long[] {start, size};
        }

        long pa(long ipa) {
            int r = rnd.nextInt(6);
            long delta = r < 3 ? 0 : r < 5 ? rnd.nextInt(1, 4) * page : g.levelSize(2) * rnd.nextInt(1, 3);
            return PA_BASE + (ipa - BASE) + delta;
        }

        Prot prot() {
            return PROTS[rnd.nextInt(PROTS.length)];
        }

        void topUp(MemCache cache) {
            int[] sizes = {0, 1, 2, 3, 8, 40, 600, 1100};
            int n = sizes[rnd.nextInt(sizes.length)];
            try {
                cache.topUp(n);
            } catch (RuntimeException e) {
                rec("topUp " + n + " " + e.getClass().getSimpleName() + ": " + e.getMessage());
            }
        }

        String stage2(int ops) throws Exception {
            PhysicalMemory memory = new PhysicalMemory(0x10_0000_0000L, 16384L * page, g, checking);
            TlbSystem sys = new TlbSystem();
            Tlb tlb = new Tlb("cpu0", g);
            sys.register(tlb);
            Stage2PageTable t = new Stage2PageTable(Geometry.stage2(g, ipaBits), memory, recorder(sys), VMID, flags);
            Mmu mmu = new Mmu(t.geometry(), memory, tlb, t.rootPa(), VMID, t.fwb(), false);
            MemCache cache = new MemCache(memory);
            boolean listen = rnd.nextBoolean();
            if (listen) {
                memory.cacheMaintenance().setListener(new CacheMaintenance.Listener() {
                    @Override public void dcacheCleanInvalPoc(long pa, long size) {
                        cmoHash = mix(mix(mix(cmoHash, 1), pa), size);
                    }
                    @Override public void icacheInvalPou(long pa, long size) {
                        cmoHash = mix(mix(mix(cmoHash, 2), pa), size);
                    }
                });
            }
            List<UnlinkedTable> deferred = new ArrayList<>();
            FreeUnlinkedHook defer = (table, sub) -> deferred.add(sub);
            rec("geometry " + t.geometry() + " listen " + listen);
            for (int i = 0; i < ops; i++) {
                String what;
                long[] r = range();
                long ipa = r[0], size = r[1];
                int op = rnd.nextInt(100);
                try {
                    if (op < 22) {
                        topUp(cache);
                        Prot p = prot();
                        long pa = pa(ipa);
                        int[] wf = {0, 0, WalkFlags.SKIP_CMO, WalkFlags.SHARED, WalkFlags.SHARED | WalkFlags.HANDLE_FAULT};
                        int f = wf[rnd.nextInt(wf.length)];
                        what = "map " + hex(ipa) + " " + hex(size) + " " + hex(pa) + " " + p + " " + f;
                        what += " -> " + t.map(ipa, size, pa, p, cache, f);
                    } else if (op < 36) {
                        what = "unmap " + hex(ipa) + " " + hex(size);
                        t.unmap(ipa, size);
                    } else if (op < 46) {
                        what = "wrprotect " + hex(ipa) + " " + hex(size);
                        t.wrprotect(ipa, size);
                    } else if (op < 56) {
                        topUp(cache);
                        what = "split " + hex(ipa) + " " + hex(size) + " cache " + cache.size();
                        t.split(ipa, size, cache);
                    } else if (op < 66) {
                        topUp(cache);
                        long unit = g.levelSize(rnd.nextInt(3) == 0 && g.leafAllowed(1) ? 1 : 2);
                        long a = ipa & -unit;
                        long s = Math.max(unit, (size + unit - 1) & -unit);
                        if (a + s > BASE + WINDOW) s = BASE + WINDOW - a;
                        CoalescePolicy cp = rnd.nextBoolean() ? CoalescePolicy.INSTALL_FIRST : CoalescePolicy.UNMAP_FIRST;
                        boolean d = rnd.nextInt(4) == 0;
                        t.setCoalescePolicy(cp);
                        t.setFreeUnlinkedHook(d ? defer : FreeUnlinkedHook.IMMEDIATE);
                        Prot p = prot();
                        what = "coalesce " + cp + " " + d + " " + hex(a) + " " + hex(s) + " " + p;
                        what += " -> " + t.map(a, s, PA_BASE + (a - BASE), p, cache);
                    } else if (op < 71) {
                        topUp(cache);
                        int owner = rnd.nextInt(4);
                        what = "setOwner " + hex(ipa) + " " + hex(size) + " " + owner;
                        t.setOwner(ipa, size, cache, owner);
                    } else if (op < 75) {
                        int wf = rnd.nextBoolean() ? 0 : WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
                        what = "mkyoung " + hex(ipa) + " " + wf + " -> " + t.mkyoung(ipa, wf);
                    } else if (op < 81) {
                        Prot[] ps = {Prot.R, Prot.RW, Prot.RX, Prot.RWX};
                        Prot p = ps[rnd.nextInt(ps.length)];
                        int wf = rnd.nextBoolean() ? 0 : WalkFlags.SHARED | WalkFlags.HANDLE_FAULT;
                        what = "relax " + hex(ipa) + " " + p + " " + wf + " -> " + t.relaxPerms(ipa, p, wf, rnd.nextBoolean() ? tlb : null);
                    } else if (op < 85) {
                        boolean mkold = rnd.nextBoolean();
                        what = "young " + hex(ipa) + " " + hex(size) + " " + mkold + " -> " + t.testClearYoung(ipa, size, mkold);
                    } else if (op < 88) {
                        what = "flush " + hex(ipa) + " " + hex(size);
                        t.flush(ipa, size);
                    } else if (op < 92) {
                        topUp(cache);
                        int level = Math.max(t.geometry().startLevel(), rnd.nextInt(3) == 0 ? 1 : 2);
                        boolean force = rnd.nextBoolean();
                        long span = g.levelSize(level);
                        Prot p = prot();
                        what = "unlinked " + level + " " + force + " " + p;
                        UnlinkedTable u = t.createUnlinked(PA_BASE + span * rnd.nextInt(4), level, p, cache, force);
                        t.freeUnlinked(u);
                    } else if (op < 95) {
                        what = "drain " + deferred.size();
                        for (UnlinkedTable u : deferred) t.freeUnlinked(u);
                        deferred.clear();
                    } else {
                        // Reads every address of a range through the MMU (fills the TLB).
                        what = "touch " + hex(ipa);
                        long h = 0;
                        for (long a = ipa; a < Math.min(ipa + size, ipa + 64 * page); a += page) {
                            h = mix(h, mmu.translate(a, Access.READ));
                        }
                        what += " " + h;
                    }
                } catch (RuntimeException e) {
                    what = "op " + op + " threw " + e.getClass().getSimpleName() + ": " + e.getMessage();
                }
                rec(i + " " + what);
                state(t, memory, cache, mmu);
            }
            for (UnlinkedTable u : deferred) t.freeUnlinked(u);
            try {
                t.destroy();
                rec("destroy " + t.counters() + " frames " + memory.framesInUse() + " cache " + cache.size());
            } catch (RuntimeException e) {
                rec("destroy threw " + e.getClass().getSimpleName() + ": " + e.getMessage());
            }
            rec("tlbi " + tlbiHash + " cmo " + cmoHash);
            return HexFormat.of().formatHex(md.digest());
        }

        void state(Stage2PageTable t, PhysicalMemory memory, MemCache cache, Mmu mmu) {
            long[] h = {0, 0};
            t.walk(BASE, WINDOW, (ctx, visit) -> {
                long v = ctx.old();
                if (v != 0) {
                    h[0] = mix(mix(mix(mix(h[0], ctx.addr()), ctx.level()), v), visit.ordinal());
                    h[1]++;
                }
                return Status.OK;
            }, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
            String refs;
            try {
                t.checkRefcounts();
                refs = "ok";
            } catch (RuntimeException e) {
                refs = e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            long tr = 0;
            for (int k = 0; k < 16; k++) {
                long a = BASE + rnd.nextLong(WINDOW / page) * page + 8;
                tr = mix(tr, mmu.translate(a, Access.READ));
                tr = mix(tr, mmu.translate(a, Access.WRITE));
            }
            CacheMaintenance c = memory.cacheMaintenance();
            rec("entries " + h[1] + " " + h[0] + " | " + t.counters() + " | frames " + memory.framesInUse() + " "
                    + memory.allocations() + " " + memory.frees() + " cache " + cache.size() + " | refs " + refs
                    + " | tlbi " + tlbiHash + " cmo " + cmoHash + " " + c.dcacheOps() + " " + c.dcacheBytes() + " "
                    + c.icacheOps() + " " + c.icacheBytes() + " | mmu " + tr);
        }

        String hyp(int ops) throws Exception {
            PhysicalMemory memory = new PhysicalMemory(0x10_0000_0000L, 16384L * page, g, checking);
            TlbSystem sys = new TlbSystem();
            HypPageTable t = new HypPageTable(Geometry.hyp(g, 48), memory, recorder(sys));
            for (int i = 0; i < ops; i++) {
                long[] r = range();
                String what;
                try {
                    if (rnd.nextInt(3) != 0) {
                        Prot p = PROTS[rnd.nextInt(5)];
                        long pa = pa(r[0]);
                        what = "map " + hex(r[0]) + " " + hex(r[1]) + " " + hex(pa) + " " + p;
                        t.map(r[0], r[1], pa, p);
                    } else {
                        what = "unmap " + hex(r[0]) + " " + hex(r[1]) + " -> " + t.unmap(r[0], r[1]);
                    }
                } catch (RuntimeException e) {
                    what = "threw " + e.getClass().getSimpleName() + ": " + e.getMessage();
                }
                long[] h = {0};
                t.walk(BASE, WINDOW, (ctx, visit) -> {
                    h[0] = mix(mix(mix(h[0], ctx.addr()), ctx.level()), ctx.old());
                    return Status.OK;
                }, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
                rec(i + " " + what + " | " + h[0] + " " + t.counters() + " frames " + memory.framesInUse() + " tlbi " + tlbiHash);
            }
            try {
                t.destroy();
                rec("destroy " + t.counters() + " frames " + memory.framesInUse());
            } catch (RuntimeException e) {
                rec("destroy threw " + e.getClass().getSimpleName() + ": " + e.getMessage());
            }
            return HexFormat.of().formatHex(md.digest());
        }
    }

    static String hex(long v) {
        return Long.toHexString(v);
    }
}
