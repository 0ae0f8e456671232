package dev.ptlab.core.image;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Registers;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.table.Stage2PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A table laid out as a raw memory image that hardware (or QEMU) can walk: every reachable table
 * frame copied into one contiguous little-endian block starting at physical address {@link #base},
 * root frames first (a concatenated stage-2 root keeps its frames contiguous, and the base must be
 * aligned to the root's total size), then the other frames in walk order. Each table descriptor is
 * rewritten to point at its table's new address (every other bit kept); leaf and invalid
 * descriptors are copied unchanged, so the image translates every address exactly as the table
 * does.
 *
 * <p>The image also carries the system-register values that make hardware use it: VTCR_EL2,
 * VTTBR_EL2 (with the table's VMID) and the HCR_EL2 bits for a stage-2 table; TCR_EL2, TTBR0_EL2
 * and MAIR_EL2 for a hyp table. Their PS field is the physical-address size given at export
 * (default: the output format's width).
 *
 * <p>The table is read only through its public walk, so the image is a snapshot: later changes to
 * the table do not show in it.
 */
public final class TableImage {
    /** HCR_EL2.VM: stage-2 translation on. */
    public static final long HCR_VM = 1L;
    /** HCR_EL2.RW: EL1 is AArch64. */
    public static final long HCR_RW = 1L << 31;

    private final Geometry geometry;
    private final long base;
    private final int paBits;
    private final int entries;
    private final long pageSize;
    private final long[] words;
    private final int frames;
    private final boolean stage2;
    private final int vmid;
    private final boolean fwb;

    private TableImage(Geometry geometry, long base, int paBits, List<long[]> frameList, int vmid, boolean fwb) {
        this.geometry = geometry;
        this.base = base;
        this.paBits = paBits;
        this.entries = geometry.granule().entriesPerTable();
        this.pageSize = geometry.granule().pageSize();
        this.frames = frameList.size();
        this.words = new long[Math.multiplyExact(frames, entries)];
        for (int i = 0; i < frames; i++) System.arraycopy(frameList.get(i), 0, words, i * entries, entries);
        this.stage2 = geometry.stage() == Stage.STAGE2;
        this.vmid = vmid;
        this.fwb = fwb;
    }

    /** {@link #of(PageTable, long, int)} with the output format's physical-address size. */
    public static TableImage of(PageTable table, long base) {
        if (table == null) throw new IllegalArgumentException("table: null");
        return of(table, base, table.geometry().paBits());
    }

    /**
     * Lays out {@code table} as an image starting at physical address {@code base}.
     *
     * @param paBits the physical-address size to program in VTCR_EL2.PS / TCR_EL2.PS: one of 32,
     *     36, 40, 42, 44, 48 for a 48-bit output format (at least the IPA size for stage-2, which
     *     cannot take a larger IPA than PA), and 52 for a 52-bit format
     * @throws PageTableException EINVAL naming {@code base} or {@code paBits} when the image cannot
     *     be placed there: base not aligned to the granule, or to the concatenated root's size, or
     *     the image reaching past {@code 2^paBits}
     */
    public static TableImage of(PageTable table, long base, int paBits) {
        if (table == null) throw new IllegalArgumentException("table: null");
        Geometry g = table.geometry();
        checkPaBits(g, paBits);
        Granule gran = g.granule();
        long rootBytes = (long) g.rootPages() * gran.pageSize();
        if (base < 0 || (base & (gran.pageSize() - 1)) != 0) {
            throw PageTableException.invalidArgument("base", base, "is not a non-negative multiple of the "
                    + gran.label() + " granule");
        }
        if ((base & (rootBytes - 1)) != 0) {
            throw PageTableException.invalidArgument("base", base, "is not aligned to the " + g.rootPages()
                    + " concatenated root tables (0x" + Long.toHexString(rootBytes) + " bytes): hardware needs the root"
                    + " aligned to its size");
        }
        Collector c = new Collector(g, base);
        table.walk(0, g.iaLimit(), c, WalkFlags.LEAF | WalkFlags.TABLE_PRE, WalkPolicy.RANGE);
        long size = (long) c.frames.size() * gran.pageSize();
        long end = base + size;
        if (end < base || (paBits < 64 && end > 1L << paBits)) {
            throw PageTableException.invalidArgument("base", base, "+ image size 0x" + Long.toHexString(size)
                    + " reaches past the " + paBits + "-bit physical address space (limit 0x"
                    + Long.toHexString(1L << paBits) + ")");
        }
        int vmid = table instanceof Stage2PageTable ? ((Stage2PageTable) table).vmid() : 0;
        boolean fwb = table instanceof Stage2PageTable && ((Stage2PageTable) table).fwb();
        return new TableImage(g, base, paBits, c.frames, vmid, fwb);
    }

    private static void checkPaBits(Geometry g, int paBits) {
        Registers.psField(paBits); // an argument error naming pa-bits for a size no PS value encodes
        if (g.oaFormat() == OutputAddressFormat.PA48 ? paBits > 48 : paBits != 52) {
            throw PageTableException.invalidArgument("pa-bits", (Object) paBits, g.oaFormat() == OutputAddressFormat.PA48
                    ? "exceeds the 48-bit output format PA48 (52-bit physical addresses need LPA2 or PA52_64K descriptors)"
                    : "is not 52: " + g.oaFormat() + " descriptors carry 52-bit output addresses");
        }
        if (g.stage() == Stage.STAGE2 && paBits < g.iaBits()) {
            throw PageTableException.invalidArgument("pa-bits", (Object) paBits, "is below the " + g.iaBits()
                    + "-bit IPA size (a stage-2 IPA cannot be larger than the PA size)");
        }
    }

    /**
     * Copies every entry into its frame's place in the image. The walk is depth-first and visits
     * a table entry (TABLE_PRE) before the entries of its table, so each table gets its image
     * index before anything is written into it. A frame is named by its level and the first
     * address it maps, which is all the walk's public context tells about where an entry lives.
     */
    private static final class Collector implements dev.ptlab.core.walk.Visitor {
        final Geometry g;
        final long base;
        final List<long[]> frames = new ArrayList<>();
        final Map<Long, Integer> index = new HashMap<>();
        final long pageSize;
        final int entries;

        Collector(Geometry g, long base) {
            this.g = g;
            this.base = base;
            this.pageSize = g.granule().pageSize();
            this.entries = g.granule().entriesPerTable();
            for (int i = 0; i < g.rootPages(); i++) frames.add(new long[entries]);
        }

        private int frameOf(int level, long entryBase) {
            if (level == g.startLevel()) return g.rootPageIndex(entryBase);
            long span = g.granule().levelSize(level - 1);
            Integer i = index.get(key(level, entryBase & -span));
            if (i == null) throw new IllegalStateException("entry at 0x" + Long.toHexString(entryBase) + " level " + level
                    + " visited before its table");
            return i;
        }

        private static long key(int level, long frameBase) {
            return frameBase | (level + 2);
        }

        @Override
        public Status visit(VisitContext ctx, Visit visit) {
            int level = ctx.level();
            long entryBase = ctx.entryBase();
            long old = ctx.old();
            long[] frame = frames.get(frameOf(level, entryBase));
            int slot = g.granule().index(entryBase, level);
            if (visit == Visit.TABLE_PRE) {
                int child = frames.size();
                frames.add(new long[entries]);
                index.put(key(level + 1, entryBase), child);
                long childPa = base + child * pageSize;
                frame[slot] = (old & ~g.addressMask()) | g.encodeAddress(childPa);
            } else {
                frame[slot] = old;
            }
            return Status.OK;
        }
    }

    public Geometry geometry() { return geometry; }
    /** Physical address of the image's first byte: the (first) root table. */
    public long base() { return base; }
    /** Root table address: the base address field of VTTBR_EL2 / TTBR0_EL2. */
    public long rootPa() { return base; }
    /** Size in bytes: {@link #frames} table frames. */
    public long size() { return (long) frames * pageSize; }
    /** Table frames in the image (the concatenated root counts one per frame). */
    public int frames() { return frames; }
    /** Physical-address size programmed in the PS fields. */
    public int paBits() { return paBits; }
    public boolean stage2() { return stage2; }
    /** The stage-2 table's VMID (in VTTBR_EL2), 0 for hyp. */
    public int vmid() { return vmid; }
    /** Whether the stage-2 table was built for HCR_EL2.FWB (its MemAttr encoding depends on it). */
    public boolean fwb() { return fwb; }

    /** True if {@code pa} is the address of a descriptor inside the image. */
    public boolean contains(long pa) {
        return pa >= base && pa - base < size() && (pa & 7) == 0;
    }

    /** The descriptor at physical address {@code pa} (8-byte aligned, inside the image). */
    public long read(long pa) {
        if (!contains(pa)) {
            throw PageTableException.invalidArgument("pa", pa, "is not a descriptor address inside the image [0x"
                    + Long.toHexString(base) + ", 0x" + Long.toHexString(base + size()) + ")");
        }
        return words[(int) ((pa - base) >>> 3)];
    }

    /** The image as bytes, little-endian, as hardware reads it from memory. */
    public byte[] bytes() {
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(size())).order(ByteOrder.LITTLE_ENDIAN);
        b.asLongBuffer().put(words);
        return b.array();
    }

    public void writeTo(OutputStream out) throws IOException {
        out.write(bytes());
    }

    public void write(Path file) throws IOException {
        Files.write(file, bytes());
    }

    // ---- register values ----

    private long withPs(long reg) {
        return (reg & ~(7L << Registers.PS_SHIFT)) | Registers.psField(paBits) << Registers.PS_SHIFT;
    }

    private void need(boolean stage2Wanted, String name) {
        if (stage2 != stage2Wanted) {
            throw new IllegalStateException(name + " belongs to a " + (stage2Wanted ? "stage-2" : "hyp") + " image; this one is "
                    + (stage2 ? "stage-2" : "hyp"));
        }
    }

    /** VTCR_EL2: T0SZ, SL0, TG0, PS, 16-bit VMIDs, DS with LPA2; HA clear (AF = 0 faults). */
    public long vtcr() {
        need(true, "VTCR_EL2");
        return withPs(Registers.vtcr(geometry, false));
    }

    /** VTTBR_EL2: VMID and the root's address. */
    public long vttbr() {
        need(true, "VTTBR_EL2");
        return Registers.vttbr(geometry, base, vmid);
    }

    /** The HCR_EL2 bits a stage-2 image needs: VM, RW, and FWB if the table was built for it. */
    public long hcr() {
        need(true, "HCR_EL2");
        return HCR_VM | HCR_RW | Registers.hcrFwb(fwb);
    }

    /** TCR_EL2 (non-VHE EL2 regime): T0SZ, TG0, PS, DS with LPA2; HA clear. */
    public long tcrEl2() {
        need(false, "TCR_EL2");
        return withPs(Registers.tcrEl2(geometry, false));
    }

    public long ttbr0El2() {
        need(false, "TTBR0_EL2");
        return Registers.ttbr0El2(geometry, base);
    }

    /** MAIR_EL2 matching the hyp descriptors' AttrIndx values. */
    public long mairEl2() {
        need(false, "MAIR_EL2");
        return Registers.mairEl2();
    }

    /** The register values by architectural name, in the order a boot loader writes them. */
    public Map<String, Long> registers() {
        Map<String, Long> m = new LinkedHashMap<>();
        if (stage2) {
            m.put("VTCR_EL2", vtcr());
            m.put("VTTBR_EL2", vttbr());
            m.put("HCR_EL2", hcr());
        } else {
            m.put("MAIR_EL2", mairEl2());
            m.put("TCR_EL2", tcrEl2());
            m.put("TTBR0_EL2", ttbr0El2());
        }
        return Collections.unmodifiableMap(m);
    }

    // ---- reading it back ----

    /** One descriptor a hardware walk reads: its level, where it is, and its value. */
    public record Step(int level, long pa, long descriptor) {
        @Override
        public String toString() {
            return String.format("L%d [0x%x] = 0x%016x", level, pa, descriptor);
        }
    }

    /**
     * The descriptors a hardware walk of {@code addr} reads in the image, root first, ending at the
     * first one that is not a table descriptor (or that points outside the image). Empty when
     * {@code addr} is outside the input-address space.
     */
    public List<Step> chain(long addr) {
        List<Step> out = new ArrayList<>();
        if (addr < 0 || addr >= geometry.iaLimit()) return out;
        Granule g = geometry.granule();
        long table = base + geometry.rootPageIndex(addr) * pageSize;
        for (int level = geometry.startLevel(); level <= Granule.LAST_LEVEL; level++) {
            long pa = table + (long) g.index(addr, level) * Granule.BYTES_PER_ENTRY;
            long d = read(pa);
            out.add(new Step(level, pa, d));
            if (!Pte.isTable(d, level)) break;
            table = geometry.outputAddress(d);
            if (!contains(table)) break;
        }
        return out;
    }

    /** {@link #chain} as one line: {@code L1 [0x...] = 0x... -> L2 [0x...] = 0x...}. */
    public String describeChain(long addr) {
        List<Step> c = chain(addr);
        if (c.isEmpty()) return "(no descriptor: 0x" + Long.toHexString(addr) + " is outside the " + geometry.iaBits()
                + "-bit input-address space)";
        StringBuilder sb = new StringBuilder();
        for (Step s : c) sb.append(sb.length() == 0 ? "" : " -> ").append(s);
        return sb.toString();
    }

    @Override
    public String toString() {
        return (stage2 ? "stage-2" : "hyp") + " image of " + geometry + ": " + frames + " frames at [0x"
                + Long.toHexString(base) + ", 0x" + Long.toHexString(base + size()) + "), PS " + paBits + " bits";
    }
}
