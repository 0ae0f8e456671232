package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutated scenarios and argument vectors, seeded, run in-process: none may print a stack trace,
 * end with an exit code outside 0..2 (3 is an internal error: a bug), or fail with exit 2
 * without the line naming its {@code FILE:LINE} (or FILE) or the option. More rounds:
 * {@code -Dptlab.fuzz.rounds=N}; another seed: {@code -Dptlab.fuzz.seed=S} (a failure names both).
 *
 * <p>Sizes in the pools stay small or are invalid, so the valid runs finish in milliseconds:
 * the test is about the boundary, not the simulation.
 */
class CliFuzzTest {
    private static final int ROUNDS = Integer.getInteger("ptlab.fuzz.rounds", 300);
    private static final long SEED = Long.getLong("ptlab.fuzz.seed", 18);

    @TempDir
    Path dir;

    /** Valid scenarios to mutate, each with a small table memory (mutations cannot make big work). */
    private static final String[][] CORPUS = {
        {"stage2 mem-size=1M", "map 0x40000000 2M 0x80000000 rw", "expect 0x40000000 read -> 0x80000000", "unmap 0x40000000 4K",
            "dump"},
        {"stage2 granule=16k ipa-bits=36 mem-size=2M", "map 0 32M 0x2000000 rx", "wrprotect 0 16K", "tlbi 0 16K", "leaf 0"},
        {"hyp granule=4k va-bits=39 mem-size=1M", "map 0x1000 8K 0x5000 rw", "translate 0x1000 write", "counters"},
        {"vm mem-size=1M vcpus=2", "memslot 0x40000000 2M", "vcpu-access 0 0x40000000 write", "dirty-log enable 0",
            "dirty-log get 0"},
        {"stage2 mem-size=512K fwb range-tlbi", "coalesce-policy legacy", "map 0 2M 0 rw", "split 0 2M", "mkold 0 4K", "young 0"},
        {"vm granule=64k ipa-bits=42 mem-size=4M eager-split=512M", "memslot 0 1G", "set-owner 0 64K 3", "expect-owner 0 3"},
    };

    /** Tokens a mutation puts in place of a token: edge numbers and sizes, junk, other keywords. */
    private static final String[] TOKENS = {"0", "-1", "0x", "0x_", "4K", "12K", "2M", "1G", "64T", "8K", "0x1001", "3M",
        "99999999999999999999", "0xffffffffffffffff", "1_0", "", "=", "mem-size=", "mem-size=4K", "mem-size=64T", "mem-size=0",
        "mem-size=3K", "ipa-bits=53", "ipa-bits=0x20", "granule=8k", "va-bits=99", "vcpus=0", "vcpus=513", "eager-split=3K",
        "coalesce=legacy", "vmid=65536", "rw", "rwx", "xyz", "read", "write", "exec", "->", "#", "%s", "%n", "\t",
        "map", "unmap", "stage2", "vm", "hyp", "expect", "translate", "split", "memslot", "dirty-log", "relax", "idmap-greedy",
        "\u00e9", "\ufeff", "level=4", "fwb=maybe", "checking", "on", "off", "all", "enable", "get"};

    @Test
    void mutatedScenariosNeverShowATrace() throws Exception {
        Random rnd = new Random(SEED);
        Path out = dir.resolve("out");
        List<String> failures = new ArrayList<>();
        for (int round = 0; round < ROUNDS; round++) {
            String[] base = CORPUS[rnd.nextInt(CORPUS.length)];
            byte[] bytes = mutate(rnd, new ArrayList<>(Arrays.asList(base)));
            Path f = dir.resolve("f" + round + ".scen");
            Files.write(f, bytes);
            String file = f.toString();
            String[] args;
            switch (rnd.nextInt(4)) {
                case 0: args = new String[] {"run", file}; break;
                case 1: args = new String[] {"dump", file}; break;
                case 2: args = new String[] {"translate", file, pick(rnd, "0x40000000", "0", "0x1000", "0x", "-5")}; break;
                default: args = new String[] {"export", file, "--base", pick(rnd, "0x48000000", "0x1000", "0x48000800"), "--out",
                        out.toString()};
            }
            check(failures, round, args, Cli.run(args), file);
        }
        assertThat(failures).as(String.join("\n\n", failures)).isEmpty();
    }

    private static String pick(Random rnd, String... options) {
        return options[rnd.nextInt(options.length)];
    }

