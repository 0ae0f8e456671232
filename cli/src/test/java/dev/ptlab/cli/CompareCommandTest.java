package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** {@code ptlab compare}: one column per policy value, ratios, and the seed-001 claim in numbers. */
class CompareCommandTest {
    private static long value(String out, String phase, String metric, int column) {
        // Rows after a phase's first row leave the phase column blank; find the phase block first.
        int from = out.indexOf("\n" + phase + " ");
        assertThat(from).as("phase " + phase + " in\n" + out).isNotNegative();
        Matcher m = Pattern.compile("(?m)^(?:" + Pattern.quote(phase) + ")?\\s+" + Pattern.quote(metric) + "\\s+(\\S+)\\s+(\\S+)")
                .matcher(out.substring(from + 1));
        assertThat(m.find()).as(metric + " row of " + phase + " in\n" + out).isTrue();
        return Math.round(Double.parseDouble(m.group(column)));
    }

    @Test
    void legacyCoalescingKeepsTheSpanInvalidForTheWholeTeardownWalk() {
        Cli.Result r = Cli.run("compare", "--policy", "coalesce=install-first,legacy", "--backing", "thp", "--memory", "32M",
                "--vcpus", "1", "--no-warmup");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).startsWith("ptlab compare: coalesce = install-first vs legacy");
        assertThat(r.out()).contains("install-first", "legacy", "x2/x1");
        // adjust coalesces 16 blocks either way; only legacy walks each 512-entry table inside the invalid window.
        assertThat(value(r.out(), "adjust", "coalesced", 1)).isEqualTo(16);
        assertThat(value(r.out(), "adjust", "coalesced", 2)).isEqualTo(16);
        assertThat(r.out()).containsPattern("(?m)^\\s+invalid-window steps\\s+0\\s+8192\\s+-$");
    }

    @Test
    void everyPolicyKeyRunsAndBadPoliciesAreOneLineErrors() {
        Cli.Result r = Cli.run("compare", "--policy", "fault-lock=shared,write", "--memory", "8M", "--vcpus", "2", "--no-warmup");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("fault-lock = shared vs write");
        r = Cli.run("compare", "--policy", "eager-split=0,2M", "--memory", "8M", "--backing", "thp", "--vcpus", "1", "--no-warmup");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(value(r.out(), "log-enable", "splits", 2)).isEqualTo(4);
        r = Cli.run("compare", "--policy", "checking=off,on", "--memory", "4M", "--vcpus", "1", "--no-warmup");
        assertThat(r.exit()).as(r.err()).isZero();
        r = Cli.run("compare", "--policy", "host-memory=process,fixed", "--memory", "8M", "--vcpus", "1", "--no-warmup");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("host-memory = process vs fixed").doesNotContain("host memory process");
        assertThat(value(r.out(), "create", "host faults", 1)).as("one host fault per guest page").isEqualTo(2048);
        assertThat(value(r.out(), "create", "host faults", 2)).isZero();
        assertThat(value(r.out(), "create", "faults", 1)).isEqualTo(value(r.out(), "create", "faults", 2));

        String[][] bad = {{"--policy", "colour=red,blue"}, {"--policy", "coalesce=legacy"}, {"--policy", "coalesce"},
            {"--policy", "eager-split=0,3M"}, {"--policy", "checking=off,maybe"}, {"--policy", "coalesce=a,b", "--json", "x.json"},
            {"--policy", "coalesce=install-first,legacy", "--coalesce", "bogus"}, {"--policy", "fwb=on,off", "--workload", "random", "--hot", "0"}};
        String[] expected = {"colour is not one of", "names one value", "is not KEY=V1,V2", "--eager-split: 0x300000 is not 0", "checking=maybe",
            // compare has no --json (it used to offer it in --help and then refuse it)
            "ptlab compare: --json: unknown option (try ptlab compare --help)",
            // an option the policy sets would be silently overridden
            "ptlab compare: --coalesce: conflicts with --policy coalesce=install-first,legacy",
            // refused before any run, as run refuses it (it was a trace from inside the first run)
            "ptlab compare: --hot: 0.0 is outside (0, 1]"};
        for (int i = 0; i < bad.length; i++) {
            String[] args = new String[bad[i].length + 1];
            args[0] = "compare";
            System.arraycopy(bad[i], 0, args, 1, bad[i].length);
            r = Cli.run(args);
            assertThat(r.exit()).as(String.join(" ", args)).isEqualTo(2);
            assertThat(r.err()).as(String.join(" ", args)).startsWith("ptlab compare: ").contains(expected[i]);
        }
    }
}
