package dev.ptlab.core.hw;

import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;

/**
 * The Xt operands of the by-IPA TLBIs, as the architecture lays them out (Arm ARM D8.17.5.1 and
 * D8.17.5.2; reference: tlb-and-two-stage.md §C, §D). Values are ours to encode and decode; no
 * LPA2 (DS = 1) base scaling: BaseADDR counts granules.
 *
 * <p>Non-range (IPAS2E1*, IPAS2LE1*): [47:44] TTL (TTL[3:2] granule 01 4K / 10 16K / 11 64K,
 * TTL[1:0] the leaf's level; 0 = no hint), [39:36] IPA[51:48], [35:0] IPA[47:12].
 *
 * <p>Range (RIPAS2E1*, RIPAS2LE1*): [47:46] TG, [45:44] SCALE, [43:39] NUM, [38:37] TTL (00 any
 * level, else the leaf's level 1..3), [36:0] BaseADDR in granules. The range is
 * {@code [BaseADDR, BaseADDR + (NUM + 1) * 2^(5 * SCALE + 1) granules)}.
 */
public final class TlbiOperand {
    private TlbiOperand() {}

    /** TG / TTL[3:2] value for a granule: 01 4K, 10 16K, 11 64K. */
    public static int tg(Granule g) {
        switch (g) {
            case G4K: return 1;
            case G16K: return 2;
            default: return 3;
        }
    }

    /** The granule a TG value names, or null for the reserved 00. */
    public static Granule granule(int tg) {
        switch (tg) {
            case 1: return Granule.G4K;
            case 2: return Granule.G16K;
            case 3: return Granule.G64K;
            default: return null;
        }
    }

    /** Operand of IPAS2E1IS/IPAS2LE1IS for {@code ipa} with a level hint (or {@link TlbMaintenance#LEVEL_UNKNOWN}). */
    public static long ipa(Granule g, long ipa, int level) {
        long v = ((ipa >>> 12) & ((1L << 36) - 1)) | ((ipa >>> 48) & 0xF) << 36;
        if (level != TlbMaintenance.LEVEL_UNKNOWN) {
            if (level < 0 || level > 3) throw PageTableException.invalidArgument("ttl", (Object) level, "is not a level 0..3");
            v |= (long) (tg(g) << 2 | level) << 44;
        }
        return v;
    }

    /** The IPA (rounded down to 4K) a non-range operand names. */
    public static long ipaOf(long operand) {
        return (operand & ((1L << 36) - 1)) << 12 | ((operand >>> 36) & 0xF) << 48;
    }

    /**
     * The level hint of a non-range operand for TLBs of granule {@code g}: its TTL[1:0], or
     * {@link TlbMaintenance#LEVEL_UNKNOWN} when TTL is 0 (no hint). A hint for another granule
     * is returned as -1: no TLB entry of {@code g} is required to be invalidated by it.
     */
    public static int ttlOf(long operand, Granule g) {
        int ttl = (int) ((operand >>> 44) & 0xF);
        if ((ttl >>> 2) == 0) return TlbMaintenance.LEVEL_UNKNOWN;
        if ((ttl >>> 2) != tg(g)) return -1;
        return ttl & 3;
    }

    /**
     * A range operand. {@code ttl} is the leaf level 1..3 or {@link TlbMaintenance#LEVEL_UNKNOWN}.
     *
     * @throws PageTableException naming the field that does not fit
     */
    public static long range(Granule g, long base, int scale, int num, int ttl) {
        if ((base & (g.pageSize() - 1)) != 0) throw PageTableException.invalidArgument("base", base, "is not granule-aligned");
        if (scale < 0 || scale > 3) throw PageTableException.invalidArgument("scale", (Object) scale, "is not 0..3");
        if (num < 0 || num > 31) throw PageTableException.invalidArgument("num", (Object) num, "is not 0..31");
        long baseAddr = base >>> g.shift();
        if (baseAddr >>> 37 != 0) throw PageTableException.invalidArgument("base", base, "does not fit BaseADDR[36:0]");
        int t = 0;
        if (ttl != TlbMaintenance.LEVEL_UNKNOWN) {
            if (ttl < 1 || ttl > 3) throw PageTableException.invalidArgument("ttl", (Object) ttl, "is not a range TTL level 1..3");
            t = ttl;
        }
        return (long) tg(g) << 46 | (long) scale << 44 | (long) num << 39 | (long) t << 37 | baseAddr;
    }

    /** Pages (granules) one range operand covers: {@code (NUM + 1) * 2^(5 * SCALE + 1)}. */
    public static long rangePages(long operand) {
        int scale = (int) ((operand >>> 44) & 3);
        int num = (int) ((operand >>> 39) & 31);
        return (long) (num + 1) << (5 * scale + 1);
    }

    /** The granule of a range operand's TG, or null if reserved. */
    public static Granule rangeGranule(long operand) {
        return granule((int) ((operand >>> 46) & 3));
    }

    /** First IPA of a range operand. */
    public static long rangeBase(long operand) {
        Granule g = rangeGranule(operand);
        return g == null ? 0 : (operand & ((1L << 37) - 1)) << g.shift();
    }

    /** The range operand's level hint, or {@link TlbMaintenance#LEVEL_UNKNOWN} for TTL 00. */
    public static int rangeTtl(long operand) {
        int t = (int) ((operand >>> 37) & 3);
        return t == 0 ? TlbMaintenance.LEVEL_UNKNOWN : t;
    }

    /** Most pages one range TLBI can cover (Linux MAX_TLBI_RANGE_PAGES: NUM 31, SCALE 3). */
    public static final long MAX_RANGE_PAGES = 32L << 16;

    /** Marks a non-range operand in {@link #split}'s output (bit 63 is RES0/NS in both encodings). */
    public static final long SINGLE = Long.MIN_VALUE;

    /**
     * How Linux's {@code __flush_s2_tlb_range_op} (Linux 7.1-rc4 {@code asm/tlbflush.h}, as KVM's
     * {@code kvm_tlb_flush_vmid_range} uses it with FEAT_TLBIRANGE, TTL unknown) covers
     * {@code pages} granules from {@code start}: a lone trailing page as a non-range IPAS2E1IS
     * (returned with {@link #SINGLE} or'ed in), everything else as range operands at the largest
     * SCALE that fits, then smaller ones. Chunks of at most {@link #MAX_RANGE_PAGES} as KVM splits.
     */
    public static java.util.List<Long> split(Granule g, long start, long pages) {
        java.util.List<Long> out = new java.util.ArrayList<>();
        long page = g.pageSize();
        long addr = start & -page;
        while (pages > 0) {
            long chunk = Math.min(pages, MAX_RANGE_PAGES);
            pages -= chunk;
            int scale = 3;
            while (chunk > 0) {
                if (chunk == 1) {
                    out.add(ipa(g, addr, TlbMaintenance.LEVEL_UNKNOWN) | SINGLE);
                    addr += page;
                    chunk--;
                    continue;
                }
                // NUM for this SCALE: as many steps of 2^(5*SCALE+1) pages as fit, at most 32.
                long num = Math.min(chunk >>> (5 * scale + 1), 32) - 1;
                if (num >= 0) {
                    long op = range(g, addr, scale, (int) num, TlbMaintenance.LEVEL_UNKNOWN);
                    long n = rangePages(op);
                    out.add(op);
                    addr += n * page;
                    chunk -= n;
                }
                scale--;
            }
        }
        return java.util.List.copyOf(out);
    }
}
