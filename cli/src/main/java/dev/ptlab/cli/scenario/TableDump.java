package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.arch.Geometry;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.arch.Stage;
import dev.ptlab.core.table.PageTable;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.Visit;
import dev.ptlab.core.walk.VisitContext;
import dev.ptlab.core.walk.Visitor;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.io.PrintWriter;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * The compact table tree of {@code dump}. One walk over the whole input range (LEAF, TABLE_PRE,
 * TABLE_POST) builds it:
 * <ul>
 *   <li>zero entries are omitted (holes show as gaps between ranges);</li>
 *   <li>consecutive leaves at one level with the same attributes and consecutive output addresses
 *       are one run line ({@code 512 x 4K pages -> 0x80000000.. rw});</li>
 *   <li>a table whose entries are one run covering its whole span is folded into that run, which
 *       then merges with its neighbours, so 1 GiB of 4K pages is one line naming the 513 tables
 *       it spans; any other table is shown as its own line (level and frame PA) with its entries
 *       indented beneath.</li>
 * </ul>
 */
final class TableDump {
    /** A run of equal (invalid) or consecutive (valid) leaves, possibly spanning folded tables. */
    private static final class Run {
        long start;
        long end;
        final int level;
        long count;
        final boolean valid;
        final long firstPte;
        final long firstPa;
        long nextPa;
        final long attrs;
        /** Folded table frames, indexed by the level of their entries + 1. */
        final long[] tables = new long[Granule.LAST_LEVEL + 2];
        long lastTablePa;
        int lastTableLevel;

        Run(long start, long span, int level, long pte, Geometry g) {
            this.start = start;
            this.end = start + span;
            this.level = level;
            this.count = 1;
            this.valid = Pte.isValid(pte);
            this.firstPte = pte;
            this.firstPa = valid ? g.outputAddress(pte) : 0;
            this.nextPa = firstPa + span;
            this.attrs = pte & ~g.addressMask();
        }

        boolean joins(Run b) {
            if (end != b.start || level != b.level || valid != b.valid) return false;
            return valid ? attrs == b.attrs && nextPa == b.firstPa : firstPte == b.firstPte;
        }

        void absorb(Run b) {
            end = b.end;
            count += b.count;
            nextPa = b.nextPa;
            for (int i = 0; i < tables.length; i++) tables[i] += b.tables[i];
        }

        long tableCount() {
            long n = 0;
            for (long t : tables) n += t;
            return n;
        }
    }

    /** A table shown as its own line, with its entries beneath. */
    private static final class Node {
        final long start;
        final long end;
        final int level;
        final long framePa;
        final List<Object> items = new ArrayList<>();

        Node(long start, long end, int level, long framePa) {
            this.start = start;
            this.end = end;
            this.level = level;
            this.framePa = framePa;
        }

        void add(Object item) {
            if (item instanceof Run && !items.isEmpty() && items.get(items.size() - 1) instanceof Run) {
                Run last = (Run) items.get(items.size() - 1);
                Run r = (Run) item;
                if (last.joins(r)) {
                    last.absorb(r);
                    return;
                }
            }
            items.add(item);
        }
    }

    private final PageTable table;
    private final Geometry g;
    private final boolean fwb;
    private final long[] framesByLevel = new long[Granule.LAST_LEVEL + 2];

    private TableDump(PageTable table, boolean fwb) {
        this.table = table;
        this.g = table.geometry();
        this.fwb = fwb;
    }

    /** Prints the header and the tree of {@code table}. */
    static void print(PageTable table, String header, boolean fwb, PrintWriter out) {
        new TableDump(table, fwb).print(header, out);
    }

    private Node build() {
        Node root = new Node(0, g.iaLimit(), g.startLevel(), table.rootPa());
        framesByLevel[g.startLevel() + 1] += g.rootPages();
        Deque<Node> stack = new ArrayDeque<>();
        stack.push(root);
        Visitor v = (VisitContext ctx, Visit visit) -> {
            switch (visit) {
                case TABLE_PRE: {
                    long base = ctx.entryBase();
                    stack.push(new Node(base, base + ctx.entrySpan(), ctx.level() + 1, ctx.childTable()));
                    framesByLevel[ctx.level() + 2]++;
                    break;
                }
                case TABLE_POST: {
                    Object done = fold(stack.pop());
                    stack.peek().add(done);
                    break;
                }
                default:
                    if (ctx.old() != 0) {
                        stack.peek().add(new Run(ctx.entryBase(), ctx.entrySpan(), ctx.level(), ctx.old(), g));
                    }
            }
            return Status.OK;
        };
        table.walk(0, g.iaLimit(), v, WalkFlags.LEAF | WalkFlags.TABLE_PRE | WalkFlags.TABLE_POST, WalkPolicy.RANGE);
        return root;
    }