    /** One to three mutations of the lines, then maybe of the bytes. */
    private static byte[] mutate(Random rnd, List<String> lines) {
        int n = 1 + rnd.nextInt(3);
        for (int i = 0; i < n; i++) {
            int at = rnd.nextInt(lines.size());
            List<String> tokens = new ArrayList<>(Arrays.asList(lines.get(at).split(" ")));
            switch (rnd.nextInt(7)) {
                case 0: tokens.set(rnd.nextInt(tokens.size()), TOKENS[rnd.nextInt(TOKENS.length)]); break;
                case 1: tokens.add(rnd.nextInt(tokens.size() + 1), TOKENS[rnd.nextInt(TOKENS.length)]); break;
                case 2: if (tokens.size() > 1) tokens.remove(1 + rnd.nextInt(tokens.size() - 1)); break;
                case 3: lines.add(rnd.nextInt(lines.size() + 1), lines.get(rnd.nextInt(lines.size()))); break;
                case 4: if (lines.size() > 1) lines.remove(rnd.nextInt(lines.size())); break;
                case 5: Collections.swap(lines, at, rnd.nextInt(lines.size())); break;
                default: lines.add(rnd.nextInt(lines.size() + 1), TOKENS[rnd.nextInt(TOKENS.length)] + " " + TOKENS[rnd.nextInt(TOKENS.length)]);
            }
            if (at < lines.size()) lines.set(at, String.join(" ", tokens));
        }
        String text = String.join(rnd.nextInt(8) == 0 ? "\r\n" : "\n", lines) + (rnd.nextBoolean() ? "\n" : "");
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        switch (rnd.nextInt(10)) {
            case 0: return concat(new byte[] {(byte) 0xef, (byte) 0xbb, (byte) 0xbf}, b);
            case 1: {
                byte[] c = b.clone();
                if (c.length > 0) c[rnd.nextInt(c.length)] = (byte) (0x80 + rnd.nextInt(0x80));
                return c;
            }
            case 2: return Arrays.copyOf(b, rnd.nextInt(b.length + 1));
            default: return b;
        }
    }

