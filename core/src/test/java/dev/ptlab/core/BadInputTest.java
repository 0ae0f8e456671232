package dev.ptlab.core;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Prot;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.hw.TlbSystem;
import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.mem.PhysicalMemory;
import dev.ptlab.core.table.HypPageTable;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Bad arguments to the table operations: each names the argument and its value (or the range),
 * carries the kernel errno, and leaves the table exactly as it was. Message format, from
 * {@link PageTableException}: {@code [at 0x<addr>[ level <n>]: ]<reason> (<ERRNO>)}; argument
 * errors read {@code <name>: 0x<hex value> <why>}.
 */
class BadInputTest {
    private static final FrameAccess FRAMES = FrameAccess.grant();

    private static final long MEM_BASE = 0x1_0000_0000L;
    private static final long IPA = 0x4000_0000L;
    private static final long PA = 0x8000_0000L;

    private PhysicalMemory mem;
    private TlbSystem tlbs;
    private Stage2PageTable s2;   // 4K granule, 40-bit IPA, 48-bit PA
    private HypPageTable hyp;    // 4K granule, 48-bit VA, 48-bit PA
    private MemCache cache;

    @BeforeEach
    void setUp() {
        mem = new PhysicalMemory(MEM_BASE, 16L << 20, Granule.G4K, true);
        tlbs = new TlbSystem();
        s2 = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 1, 0);
        hyp = new HypPageTable(Geometry.hyp(Granule.G4K, 48), mem, tlbs);
        cache = new MemCache(mem);
        cache.topUp(8);
        // something already mapped, so "unchanged" is a real claim
        s2.map(IPA, 0x20_0000L, PA, Prot.RW, cache);
        s2.map(IPA + 0x40_0000L, 0x3000, PA + 0x100_0000L, Prot.R, cache);
        hyp.map(0x10_0000L, 0x2000, PA, Prot.RW);
        cache.topUp(8);
    }

    @AfterEach
    void tablesStayConsistent() {
        s2.checkRefcounts();
        hyp.checkRefcounts();
    }

    // ---- helpers ------------------------------------------------------------------------------

    /** Every table frame reachable from the roots, with a copy of its entries. */
    private List<Object> snapshot(PageTable t) {
        List<Object> out = new ArrayList<>();
        Geometry g = t.geometry();
        for (int i = 0; i < g.rootPages(); i++) snapshotFrame(t, t.rootPa() + i * g.granule().pageSize(), g.startLevel(), out);
        out.add(mem.framesInUse());
        out.add(cache.size());
        return out;
    }

    private void snapshotFrame(PageTable t, long pa, int level, List<Object> out) {
        long[] f = FRAMES.frame(mem, pa);
        out.add(pa);
        out.add(Arrays.toString(f));
        for (long pte : f) {
            if (Pte.isTable(pte, level)) snapshotFrame(t, t.geometry().outputAddress(pte), level + 1, out);
        }
    }

    /** Runs {@code call}, expects a PageTableException, and checks that neither table changed. */
    private PageTableException rejected(Executable call) {
        List<Object> s2Before = snapshot(s2), hypBefore = snapshot(hyp);
        long tlbiBefore = tlbs.totalFlushes();
        PageTableException e = catchThrowableOfType(PageTableException.class, () -> {
            try {
                call.execute();
            } catch (Throwable th) {
                if (th instanceof RuntimeException) throw (RuntimeException) th;
                throw new AssertionError(th);
            }
        });
        assertThat(e).as("expected a PageTableException").isNotNull();
        assertThat(snapshot(s2)).as("stage-2 table unchanged after: %s", e.getMessage()).isEqualTo(s2Before);
        assertThat(snapshot(hyp)).as("hyp table unchanged after: %s", e.getMessage()).isEqualTo(hypBefore);
        assertThat(tlbs.totalFlushes()).as("no TLB maintenance for a rejected call").isEqualTo(tlbiBefore);
        return e;
    }

    private void assertEinval(PageTableException e, String message) {
        assertThat(e.errno()).isEqualTo(Errno.EINVAL);
        assertThat(e.kernelReturn()).isEqualTo(-22);
        assertThat(e).hasMessage(message);
    }

    // ---- stage-2 map/unmap ----------------------------------------------------------------------

    @Test
    void stage2UnalignedArguments() {
        assertEinval(rejected(() -> s2.map(0x4000_0800L, 0x1000, PA, Prot.RW, cache)),
                "ipa: 0x40000800 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> s2.map(IPA, 0x1000, 0x8000_0010L, Prot.RW, cache)),
                "pa: 0x80000010 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> s2.map(IPA, 0x1800, PA, Prot.RW, cache)),
                "size: 0x1800 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> s2.unmap(IPA + 0x10, 0x1000)),
                "ipa: 0x40000010 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> s2.unmap(IPA, 0xFFF)),
                "size: 0xfff is not aligned to the 4k granule (EINVAL)");
    }

    @Test
    void stage2ZeroOrNegativeSize() {
        assertEinval(rejected(() -> s2.map(IPA, 0, PA, Prot.RW, cache)), "size: 0x0 is not positive (EINVAL)");
        assertEinval(rejected(() -> s2.map(IPA, -0x1000, PA, Prot.RW, cache)),
                "size: 0xfffffffffffff000 is not positive (EINVAL)");
        assertEinval(rejected(() -> s2.unmap(IPA, 0)), "size: 0x0 is not positive (EINVAL)");
        assertEinval(rejected(() -> s2.unmap(IPA, Long.MIN_VALUE)), "size: 0x8000000000000000 is not positive (EINVAL)");
    }

    @Test
    void stage2RangeBeyondTheIpaSpaceIsErange() {
        long top = 1L << 40;
        // straddles the end of the 40-bit IPA space
        PageTableException e = rejected(() -> s2.map(top - 0x1000, 0x2000, PA, Prot.RW, cache));
        assertThat(e.errno()).isEqualTo(Errno.ERANGE);
        assertThat(e.kernelReturn()).isEqualTo(-34);
        assertThat(e.address()).isEqualTo(top - 0x1000);
        assertThat(e.getMessage())
                .startsWith("at 0xfffffff000: ")
                .contains("range [0xfffffff000, 0x10000001000)")
                .contains("40-bit")
                .endsWith("(ERANGE)");
        // entirely above it
        e = rejected(() -> s2.map(top, 0x1000, PA, Prot.RW, cache));
        assertThat(e.errno()).isEqualTo(Errno.ERANGE);
        assertThat(e.getMessage()).contains("range [0x10000000000, 0x10000001000)");
        e = rejected(() -> s2.unmap(top, 0x1000));
        assertThat(e.errno()).isEqualTo(Errno.ERANGE);
        assertThat(e.getMessage()).contains("range [0x10000000000, 0x10000001000)");
        // negative (bit 63 set) IPA
        e = rejected(() -> s2.unmap(-0x1000L, 0x1000));
        assertThat(e.errno()).isEqualTo(Errno.ERANGE);
        assertThat(e.getMessage()).contains("range [0xfffffffffffff000, 0x0)");
        // a positive, aligned size whose end wraps past 2^63
        e = rejected(() -> s2.unmap(IPA, 0x7FFF_FFFF_FFFF_F000L));
        assertThat(e.errno()).isEqualTo(Errno.ERANGE);
        assertThat(e.getMessage()).contains("range [0x40000000, ");
    }

    @Test
    void stage2PaBeyondThePaSize() {
        assertEinval(rejected(() -> s2.map(IPA, 0x1000, 1L << 48, Prot.RW, cache)),
                "pa: 0x1000000000000 + size 0x1000 exceeds the 48-bit physical address space (EINVAL)");
        // starts inside, ends outside
        assertEinval(rejected(() -> s2.map(IPA, 0x2000, (1L << 48) - 0x1000, Prot.RW, cache)),
                "pa: 0xfffffffff000 + size 0x2000 exceeds the 48-bit physical address space (EINVAL)");
        // the last page is fine
        s2.map(IPA + 0x80_0000L, 0x1000, (1L << 48) - 0x1000, Prot.RW, cache);
        assertThat(s2.geometry().outputAddress(s2.getLeaf(IPA + 0x80_0000L).pte())).isEqualTo((1L << 48) - 0x1000);
    }

    @Test
    void stage2InvalidProtThroughMap() {
        String[][] cases = {
            {"rw+device+nc", "device"},
            {"rwx+device", "device"},
            {"rpx+device", "device"},
            {"rx+nc", "non-cacheable"},
        };
        for (String[] c : cases) {
            PageTableException e = rejected(() -> s2.map(IPA, 0x1000, PA, Prot.parse(c[0]), cache));
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e.getMessage()).startsWith("prot: " + c[0] + " is invalid for stage-2: ").contains(c[1])
                    .endsWith(" (EINVAL)");
        }
        assertEinval(rejected(() -> s2.map(IPA, 0x1000, PA, null, cache)), "prot: null is required (EINVAL)");
    }

    @Test
    void stage2IdentityMapRequiresIpaEqualsPa() {
        Stage2PageTable id = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 2, Stage2PageTable.IDMAP);
        PageTableException e = catchThrowableOfType(PageTableException.class,
                () -> id.map(0x1000, 0x1000, 0x2000, Prot.RW, cache));
        assertEinval(e, "pa: 0x2000 differs from ipa 0x1000 in an identity-mapped table (EINVAL)");
        assertThat(id.getLeaf(0x1000).valid()).isFalse();
        id.map(0x1000, 0x1000, 0x1000, Prot.RW, cache);
        assertThat(id.getLeaf(0x1000).valid()).isTrue();
        id.checkRefcounts();
    }

    @Test
    void stage2MapWithoutMemoryIsEnomemAndChangesNothing() {
        long fresh = 0x80_0000_0000L; // 512 GiB: needs a new L2 and L3 table below the L1 root
        PageTableException e = rejected(() -> s2.map(fresh, 0x1000, PA, Prot.RW, new MemCache(mem)));
        assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
        assertThat(e.address()).isEqualTo(fresh);
        assertThat(e.level()).isEqualTo(1); // 4K/40-bit starts at L1
        assertThat(e.getMessage()).isEqualTo("at 0x8000000000 level 1: a table is needed and the memory cache is empty (ENOMEM)");
        e = rejected(() -> s2.map(fresh, 0x1000, PA, Prot.RW, null));
        assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
        assertThat(e.getMessage()).contains("no memory cache was given");
        assertThat(s2.getLeaf(fresh).valid()).isFalse();
    }

    @Test
    void vmidOutOfRange() {
        Geometry g = Geometry.stage2(Granule.G4K, 40);
        long inUse = mem.framesInUse();
        for (int vmid : new int[] {65536, -1, Integer.MAX_VALUE}) {
            PageTableException e = catchThrowableOfType(PageTableException.class,
                    () -> new Stage2PageTable(g, mem, tlbs, vmid, 0));
            assertEinval(e, "vmid: " + vmid + " is outside 0..65535 (EINVAL)");
            // the root frames allocated before the check were given back
            assertThat(mem.framesInUse()).isEqualTo(inUse);
        }
        Stage2PageTable max = new Stage2PageTable(g, mem, tlbs, 65535, 0);
        assertThat(max.vttbr() >>> 48).isEqualTo(65535);
        max.destroy();
    }

    @Test
    void unknownTableFlagsAndMismatchedGeometry() {
        long inUse = mem.framesInUse();
        PageTableException e = catchThrowableOfType(PageTableException.class,
                () -> new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 3, 1 << 7));
        assertEinval(e, "tableFlags: 128 has unknown bits (EINVAL)");
        assertThat(mem.framesInUse()).isEqualTo(inUse);
        assertThatThrownBy(() -> new Stage2PageTable(Geometry.hyp(Granule.G4K, 48), mem, tlbs, 3, 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a stage-2 geometry");
        assertThatThrownBy(() -> new HypPageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a hyp geometry");
        assertThatThrownBy(() -> new Stage2PageTable(Geometry.stage2(Granule.G16K, 40), mem, tlbs, 3, 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("16k").hasMessageContaining("4k");
        assertThat(mem.framesInUse()).isEqualTo(inUse);
    }

    @Test
    void destroyedTableRejectsOperations() {
        Stage2PageTable t = new Stage2PageTable(Geometry.stage2(Granule.G4K, 40), mem, tlbs, 9, 0);
        t.destroy();
        assertThatThrownBy(() -> t.map(IPA, 0x1000, PA, Prot.RW, cache))
                .isInstanceOf(IllegalStateException.class).hasMessage("table was destroyed");
        assertThatThrownBy(() -> t.unmap(IPA, 0x1000)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(t::destroy).isInstanceOf(IllegalStateException.class);
    }

    // ---- hyp map/unmap --------------------------------------------------------------------------

    @Test
    void hypUnalignedArgumentsAndSizes() {
        assertEinval(rejected(() -> hyp.map(0x20_0800L, 0x1000, PA, Prot.RW)),
                "va: 0x200800 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> hyp.map(0x20_0000L, 0x1000, PA + 4, Prot.RW)),
                "pa: 0x80000004 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> hyp.map(0x20_0000L, 0x1001, PA, Prot.RW)),
                "size: 0x1001 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> hyp.map(0x20_0000L, 0, PA, Prot.RW)), "size: 0x0 is not positive (EINVAL)");
        assertEinval(rejected(() -> hyp.map(0x20_0000L, -0x2000, PA, Prot.RW)),
                "size: 0xffffffffffffe000 is not positive (EINVAL)");
        assertEinval(rejected(() -> hyp.unmap(0x10_0100L, 0x1000)),
                "va: 0x100100 is not aligned to the 4k granule (EINVAL)");
        assertEinval(rejected(() -> hyp.unmap(0x10_0000L, 0)), "size: 0x0 is not positive (EINVAL)");
        assertEinval(rejected(() -> hyp.unmap(0x10_0000L, 0x10)),
                "size: 0x10 is not aligned to the 4k granule (EINVAL)");
    }

    @Test
    void hypRangeBeyondTheVaSpaceIsErange() {
        long top = 1L << 48;
        PageTableException e = rejected(() -> hyp.map(top - 0x1000, 0x2000, PA, Prot.RW));
        assertThat(e.errno()).isEqualTo(Errno.ERANGE);
        assertThat(e.address()).isEqualTo(top - 0x1000);
        assertThat(e.getMessage()).startsWith("at 0xfffffffff000: ")
                .contains("range [0xfffffffff000, 0x1000000001000)").contains("48-bit").endsWith("(ERANGE)");
        e = rejected(() -> hyp.unmap(top, 0x1000));
        assertThat(e.errno()).isEqualTo(Errno.ERANGE);
        assertThat(e.getMessage()).contains("range [0x1000000000000, 0x1000000001000)");
    }

    @Test
    void hypPaBeyondThePaSize() {
        assertEinval(rejected(() -> hyp.map(0x20_0000L, 0x1000, 1L << 48, Prot.RW)),
                "pa: 0x1000000000000 + size 0x1000 exceeds the 48-bit physical address space (EINVAL)");
        assertEinval(rejected(() -> hyp.map(0x20_0000L, 0x1000, -0x1000L, Prot.RW)),
                "pa: 0xfffffffffffff000 + size 0x1000 exceeds the 48-bit physical address space (EINVAL)");
    }

    @Test
    void hypInvalidProtThroughMap() {
        String[][] cases = {
            {"w", "read"},
            {"none", "read"},
            {"rwx", "W^X"},
            {"rx+device", "device"},
        };
        for (String[] c : cases) {
            PageTableException e = rejected(() -> hyp.map(0x20_0000L, 0x1000, PA, Prot.parse(c[0])));
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e.getMessage()).startsWith("prot: " + c[0] + " is invalid for hyp: ").contains(c[1])
                    .endsWith(" (EINVAL)");
        }
        assertEinval(rejected(() -> hyp.map(0x20_0000L, 0x1000, PA, null)), "prot: null is required (EINVAL)");
    }

    @Test
    void hypMapOverADifferentLiveMappingIsEinvalAfterMappingWhatCameBefore() {
        // [0x10_0000, 0x10_2000) is mapped to PA (RW) in setUp. The first page of this range is
        // free; the second collides. As Linux 7.1-rc4's hyp_map_walker (WARN, -EINVAL, no dry
        // run), the free page is mapped and the walk stops at the live one (before: EEXIST and
        // nothing mapped).
        PageTableException e = catchThrowableOfType(PageTableException.class, () -> hyp.map(0x0F_F000L, 0x2000, PA + 0x5000, Prot.RW));
        assertThat(e.errno()).isEqualTo(Errno.EINVAL);
        assertThat(e.address()).isEqualTo(0x10_0000L);
        assertThat(e.level()).isEqualTo(3);
        assertThat(e.getMessage()).startsWith("at 0x100000 level 3: hyp map would replace the live page").endsWith("(EINVAL)");
        assertThat(hyp.getLeaf(0x0F_F000L).valid()).isTrue();
        assertThat(hyp.geometry().outputAddress(hyp.getLeaf(0x0F_F000L).pte())).isEqualTo(PA + 0x5000);
        // a permission change is not a silent remap either; nothing precedes the conflict here
        e = rejected(() -> hyp.map(0x10_0000L, 0x1000, PA, Prot.R));
        assertThat(e.errno()).isEqualTo(Errno.EINVAL);
    }
}
