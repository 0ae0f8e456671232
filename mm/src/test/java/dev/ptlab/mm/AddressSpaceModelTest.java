package dev.ptlab.mm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.lists;
import static org.quicktheories.generators.SourceDSL.longs;

import dev.ptlab.core.Errno;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * Random sequences of mmap, munmap, mprotect, writeInt, readInt, fork, close, MADV_DONTNEED,
 * MADV_HUGEPAGE, reclaimPage and makeDeviceExclusive (+ unlock) over a 4 MiB window (two THP
 * blocks), in up to three processes, checked against a simple model after every step: per
 * process, each mapped page's protection and contents (a map of written words; private pages
 * copied by fork, shared ones shared). Contents are compared without faulting (a peek at the
 * entry: present, device-exclusive, swap, or the shared-memory object), so checking never changes
 * the state under test; then {@link Host#checkInvariants(boolean)} with no extra references.
 * At the end every process is closed and every page, slot and table frame must be back.
 */
class AddressSpaceModelTest {
    private static final long PAGE = 4096;
    private static final long BASE = 0x4000_0000L;
    private static final int WINDOW_PAGES = 1024;

    /** Contents of one page: written words by offset. Shared pages share the object. */
    static final class Cell {
        final Map<Integer, Integer> words = new HashMap<>();

        Cell copy() {
            Cell c = new Cell();
            c.words.putAll(words);
            return c;
        }
    }

    static final class PageModel {
        int prot;
        final boolean shared;
        Cell cell;

        PageModel(int prot, boolean shared, Cell cell) {
            this.prot = prot;
            this.shared = shared;
            this.cell = cell;
        }
    }

    static final class Proc {
        final AddressSpace mm;
        final TreeMap<Integer, PageModel> pages = new TreeMap<>();

        Proc(AddressSpace mm) {
            this.mm = mm;
        }
    }

    @Test
    void randomOperationSequencesMatchTheModel() {
        // -Dmm.model.seed / -Dmm.model.examples explore further than the fixed CI run.
        qt().withFixedSeed(Long.getLong("mm.model.seed", 0x6D6D_5EEDL)).withExamples(Integer.getInteger("mm.model.examples", 100))
                .forAll(lists().of(longs().all()).ofSizeBetween(1, 80))
                .checkAssert(this::run);
    }

    private void run(List<Long> ops) {
        Host host = MmFixture.host(1);
        List<Proc> procs = new ArrayList<>();
        procs.add(new Proc(host.newAddressSpace()));
        StringBuilder log = new StringBuilder();
        try {
            for (long r : ops) {
                step(host, procs, r, log);
                for (Proc p : procs) check(host, p, log);
                host.checkInvariants(true);
            }
            for (Proc p : procs) p.mm.close();
            MmFixture.assertAllReturned(host);
            assertThat(host.tableMemory().framesInUse()).isZero();
        } catch (RuntimeException | AssertionError e) {
            throw new AssertionError("after " + log + ": " + e, e);
        }
    }

    private static int bits(long r, int shift, int n) {
        return (int) ((r >>> shift) & ((1L << n) - 1));
    }

    private void step(Host host, List<Proc> procs, long r, StringBuilder log) {
        int kind = Math.floorMod(r, 14);
        Proc p = procs.get(bits(r, 8, 8) % procs.size());
        boolean blocks = bits(r, 30, 2) == 0;
        // Whole THP blocks now and then, so THP faults, splits and block copies happen.
        int page = blocks ? 512 * bits(r, 32, 1) : bits(r, 16, 10);
        if (kind >= 3 && kind != 8 && !p.pages.isEmpty() && bits(r, 52, 3) != 0) {
            // Mostly aim at mapped pages, or nearly every access would just be SIGSEGV.
            Integer[] mapped = p.pages.keySet().toArray(new Integer[0]);
            page = mapped[bits(r, 16, 10) % mapped.length];
        }
        int len = Math.min(blocks ? 512 * (1 + bits(r, 33, 1)) : 1 + bits(r, 26, 4), WINDOW_PAGES - page);
        int prot = bits(r, 34, 1) == 0 ? Mman.PROT_READ | Mman.PROT_WRITE : bits(r, 35, 3);
        boolean shared = bits(r, 38, 2) == 0;
        int value = (int) (r >>> 40) | 1;
        long addr = BASE + page * PAGE;
        long word = addr + 4L * (bits(r, 55, 2) == 0 ? 0 : bits(r, 42, 10));
        int pi = procs.indexOf(p);
        AddressSpace mm = p.mm;
        switch (kind) {
            case 0: {
                log.append(String.format(" p%d.mmap(+%d,%d,%s,%s)", pi, page, len, Mman.protString(prot), shared ? "shared" : "private"));
                mm.mmap(addr, len * PAGE, prot, (shared ? Mman.MAP_SHARED : Mman.MAP_PRIVATE) | Mman.MAP_FIXED);
                if (blocks && bits(r, 60, 1) == 0) {
                    log.append(" +hugepage");
                    mm.madvise(addr, len * PAGE, Mman.MADV_HUGEPAGE);
                }
                for (int i = page; i < page + len; i++) p.pages.put(i, new PageModel(prot, shared, new Cell()));
                return;
            }
            case 1:
                log.append(String.format(" p%d.munmap(+%d,%d)", pi, page, len));
                mm.munmap(addr, len * PAGE);
                for (int i = page; i < page + len; i++) p.pages.remove(i);
                return;
            case 2: {
                log.append(String.format(" p%d.mprotect(+%d,%d,%s)", pi, page, len, Mman.protString(prot)));
                boolean covered = true;
                for (int i = page; i < page + len; i++) covered &= p.pages.containsKey(i);
                if (!covered) {
                    expectErrno(Errno.ENOMEM, () -> mm.mprotect(addr, len * PAGE, prot));
                    return;
                }
                mm.mprotect(addr, len * PAGE, prot);
                for (int i = page; i < page + len; i++) p.pages.get(i).prot = prot;
                return;
            }
            case 3: case 4: case 5: {
                PageModel m = p.pages.get(pageOf(word));
                log.append(String.format(" p%d.write(+%d:%d)", pi, pageOf(word), word & (PAGE - 1)));
                if (m == null || (m.prot & Mman.PROT_WRITE) == 0) {
                    expectSegv(() -> mm.writeInt(word, value));
                    return;
                }
                mm.writeInt(word, value);
                m.cell.words.put((int) (word & (PAGE - 1)), value);
                return;
            }
            case 6: case 7: {
                PageModel m = p.pages.get(pageOf(word));
                log.append(String.format(" p%d.read(+%d)", pi, pageOf(word)));
                if (m == null || (m.prot & (Mman.PROT_READ | Mman.PROT_WRITE)) == 0) {
                    expectSegv(() -> mm.readInt(word));
                    return;
                }
                assertThat(mm.readInt(word)).as("read").isEqualTo(m.cell.words.getOrDefault((int) (word & (PAGE - 1)), 0));
                return;
            }
            case 8: {
                if (procs.size() >= 3) return;
                log.append(String.format(" p%d.fork", pi));
                Proc c = new Proc(mm.fork());
                for (Map.Entry<Integer, PageModel> e : p.pages.entrySet()) {
                    PageModel m = e.getValue();
                    c.pages.put(e.getKey(), new PageModel(m.prot, m.shared, m.shared ? m.cell : m.cell.copy()));
                }
                procs.add(c);
                return;
            }
            case 9: {
                log.append(String.format(" p%d.dontneed(+%d,%d)", pi, page, len));
                boolean covered = true;
                for (int i = page; i < page + len; i++) {
                    PageModel m = p.pages.get(i);
                    if (m == null) covered = false;
                    else if (!m.shared) m.cell = new Cell(); // private: refaults as zeros; shared: the object keeps it
                }
                if (covered) mm.madvise(addr, len * PAGE, Mman.MADV_DONTNEED);
                else expectErrno(Errno.ENOMEM, () -> mm.madvise(addr, len * PAGE, Mman.MADV_DONTNEED));
                return;
            }
            case 10:
                log.append(String.format(" p%d.reclaim(+%d)", pi, page));
                mm.reclaimPage(addr);
                return;
            case 11: {
                PageModel m = p.pages.get(page);
                log.append(String.format(" p%d.devx(+%d)", pi, page));
                if (m == null || (m.prot & Mman.PROT_WRITE) == 0) {
                    expectErrno(Errno.EFAULT, () -> mm.makeDeviceExclusive(addr, "dev"));
                } else if (m.shared) {
                    expectErrno(Errno.EOPNOTSUPP, () -> mm.makeDeviceExclusive(addr, "dev"));
                } else {
                    Folio f = mm.makeDeviceExclusive(addr, "dev");
                    assertThat(HostPte.isDeviceExclusive(mm.pte(addr))).isTrue();
                    f.unlock();
                    f.put();
                }
                return;
            }
            case 12: {
                log.append(String.format(" p%d.hugepage(+%d,%d)", pi, page, len));
                boolean covered = true;
                for (int i = page; i < page + len; i++) covered &= p.pages.containsKey(i);
                if (covered) mm.madvise(addr, len * PAGE, Mman.MADV_HUGEPAGE);
                else expectErrno(Errno.ENOMEM, () -> mm.madvise(addr, len * PAGE, Mman.MADV_HUGEPAGE));
                return;
            }
            default: {
                if (procs.size() < 2) return;
                log.append(String.format(" p%d.close", pi));
                mm.close();
                procs.remove(p);
            }
        }
    }

    private static int pageOf(long addr) {
        return (int) ((addr - BASE) / PAGE);
    }

    private static void expectSegv(Runnable r) {
        try {
            r.run();
        } catch (SegmentationFault e) {
            return;
        }
        throw new AssertionError("expected SIGSEGV");
    }

    private static void expectErrno(Errno errno, Runnable r) {
        try {
            r.run();
        } catch (MmException e) {
            assertThat(e.errno()).isEqualTo(errno);
            return;
        }
        throw new AssertionError("expected " + errno);
    }

    /** The process's VMAs and contents agree with its model (contents read without faulting). */
    private void check(Host host, Proc p, StringBuilder log) {
        int[] protOf = new int[WINDOW_PAGES];
        java.util.Arrays.fill(protOf, -1);
        for (Vma v : p.mm.vmas()) {
            for (long a = v.start(); a < v.end(); a += PAGE) {
                int i = pageOf(a);
                assertThat(i).as("VMA %s inside the window", v).isBetween(0, WINDOW_PAGES - 1);
                protOf[i] = v.prot();
            }
        }
        for (int i = 0; i < WINDOW_PAGES; i++) {
            PageModel m = p.pages.get(i);
            assertThat(protOf[i]).as("prot of page %d", i).isEqualTo(m == null ? -1 : m.prot);
        }
        for (Map.Entry<Integer, PageModel> e : p.pages.entrySet()) {
            long page = BASE + e.getKey() * PAGE;
            for (Map.Entry<Integer, Integer> w : e.getValue().cell.words.entrySet()) {
                assertThat(peek(host, p.mm, page + w.getKey())).as("word at page %d + %d", e.getKey(), w.getKey())
                        .isEqualTo(w.getValue());
            }
            if (!e.getValue().cell.words.containsKey(0)) {
                assertThat(peek(host, p.mm, page)).as("unwritten word at page %d", e.getKey()).isZero();
            }
        }
    }

    /** The int at {@code addr} as the process would read it, without faulting anything in. */
    static int peek(Host host, AddressSpace mm, long addr) {
        long pte = mm.pte(addr);
        long off = addr & (PAGE - 1);
        if (HostPte.isPresent(pte)) {
            long size = mm.geometry().granule().levelSize(mm.pteLevel(addr));
            long pa = HostPte.pa(mm.geometry(), pte) + (addr & (size - 1));
            Folio f = host.memory().folioOf(pa);
            return f.readInt(pa - f.pa());
        }
        if (HostPte.isDeviceExclusive(pte)) {
            Folio f = host.memory().folioOf(HostPte.swapOffset(pte) * PAGE);
            return f.readInt(off);
        }
        if (HostPte.isSwap(pte)) {
            long[] words = host.swap().read(HostPte.swapOffset(pte));
            return words == null ? 0 : (int) (words[(int) (off >>> 3)] >>> ((off & 4) * 8));
        }
        Vma v = mm.findVma(addr);
        if (v != null && v.shared()) {
            Folio f = v.sharedMemory().folio(v.sharedOffset() + (addr - v.start()));
            return f == null ? 0 : f.readInt((v.sharedOffset() + (addr - v.start())) & (f.size() - 1));
        }
        return 0;
    }
}
