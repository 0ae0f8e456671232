package dev.ptlab.cli.scenario;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every scenario command, once, in the order the "unknown command" message lists them. Adding a
 * command is adding it here (and its grammar line to docs/scenario-language.md, which
 * ScenarioCommandsTest checks).
 */
public final class ScenarioCommands {
    private static final Map<String, ScenarioCommand> BY_KEYWORD = new LinkedHashMap<>();

    static {
        register(TableLine.STAGE2, TableLine.HYP, new VmLine(), new MapLine(), new UnmapLine(), new TranslateLine(),
                new ExpectLine(), new ExpectLeafLine(), new ExpectOwnerLine(), new LeafLine(), new DumpLine(),
                new WrprotectLine(), new TlbiLine(), new DsbLine(), new MkyoungLine(), YoungLine.MKOLD, YoungLine.YOUNG, new RelaxLine(),
                new SplitLine(), new FlushLine(), new SetOwnerLine(), new IdmapGreedyLine(), new CoalescePolicyLine(),
                new CountersLine(), new MemslotLine(), new VcpuAccessLine(), new DirtyLogLine());
    }

    private ScenarioCommands() {}

    private static void register(ScenarioCommand... commands) {
        for (ScenarioCommand c : commands) {
            if (BY_KEYWORD.putIfAbsent(c.keyword(), c) != null) {
                throw new IllegalStateException("scenario command " + c.keyword() + " is registered twice");
            }
        }
    }

    /** The command with this (lower-case) keyword, or null. */
    static ScenarioCommand find(String keyword) {
        return BY_KEYWORD.get(keyword);
    }

    /** Every command, in registration order. */
    public static List<ScenarioCommand> all() {
        return Collections.unmodifiableList(new ArrayList<>(BY_KEYWORD.values()));
    }

    /** "stage2, hyp, vm, map, ...": the keywords, as the "unknown command" message lists them. */
    public static String keywords() {
        return String.join(", ", BY_KEYWORD.keySet());
    }
}
