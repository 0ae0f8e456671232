package dev.ptlab.cli.scenario;

import dev.ptlab.cli.Numbers;
import dev.ptlab.core.Errno;
import dev.ptlab.core.PageTableException;
import dev.ptlab.core.arch.Granule;
import dev.ptlab.core.arch.Pte;
import dev.ptlab.core.mem.MemCache;
import dev.ptlab.core.walk.Status;
import dev.ptlab.core.walk.WalkFlags;
import dev.ptlab.core.walk.WalkPolicy;
import java.util.Locale;

/**
 * {@code split IPA SIZE [frames=N]}: eager splitting with a memory cache of its own (N frames, or
 * enough for every block in the range to go down to pages). Running out of frames is a result,
 * not an error: the table stays valid and the scenario goes on.
 */
final class SplitLine extends RangeCommand {
    SplitLine() {
        super("split", Needs.STAGE2, "\"split\" IPA SIZE [ \"frames=\" N ]");
    }

    @Override
    Step.Action parse(Line l) throws ScenarioException {
        String usage = "split IPA SIZE [frames=N]";
        if (l.count() < 3) throw l.missing(usage, "IPA", "SIZE");
        if (l.count() > 4) throw l.extra(4, usage);
        long ipa = l.number(1, "IPA");
        long size = l.size(2, "SIZE");
        long frames = -1;
        if (l.count() == 4) {
            String opt = l.token(3);
            int eq = opt.indexOf('=');
            String key = (eq < 0 ? opt : opt.substring(0, eq)).toLowerCase(Locale.ROOT);
            if (!key.equals("frames")) throw l.error("unknown split option \"" + opt + "\"", "frames=N (" + usage + ")");
            String value = eq < 0 ? "" : opt.substring(eq + 1);
            if (value.isEmpty()) throw l.error("split option frames has no value", "frames=N, a number of table frames");
            frames = Numbers.parseNumber("frames", value);
            if (frames > Integer.MAX_VALUE - 8) {
                throw l.error("frames=" + value + " is more than a memory cache holds", "frames=N below 2^31 - 8");
            }
        }
        long asked = frames;
        return m -> split(m, ipa, size, asked);
    }

    /** {@code asked < 0}: enough frames for a full split. */
    private static void split(Machine m, long ipa, long size, long asked) {
        long frames = asked;
        if (frames < 0) {
            // Enough for every block the range touches to be split to pages at once.
            long[] need = {0};
            if (m.inside(ipa, size)) {
                m.table().walk(ipa, size, (ctx, visit) -> {
                    if (Pte.isValid(ctx.old()) && ctx.level() < Granule.LAST_LEVEL) {
                        need[0] += m.stage2().framesForFullSplit(ctx.level());
                    }
                    return Status.OK;
                }, WalkFlags.LEAF, WalkPolicy.RANGE);
            }
            frames = need[0];
        }
        int filled = m.framesFor(frames, null);
        Counts before = new Counts(m);
        // The eager-split cache's capacity is its minimum (as the kernel's split cache), so
        // frames=N gives the split exactly N frames.
        MemCache splitCache = new MemCache(m.memory(), Math.max(1, filled));
        String failure = null;
        try {
            splitCache.topUp(filled);
            m.stage2().split(ipa, size, splitCache);
        } catch (PageTableException e) {
            if (e.errno() != Errno.ENOMEM) throw e;
            failure = e.getMessage();
        } finally {
            splitCache.release();
        }
        m.check();
        if (!m.printing()) return;
        String head = "split " + Numbers.range(ipa, size) + " (" + Numbers.size(size) + ") with "
                + (asked < 0 ? Machine.plural(filled, "frame", "frames") + " (enough for a full split)" : "frames=" + asked)
                + (filled < frames ? " (capped at the " + filled + " free frames)" : "") + ": ";
        String done = "split " + Machine.plural(before.splits(), "block", "blocks") + ", " + before.installedTables() + "; now "
                + m.leafBreakdown(ipa, size) + "; " + before.bbmAndTlbis();
        m.print(head + done + (failure == null ? "" : "; then ENOMEM, the table stays valid: " + failure));
    }

    @Override
    String expected(Errno errno, Machine m) {
        return errno == Errno.ENOMEM ? "a memory cache with frames for the split (raise frames= or mem-size=)"
                : super.expected(errno, m);
    }
}