    private static final class Collections {
        static void swap(List<String> l, int i, int j) {
            if (i >= l.size() || j >= l.size()) return;
            String t = l.get(i);
            l.set(i, l.get(j));
            l.set(j, t);
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /** Option name -> values: valid small ones, edge cases and junk. */
    private static final String[][] OPTIONS = {
        {"--memory", "2M", "4M", "0", "3K", "0x200000", "64T", "-1", "2M_", "lots", ""},
        {"--vcpus", "1", "2", "0", "513", "0x2", "1_6", "-3", "2147483648", "two"},
        {"--ipa-bits", "40", "32", "31", "53", "0x28", "36"},
        {"--granule", "4k", "16k", "64k", "8k", "4K"},
        {"--backing", "page", "thp", "hugetlb", "zram"},
        {"--eager-split", "0", "2M", "3K", "1G", "x"},
        {"--coalesce", "install-first", "legacy", "unmap-first", "sideways"},
        {"--fault-lock", "shared", "write", "none"},
        {"--host-memory", "process", "fixed", "swap"},
        {"--workload", "selftest", "random", "device-atomics", "kvm_page_table_test", "bogus"},
        {"--devices", "0", "1", "2", "17", "-1", "99"},
        {"--accesses", "200", "0", "-1", "0x100", "1e3"},
        {"--hot", "0.05", "0.5", "0", "NaN", "2", "-0.1", "x"},
        {"--seed", "1", "-7", "0x10", "z"},
        {"--fwb", "on", "off", "maybe"},
        {"--range-tlbi", "on", "off", "1"},
        {"--hardware-af", "on", "off"},
        {"--xnx", "on", "off", "yes"},
        {"--json", "JSON", "", "DIR", "/nonexistent/x.json"},
        {"--policy", "coalesce=install-first,legacy", "fwb=on,off", "eager-split=0,2M", "checking=off,on", "colour=a,b", "coalesce",
            "=", "fault-lock=shared", "host-memory=process,fixed", "xnx=on,maybe"},
    };
    private static final String[] FLAGS = {"--checking", "--overlap", "--no-warmup", "--quiet", "--builtin-scenario", "--bogus", "-q",
        "--", "%", "--reps", "--memory=2M", "--vcpus=", "-x", "--help"};

    @Test
    void mutatedArgumentVectorsNeverShowATrace() {
        Random rnd = new Random(SEED + 1);
        List<String> failures = new ArrayList<>();
        int rounds = Math.max(1, ROUNDS / 2);
        for (int round = 0; round < rounds; round++) {
            List<String> args = new ArrayList<>();
            String cmd = pick(rnd, "run", "run", "compare", "compare", "bench", "translate", "dump", "export", "frob", "help", "");
            if (!cmd.isEmpty()) args.add(cmd);
            // Keep valid runs tiny: small memory, one vCPU, few accesses (each may be mutated below).
            if (cmd.equals("run") || cmd.equals("compare")) {
                args.addAll(List.of("--memory", "2M", "--vcpus", "1"));
                if (cmd.equals("compare")) args.addAll(List.of("--no-warmup", "--policy", "fwb=on,off"));
            }
            if (cmd.equals("bench")) args.addAll(List.of("--reps", pick(rnd, "0", "-1", "2147483647", "x", "0x", "10001")));
            int n = rnd.nextInt(4);
            boolean small = true;
            for (int i = 0; i < n; i++) {
                if (rnd.nextInt(5) == 0) {
                    args.add(FLAGS[rnd.nextInt(FLAGS.length)]);
                    continue;
                }
                String[] o = OPTIONS[rnd.nextInt(OPTIONS.length)];
                String v = o[1 + rnd.nextInt(o.length - 1)];
                if (v.equals("JSON")) v = dir.resolve("m" + round + ".json").toString();
                if (v.equals("DIR")) v = dir.toString();
                if (o[0].equals("--workload") && !v.equals("selftest") && !v.equals("kvm_page_table_test")) {
                    small = false;
                }
                if (rnd.nextInt(6) == 0) {
                    args.add(o[0] + "=" + v);
                } else {
                    args.add(o[0]);
                    if (rnd.nextInt(12) != 0) args.add(v); // sometimes the value is missing
                }
            }
            // The random workloads default to a million accesses per vCPU: keep them few.
            if (!small) args.addAll(List.of("--accesses", "300"));
            String[] a = args.toArray(new String[0]);
            if (Arrays.asList(a).contains("--help") || cmd.equals("help")) continue; // help is exit 0 and long, not an error
            check(failures, round, a, Cli.run(a), null);
        }
        assertThat(failures).as(String.join("\n\n", failures)).isEmpty();
    }

    private static final Pattern FILE_LINE = Pattern.compile("^\\S[^\\n]*?:\\d+: \\S.*");
    private static final Pattern OPTION = Pattern.compile("^ptlab( \\w+)?: ((--[a-z][\\w-]*|-\\w|[A-Z]{3,})[: ]|\\S+: ).+");

    /**
     * The rules: no trace; exit 0, 1 or 2; exit 2 ends with one line that starts {@code FILE:LINE: },
     * {@code FILE: } or {@code ptlab CMD: OPTION: } (OPTION an option or parameter name, or the
     * unexpected argument), after nothing but failed expectations.
     */
    private static void check(List<String> failures, int round, String[] args, Cli.Result r, String file) {
        String where = "round " + round + " (seed " + SEED + "): ptlab " + String.join(" ", args) + "\n" + r;
        if (r.err().contains("\tat ") || r.err().contains("Exception") || r.out().contains("\tat ")) {
            failures.add("stack trace or exception class: " + where);
        } else if (r.exit() < 0 || r.exit() > 2) {
            failures.add("exit code " + r.exit() + ": " + where);
        } else if (r.exit() == 2) {
            // The error is the last line; failed expect lines (FILE:LINE: expected ...) may come before it,
            // as export still reports them before refusing its options.
            String[] lines = r.err().split("\n");
            String line = lines[lines.length - 1];
            boolean named = FILE_LINE.matcher(line).matches() && (file == null || line.startsWith(file + ":"))
                    || Arrays.stream(args).anyMatch(arg -> !arg.isEmpty() && line.startsWith(arg + ": "))
                    || OPTION.matcher(line).matches();
            for (int i = 0; i < lines.length - 1; i++) named &= FILE_LINE.matcher(lines[i]).matches() && lines[i].contains(": expected ");
            if (!named) failures.add("exit 2 without FILE:LINE or the option: " + where);
        }
    }
}
