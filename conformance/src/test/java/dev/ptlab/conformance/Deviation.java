package dev.ptlab.conformance;

import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.OutputAddressFormat;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.image.TableImage;
import java.util.List;

/**
 * A known, explained difference between QEMU 7.2's answer and ptlab's. Each names the
 * architectural rule (Arm ARM pseudocode function) and says why ptlab's answer is the one the
 * project keeps. A disagreement that no deviation explains fails the test.
 */
enum Deviation {
    /**
     * AArch64.DecodeDescriptorType() treats a block descriptor (bits[1:0] = 0b01) as invalid, a
     * Translation fault at its level, unless AArch64.BlockDescSupported() allows a block there:
     * 4KB at level 0 only with DS = 1, 16KB at level 1 only with DS = 1, never at level -1. QEMU 7.2
     * accepts a block at every level but 3 ("we implemented only a partial version of this check
     * which assumes that block descriptors are valid at all levels except level 3": Peter Maydell,
     * "target/arm: Fault on invalid block descriptors", 2023-08, fixed in QEMU 8.2). ptlab keeps
     * the Translation fault.
     */
    QEMU_ACCEPTS_INVALID_BLOCK_LEVELS("QEMU 7.2 accepts block descriptors at levels AArch64.BlockDescSupported() rejects"
            + " (4K level 0 / 16K level 1 without DS, level -1); ptlab keeps the Translation fault"),
    /**
     * AArch64.BlockDescSupported() allows a 64KB-granule block at level 1 when AArch64.PAMax() ==
     * 52, i.e. on any CPU implementing 52-bit PAs (FEAT_LPA), whatever VTCR/TCR.PS selects. QEMU's
     * {@code -cpu max} implements FEAT_LPA; ptlab's Mmu models a CPU whose PA size is the table's
     * output format, 48 bits for PA48 tables, where the same descriptor is invalid (a Translation
     * fault at level 1). Not a QEMU bug: the architecture's answer depends on the implementation,
     * and both answers are the architecture's for their CPU.
     */
    PAMAX_52_ALLOWS_64K_LEVEL1_BLOCKS("64K level-1 block in a PA48 table: valid on QEMU's FEAT_LPA CPU (PAMax 52), invalid"
            + " on the PAMax-48 CPU ptlab models for PA48 tables (AArch64.BlockDescSupported)"),
    /**
     * AArch64.S2InvalidSL() accepts VTCR_EL2.SL0 = 0b11 with the 16KB granule when DS = 1
     * (FEAT_LPA2): the stage-2 walk starts at level 0, as a 52-bit IPA needs. QEMU 7.2's
     * check_s2_mmu_setup() rejects start level 0 for 16KB pages outright, so every stage-2 walk of
     * such a table is a Translation fault at level 0 (fixed in QEMU 8.0 by Richard Henderson,
     * "target/arm: Rewrite check_s2_mmu_setup", which mirrors AArch64.S2InvalidSL). ptlab keeps the
     * walk.
     */
    QEMU_REJECTS_16K_STAGE2_START_LEVEL_0("QEMU 7.2 refuses a 16K stage-2 walk starting at level 0 (VTCR.SL0 = 3, DS = 1),"
            + " which AArch64.S2InvalidSL() allows; ptlab keeps the walk");

    final String summary;

    Deviation(String summary) {
        this.summary = summary;
    }

    /** The deviation that explains QEMU answering {@code qemu} where ptlab answered {@code ours}, or null. */
    static Deviation explain(TableCase c, long addr, String ours, String qemu) {
        if (c.stage2 && c.g.granule() == Granule.G16K && c.g.startLevel() == 0 && qemu.equals("translation level 0 (stage 2)")) {
            return QEMU_REJECTS_16K_STAGE2_START_LEVEL_0;
        }
        List<TableImage.Step> chain = c.image.chain(addr);
        if (chain.isEmpty()) return null;
        TableImage.Step last = chain.get(chain.size() - 1);
        boolean block = last.level() < Granule.LAST_LEVEL && (last.descriptor() & Pte.TYPE_MASK) == Pte.VALID;
        if (!block || c.g.hardwareLeafAllowed(last.level())) return null;
        if (!ours.equals("translation level " + last.level() + (c.stage2 ? " (stage 2)" : " (stage 1)"))) return null;
        if (qemu.startsWith("translation level " + last.level() + " ")) return null; // they agree after all
        if (c.g.granule() == Granule.G64K && last.level() == 1 && c.g.oaFormat() == OutputAddressFormat.PA48) {
            return PAMAX_52_ALLOWS_64K_LEVEL1_BLOCKS;
        }
        return QEMU_ACCEPTS_INVALID_BLOCK_LEVELS;
    }
}