    /** A table that is one run over its whole span becomes that run; any other stays a node. */
    private static Object fold(Node n) {
        if (n.items.size() == 1 && n.items.get(0) instanceof Run) {
            Run r = (Run) n.items.get(0);
            if (r.start == n.start && r.end == n.end) {
                r.tables[n.level + 1]++;
                r.lastTablePa = n.framePa;
                r.lastTableLevel = n.level;
                return r;
            }
        }
        return n;
    }

    private void print(String header, PrintWriter out) {
        Node root = build();
        long frames = 0;
        StringBuilder byLevel = new StringBuilder();
        for (int i = 0; i < framesByLevel.length; i++) {
            if (framesByLevel[i] == 0) continue;
            frames += framesByLevel[i];
            byLevel.append(byLevel.length() == 0 ? "" : ", ").append("L").append(i - 1).append(' ').append(framesByLevel[i]);
        }
        out.println(header);
        out.println("table frames: " + frames + " (" + Numbers.size(frames * g.granule().pageSize()) + "): " + byLevel);
        List<String[]> lines = new ArrayList<>();
        String rootLine = "L" + root.level + " root table " + Numbers.hex(root.framePa)
                + (g.rootPages() > 1 ? " (" + g.rootPages() + " concatenated frames)" : "");
        lines.add(new String[] {"", rootLine});
        render(root, "  ", lines);
        if (root.items.isEmpty()) lines.add(new String[] {"  (no entries)", ""});
        int width = 0;
        for (String[] l : lines) if (!l[1].isEmpty() && !l[0].isEmpty()) width = Math.max(width, l[0].length());
        StringBuilder sb = new StringBuilder();
        for (String[] l : lines) {
            sb.setLength(0);
            sb.append(l[0]);
            if (!l[0].isEmpty() && !l[1].isEmpty()) {
                for (int i = l[0].length(); i < width + 2; i++) sb.append(' ');
            }
            sb.append(l[1]);
            out.println(sb);
        }
    }

    private void render(Node node, String indent, List<String[]> lines) {
        for (Object item : node.items) {
            if (item instanceof Node) {
                Node n = (Node) item;
                lines.add(new String[] {indent + Numbers.range(n.start, n.end - n.start),
                        "L" + n.level + " table " + Numbers.hex(n.framePa) + (n.items.isEmpty() ? " (empty)" : "")});
                render(n, indent + "  ", lines);
            } else {
                Run r = (Run) item;
                lines.add(new String[] {indent + Numbers.range(r.start, r.end - r.start), describe(r)});
            }
        }
    }

    private String describe(Run r) {
        StringBuilder sb = new StringBuilder();
        if (r.valid) {
            sb.append(Describe.leafNoun(g.granule(), r.level, r.count)).append(" -> ").append(Numbers.hex(r.firstPa));
            if (r.count > 1) sb.append("..");
            sb.append(' ').append(Describe.leafAttrs(g, fwb, r.firstPte));
        } else {
            sb.append(r.count).append(" x L").append(r.level).append(r.count == 1 ? " entry " : " entries ")
                    .append(Describe.invalidEntry(r.firstPte));
        }
        long tables = r.tableCount();
        if (tables == 1) {
            sb.append("  [L").append(r.lastTableLevel).append(" table ").append(Numbers.hex(r.lastTablePa)).append(']');
        } else if (tables > 1) {
            sb.append("  [");
            boolean first = true;
            for (int i = 0; i < r.tables.length; i++) {
                if (r.tables[i] == 0) continue;
                sb.append(first ? "" : " + ").append(r.tables[i]).append(" L").append(i - 1)
                        .append(r.tables[i] == 1 ? " table" : " tables");
                first = false;
            }
            sb.append(']');
        }
        return sb.toString();
    }

    /** Kind of table for headers: "stage-2" or "hyp". */
    static String kind(Geometry g) {
        return g.stage() == Stage.STAGE2 ? "stage-2" : "hyp";
    }
}
