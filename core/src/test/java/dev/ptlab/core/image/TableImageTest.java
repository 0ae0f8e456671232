package dev.ptlab.core.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.HypDescriptor;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.hw.Access;
import dev.ptlab.core.hw.FaultType;
import dev.ptlab.core.hw.Mmu;
import dev.ptlab.core.hw.Tlb;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.hw.Translation;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link TableImage}: the relocated image translates every address exactly as the table it was
 * taken from (checked with an independent decoder that reads only the image's bytes), its layout
 * (roots first, every table descriptor pointing inside the image, leaves unchanged), the register
 * values, and the arguments it refuses.
 */
class TableImageTest {
    static final long MEM = 0x10_0000_0000L;
    static final long K4 = 0x1000, M2 = 0x20_0000, G1 = 0x4000_0000L;

    @TempDir
    Path dir;

    static final class Rig {
        final PhysicalMemory mem;
        final PageTable table;
        final Stage2PageTable s2;
        final HypPageTable hyp;
        final MemCache cache;
        final Mmu mmu;

        Rig(Geometry g, long memBase, int paBits) {
            mem = new PhysicalMemory(memBase, 256L << 20, g.granule(), true);
            TlbSystem tlbs = new TlbSystem();
            if (g.stage() == Stage.STAGE2) {
                s2 = new Stage2PageTable(g, mem, tlbs, 5, 0);
                hyp = null;
                table = s2;
            } else {
                hyp = new HypPageTable(g, mem, tlbs);
                s2 = null;
                table = hyp;
            }
            cache = new MemCache(mem);
            Tlb tlb = new Tlb("cpu0", g.granule());
            tlbs.register(tlb);
            mmu = new Mmu(g, mem, tlb, table.rootPa(), s2 == null ? 0 : 5, false, false, paBits);
        }

        Rig(Geometry g) {
            this(g, MEM, g.paBits());
        }

        void map(long ia, long size, long pa, Prot prot) {
            if (s2 != null) {
                cache.topUp(64);
                s2.map(ia, size, pa, prot, cache);
            } else {
                hyp.map(ia, size, pa, prot);
            }
        }
    }

    // ---- an independent decoder of the image's bytes ----

    /** What hardware does with the image for {@code addr}: same encoding as {@link Mmu#translate}. */
    static long decode(TableImage im, long addr, Access access) {
        Geometry g = im.geometry();
        if (addr < 0 || addr >= g.iaLimit()) return Translation.encodeFault(FaultType.TRANSLATION, 0);
        long paLimit = 1L << im.paBits();
        long table = im.base() + g.rootPageIndex(addr) * g.granule().pageSize();
        for (int level = g.startLevel(); ; level++) {
            long d = im.read(table + 8L * g.granule().index(addr, level));
            if ((d & 1) == 0) return Translation.encodeFault(FaultType.TRANSLATION, level);
            boolean typeBit = (d & 2) != 0;
            long oa = g.outputAddress(d);
            if (level < 3 && typeBit) {
                if (oa >= paLimit) return Translation.encodeFault(FaultType.ADDRESS_SIZE, level);
                table = oa;
                continue;
            }
            if (level == 3 ? !typeBit : !g.hardwareLeafAllowed(level)) return Translation.encodeFault(FaultType.TRANSLATION, level);
            if (oa >= paLimit) return Translation.encodeFault(FaultType.ADDRESS_SIZE, level);
            if ((d & (1L << 10)) == 0) return Translation.encodeFault(FaultType.ACCESS_FLAG, level);
            boolean ok;
            if (im.stage2()) {
                ok = access == Access.READ ? (d & (1L << 6)) != 0 : access == Access.WRITE ? (d & (1L << 7)) != 0
                        : ((d >>> 53) & 3) == 0 || ((d >>> 53) & 3) == 3;
            } else {
                ok = access == Access.READ || (access == Access.WRITE ? (d & (1L << 7)) == 0 : (d & (1L << 54)) == 0);
            }
            if (!ok) return Translation.encodeFault(FaultType.PERMISSION, level);
            long span = 1L << g.granule().levelShift(level);
            return oa + (addr & (span - 1));
        }
    }

    static String show(long r) {
        return Translation.isFault(r) ? Translation.faultType(r).label() + "@" + Translation.faultLevel(r)
                : "0x" + Long.toHexString(r);
    }

    /** Random stage-2 operations (map, unmap, wrprotect, mkold, set-owner, split) in a window. */
    static void randomOps(Rig r, SplittableRandom rnd, long win, long winSize, int ops) {
        Granule g = r.table.geometry().granule();
        long page = g.pageSize();
        long block = g.levelSize(g.minBlockLevel() == 1 ? 2 : 2);
        String[] prots = {"rw", "r", "w", "none", "rx", "rwx", "rw+device"};
        for (int i = 0; i < ops; i++) {
            long size = rnd.nextBoolean() ? page * (1 + rnd.nextLong(8)) : block * (1 + rnd.nextLong(2));
            long ia = win + rnd.nextLong((winSize - size) / page + 1) * page;
            if (rnd.nextBoolean()) ia &= -Math.min(block, Long.highestOneBit(size));
            long pa = rnd.nextBoolean() ? ia + 0x1_0000_0000L : 0x8000_0000L + rnd.nextLong(1 << 20) * page;
            int op = rnd.nextInt(10);
            if (op < 5) {
                r.map(ia, size, pa, Prot.parse(prots[rnd.nextInt(prots.length)]));
            } else if (op == 5) {
                r.s2.unmap(ia, size);
            } else if (op == 6) {
                r.s2.wrprotect(ia, size);
            } else if (op == 7) {
                r.s2.testClearYoung(ia, size, true);
            } else if (op == 8) {
                r.cache.topUp(64);
                r.s2.setOwner(ia, Math.min(size, 16 * page), r.cache, 1 + rnd.nextInt(255));
            } else {
                r.cache.topUp(16);
                try {
                    r.s2.split(ia, size, r.cache); // may run out of frames: the table stays valid
                } catch (PageTableException e) {
                    assertThat(e.errno()).isEqualTo(dev.ptlab.core.Errno.ENOMEM);
                }
            }
        }
    }

    static void assertSameTranslations(Rig r, TableImage im, long[] addrs) {
        for (long a : addrs) {
            for (Access acc : Access.values()) {
                String want = show(r.mmu.translate(a, acc));
                String got = show(decode(im, a, acc));
                assertThat(got).as("0x%x %s; chain %s", a, acc, im.describeChain(a)).isEqualTo(want);
            }
        }
    }

    static long[] sample(SplittableRandom rnd, Geometry g, long win, long winSize, int n) {
        long[] a = new long[n];
        for (int i = 0; i < n; i++) {
            int k = rnd.nextInt(10);
            a[i] = k == 0 ? rnd.nextLong(g.iaLimit()) : k == 1 ? g.iaLimit() + rnd.nextLong(1 << 20)
                    : win + rnd.nextLong(winSize);
        }
        return a;
    }

    @Test
    void relocatedRandomTablesTranslateLikeTheOriginalForEveryGranuleAndSize() {
        SplittableRandom rnd = new SplittableRandom(0x1A6E);
        int tables = 0;
        for (Granule g : Granule.values()) {
            for (int ipa : new int[] {32, 36, 40, 44, 48, 52}) {
                Geometry geo = Geometry.stage2(g, ipa);
                Rig r = new Rig(geo);
                long win = Math.min(0x40_0000_0000L, geo.iaLimit() / 2);
                long winSize = Math.min(1L << 31, geo.iaLimit() / 2);
                randomOps(r, rnd, win, winSize, 40);
                long rootBytes = geo.rootPages() * g.pageSize();
                long base = 0x4400_0000L + rootBytes; // aligned to the root, and not the memory's own base
                TableImage im = TableImage.of(r.table, base);
                assertThat(im.base()).isEqualTo(base);
                assertSameTranslations(r, im, sample(rnd, geo, win, winSize, 3000));
                tables++;
            }
        }
        assertThat(tables).isEqualTo(18);
    }

    @Test
    void layoutRootsFirstEveryTablePointsInsideLeavesUnchanged() {
        Geometry geo = Geometry.stage2(Granule.G4K, 40); // two concatenated roots
        Rig r = new Rig(geo);
        r.map(G1, G1, 0x8000_0000L, Prot.RW);                   // L1 block in root 0
        r.map((1L << 39) + 5 * M2, 3 * K4, 0x9000_1000L, Prot.parse("r")); // pages under root 1
        r.cache.topUp(8);
        r.s2.setOwner(3 * G1, 2 * K4, r.cache, 9);
        TableImage im = TableImage.of(r.table, 0x4400_0000L);
        // roots 2 + (L2, L3 under root 1) + (L2, L3 of the annotation) = 6 frames
        assertThat(im.frames()).isEqualTo(6);
        assertThat(im.size()).isEqualTo(6 * K4);
        assertThat(im.rootPa()).isEqualTo(0x4400_0000L);
        // Following the table descriptors from every mapped or annotated address reaches the 4
        // non-root frames, each inside the image, page-aligned, after the roots.
        Set<Long> targets = new HashSet<>();
        for (long a : new long[] {G1, (1L << 39) + 5 * M2, (1L << 39) + 5 * M2 + 2 * K4, 3 * G1, 3 * G1 + K4}) {
            for (TableImage.Step s : im.chain(a)) {
                if (Pte.isTable(s.descriptor(), s.level())) {
                    long t = geo.outputAddress(s.descriptor());
                    assertThat(im.contains(t)).as("descriptor at 0x%x -> 0x%x", s.pa(), t).isTrue();
                    targets.add(t);
                }
            }
        }
        assertThat(targets).hasSize(4);
        assertThat(targets).allMatch(t -> t >= im.base() + 2 * K4 && (t & (K4 - 1)) == 0);
        // the original table's descriptors point elsewhere (its frames are at 64G): they were rewritten
        assertThat(r.table.rootPa()).isEqualTo(MEM);
        // leaves copied bit for bit
        long pageIpa = (1L << 39) + 5 * M2 + K4;
        List<TableImage.Step> c = im.chain(pageIpa);
        assertThat(c).extracting(TableImage.Step::level).containsExactly(1, 2, 3);
        assertThat(c.get(2).descriptor()).isEqualTo(r.table.getLeaf(pageIpa).pte());
        assertThat(c.get(0).pa()).isEqualTo(im.base() + K4 + 8 * 0); // root 1, entry 0
        // the annotation survives as an invalid descriptor with its owner
        List<TableImage.Step> a = im.chain(3 * G1 + K4);
        assertThat(Pte.owner(a.get(a.size() - 1).descriptor())).isEqualTo(9);
        assertThat(im.chain(1L << 40)).isEmpty();
        assertThat(im.describeChain(1L << 40)).contains("outside the 40-bit input-address space");
        assertThat(im.describeChain(pageIpa)).matches("L1 \\[0x44001000\\] = 0x[0-9a-f]{16} -> L2 .* -> L3 .*");
    }

    @Test
    void bytesAreLittleEndianDescriptorsFromTheBase() throws Exception {
        Rig r = new Rig(Geometry.stage2(Granule.G4K, 40));
        r.map(G1, G1, 0x8000_0000L, Prot.RW);
        TableImage im = TableImage.of(r.table, 0x4000_0000L);
        Path f = dir.resolve("image.bin");
        im.write(f);
        byte[] b = Files.readAllBytes(f);
        assertThat(b).hasSize((int) im.size());
        long first = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(8); // entry 1 of root 0
        assertThat(first).isEqualTo(r.table.getLeaf(G1).pte()).isEqualTo(im.read(im.base() + 8));
        assertThat(b[8] & 0xFF).isEqualTo((int) (first & 0xFF)); // low byte first
    }

    @Test
    void hypImagesToo() {
        for (Granule g : Granule.values()) {
            for (int va : new int[] {32, 39, 48, 52}) {
                Geometry geo = Geometry.hyp(g, va);
                Rig r = new Rig(geo);
                r.map(0x4000_0000L, 4 * g.levelSize(2), 0x8000_0000L, Prot.parse("rx"));
                r.map(0x1000_0000L, 3 * g.pageSize(), 0x9000_0000L + g.pageSize(), Prot.parse("r"));
                r.map(0x2000_0000L, g.pageSize(), 0x9100_0000L, Prot.RW);
                TableImage im = TableImage.of(r.table, 0x4800_0000L);
                SplittableRandom rnd = new SplittableRandom(va);
                long[] addrs = sample(rnd, geo, 0x1000_0000L, 1L << 30, 2000);
                assertSameTranslations(r, im, addrs);
                assertThat(im.registers()).containsOnlyKeys("MAIR_EL2", "TCR_EL2", "TTBR0_EL2");
            }
        }
    }

    @Test
    void stage2RegisterValues() {
        Geometry geo = Geometry.stage2(Granule.G4K, 40);
        Rig r = new Rig(geo);
        TableImage im = TableImage.of(r.table, 0x4400_0000L);
        // T0SZ 24, SL0 1 (start L1), IRGN/ORGN WBWA, SH inner, TG0 4K, PS 48 (5), VS, RES1 bit 31
        assertThat(im.vtcr()).isEqualTo(0x8000_0000L | 24 | 1 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | 5 << 16 | 1 << 19);
        assertThat(im.vttbr()).isEqualTo(5L << 48 | 0x4400_0000L);
        assertThat(im.hcr()).isEqualTo(TableImage.HCR_VM | TableImage.HCR_RW);
        assertThat(im.registers()).containsExactly(
                java.util.Map.entry("VTCR_EL2", im.vtcr()), java.util.Map.entry("VTTBR_EL2", im.vttbr()),
                java.util.Map.entry("HCR_EL2", im.hcr()));
        TableImage ps40 = TableImage.of(r.table, 0x4400_0000L, 40);
        assertThat(ps40.vtcr()).isEqualTo(im.vtcr() & ~(7L << 16) | 2L << 16);
        assertThat(ps40.paBits()).isEqualTo(40);
        assertThatThrownBy(im::tcrEl2).isInstanceOf(IllegalStateException.class).hasMessageContaining("TCR_EL2 belongs to a hyp image");

        Rig lpa2 = new Rig(Geometry.stage2(Granule.G4K, 52));
        TableImage i52 = TableImage.of(lpa2.table, 0x4400_0000L);
        assertThat(i52.vtcr() & Registers.VTCR_DS).isNotZero();
        assertThat((i52.vtcr() >>> 16) & 7).isEqualTo(6);
        assertThat(i52.vttbr()).isEqualTo(Registers.vttbr(lpa2.table.geometry(), 0x4400_0000L, 5));
    }

    @Test
    void hypRegisterValues() {
        Geometry geo = Geometry.hyp(Granule.G64K, 42);
        Rig r = new Rig(geo);
        TableImage im = TableImage.of(r.table, 0x4400_0000L, 44);
        assertThat(im.tcrEl2()).isEqualTo(Registers.TCR_EL2_RES1 | 22 | 1 << 8 | 1 << 10 | 3 << 12 | 1 << 14 | 4 << 16);
        assertThat(im.ttbr0El2()).isEqualTo(0x4400_0000L);
        assertThat(im.mairEl2()).isEqualTo(HypDescriptor.MAIR_EL2);
        assertThatThrownBy(im::vttbr).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void refusesBasesHardwareCannotUse() {
        Rig r = new Rig(Geometry.stage2(Granule.G4K, 40)); // 2 concatenated roots: 8K alignment
        r.map(G1, K4, 0x8000_0000L, Prot.RW);
        assertThatThrownBy(() -> TableImage.of(r.table, 0x4400_0800L))
                .isInstanceOf(PageTableException.class)
                .hasMessage("base: 0x44000800 is not a non-negative multiple of the 4k granule (EINVAL)");
        assertThatThrownBy(() -> TableImage.of(r.table, 0x4400_1000L))
                .hasMessage("base: 0x44001000 is not aligned to the 2 concatenated root tables (0x2000 bytes): hardware needs"
                        + " the root aligned to its size (EINVAL)");
        assertThatThrownBy(() -> TableImage.of(r.table, -0x2000L)).hasMessageStartingWith("base: 0xffffffffffffe000 is not");
        assertThatThrownBy(() -> TableImage.of(r.table, 0xFF_FFFF_E000L, 40))
                .hasMessage("base: 0xffffffe000 + image size 0x4000 reaches past the 40-bit physical address space"
                        + " (limit 0x10000000000) (EINVAL)");
        assertThatThrownBy(() -> TableImage.of(r.table, 0x4400_0000L, 39))
                .hasMessage("pa-bits: 39 is not one of 32, 36, 40, 42, 44, 48, 52 (EINVAL)")
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.argument()).isEqualTo("pa-bits"));
        assertThatThrownBy(() -> TableImage.of(r.table, 0x4400_0000L, 52))
                .hasMessageStartingWith("pa-bits: 52 exceeds the 48-bit output format PA48");
        assertThatThrownBy(() -> TableImage.of(r.table, 0x4400_0000L, 36))
                .hasMessage("pa-bits: 36 is below the 40-bit IPA size (a stage-2 IPA cannot be larger than the PA size) (EINVAL)")
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.argument()).isEqualTo("pa-bits"));
        // A refused base names "base": what export tells apart from pa-bits without reading the message.
        assertThatThrownBy(() -> TableImage.of(r.table, 0xFF_FFFF_E000L, 40))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.argument()).isEqualTo("base"));
        Rig r52 = new Rig(Geometry.stage2(Granule.G64K, 52));
        assertThatThrownBy(() -> TableImage.of(r52.table, 0x4400_0000L, 48))
                .hasMessage("pa-bits: 48 is not 52: PA52_64K descriptors carry 52-bit output addresses (EINVAL)");
        assertThatThrownBy(() -> TableImage.of(null, 0)).isInstanceOf(IllegalArgumentException.class).hasMessage("table: null");
        assertThatThrownBy(() -> TableImage.of(r.table, 0x4400_0000L).read(0x4400_0004L))
                .hasMessageStartingWith("pa: 0x44000004 is not a descriptor address inside the image");
    }

    @Test
    void smallerPaSizeMakesOutputAddressesBeyondItAddressSizeFaults() {
        // Tables in a window below 4G (the allocator places them there), PS = 32 bits.
        Geometry geo = Geometry.stage2(Granule.G4K, 32);
        Rig r = new Rig(geo, 0x4400_0000L, 32);
        r.map(0x1000, K4, 0x1_0000_0000L, Prot.RW);     // OA just past 4G
        r.map(0x2000, K4, 0xFFFF_F000L, Prot.RW);       // last page below it
        r.map(G1, G1, 0x2_0000_0000L, Prot.RW);         // 2M blocks past it (32-bit: the walk starts at L2)
        TableImage im = TableImage.of(r.table, 0x5000_0000L, 32);
        assertThat(show(r.mmu.translate(0x1000, Access.READ))).isEqualTo("address-size@3");
        assertThat(show(r.mmu.translate(0x2000, Access.READ))).isEqualTo("0xfffff000");
        assertThat(show(r.mmu.translate(G1 + 5, Access.WRITE))).isEqualTo("address-size@2");
        assertSameTranslations(r, im, new long[] {0x1000, 0x2000, G1 + 5, 0x3000, 1L << 32});

        // A table descriptor past the PA size: tables in the default 64G window with PS 32.
        Rig high = new Rig(Geometry.stage2(Granule.G4K, 32), MEM, 32);
        high.map(0x1000, K4, 0x8000_0000L, Prot.RW);
        // The root (VTTBR base) at 64G is checked first, before any descriptor: level 0.
        assertThat(show(high.mmu.translate(0x1000, Access.READ))).as("root at 64G").isEqualTo("address-size@0");
        // Hardware walking the exported image sees the tables below 4G and translates (the issue's example).
        Mmu exported = Mmu.overImage(TableImage.of(high.table, 0x5000_0000L, 32), new Tlb("hw", Granule.G4K));
        assertThat(show(exported.translate(0x1000, Access.READ))).isEqualTo("0x80000000");
        assertThatThrownBy(() -> new Mmu(geo, r.mem, new Tlb("x", Granule.G4K), 0, 0, false, false, 52))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.argument()).isEqualTo("pa-bits"))
                .hasMessage("pa-bits: 52 exceeds the 48-bit output format PA48 (EINVAL)");
        assertThatThrownBy(() -> new Mmu(geo, r.mem, new Tlb("x", Granule.G4K), 0, 0, false, false, 33))
                .isInstanceOfSatisfying(PageTableException.class, e -> assertThat(e.argument()).isEqualTo("pa-bits"))
                .hasMessage("pa-bits: 33 is not one of 32, 36, 40, 42, 44, 48, 52 (EINVAL)");
    }

    @Test
    void snapshotDoesNotFollowLaterChanges() {
        Rig r = new Rig(Geometry.stage2(Granule.G16K, 40));
        r.map(0x4000_0000L, 0x4000, 0x8000_0000L, Prot.RW);
        TableImage im = TableImage.of(r.table, 0x4400_0000L);
        String before = show(decode(im, 0x4000_0000L, Access.WRITE));
        r.s2.unmap(0x4000_0000L, 0x4000);
        assertThat(show(decode(im, 0x4000_0000L, Access.WRITE))).isEqualTo(before).isEqualTo("0x80000000");
        assertThat(show(r.mmu.translate(0x4000_0000L, Access.WRITE))).isEqualTo("translation@2"); // L3 table freed
    }
}
