package dev.ptlab.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.CharacterCodingException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * The one place where a failure becomes what the user sees: one line on stderr and an exit code
 * (docs/cli.md, "Exit codes"). Scenario problems are {@code FILE:LINE: ...} lines (the scenario
 * package builds them), option problems {@code ptlab CMD: OPTION: ...}; picocli's usage errors,
 * the commands' {@link IllegalArgumentException}s and a heap that runs out are turned into such
 * lines here; anything else is an internal error, exit 3, with its trace only under
 * {@code --debug}. No other class prints a stack trace.
 */
public final class Failures {
    private Failures() {}

    /** How {@code ptlab} ends: 0 ok, 1 an expectation or check failed, 2 bad input or a resource limit, 3 a bug. */
    static final int OK = 0;
    static final int FAILED = 1;
    static final int BAD_INPUT = 2;
    static final int INTERNAL = 3;

    static final String DEBUG = "--debug";
    /** The launcher's variable for JVM options (./ptlab passes it to java). */
    static final String JAVA_OPTS = "PTLAB_JAVA_OPTS";

    /**
     * A problem with the user's input found by a command: its message is the complete line
     * ({@code ptlab CMD: OPTION: ...} or {@code FILE:LINE: ...}); exit 2, no trace.
     */
    static final class UserError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UserError(String line) {
            super(line, null, false, false);
        }
    }

    /** Runs {@code cl} on {@code args}; never lets a Throwable out and never exits outside 0..3. */
    static int execute(CommandLine cl, String[] args) {
        boolean debug = debug(args);
        cl.setParameterExceptionHandler((ex, a) -> usageError(ex));
        cl.setExecutionExceptionHandler((ex, sub, parsed) -> failure(sub, ex, debug));
        try {
            int code = cl.execute(args);
            return code >= OK && code <= INTERNAL ? code : INTERNAL;
        } catch (Throwable t) {
            // Errors (OutOfMemoryError above all) are not Exceptions, so picocli lets them through;
            // the line names the subcommand that was running.
            CommandLine at = cl;
            CommandLine.ParseResult p = cl.getParseResult();
            while (p != null && p.subcommand() != null) p = p.subcommand();
            if (p != null) at = p.commandSpec().commandLine();
            return failure(at, t, debug);
        }
    }

    /** {@code --debug} anywhere before a {@code --} end-of-options marker. */
    static boolean debug(String[] args) {
        for (String a : args) {
            if (a.equals("--")) return false;
            if (a.equals(DEBUG)) return true;
        }
        return false;
    }

    /** A picocli usage error: one line naming the option or parameter, and where help is. */
    private static int usageError(CommandLine.ParameterException ex) {
        CommandLine cl = ex.getCommandLine();
        String cmd = commandName(cl);
        String what = null;
        String message = ex.getMessage();
        if (ex instanceof CommandLine.UnmatchedArgumentException) {
            List<String> unmatched = ((CommandLine.UnmatchedArgumentException) ex).getUnmatched();
            if (!unmatched.isEmpty()) {
                String arg = unmatched.get(0);
                what = arg.isEmpty() ? "\"\"" : arg;
                message = arg.startsWith("-") ? "unknown option" : "unexpected argument";
            }
        } else if (ex instanceof CommandLine.MissingParameterException) {
            List<ArgSpec> missing = ((CommandLine.MissingParameterException) ex).getMissing();
            if (!missing.isEmpty()) {
                ArgSpec a = missing.get(0);
                what = name(a);
                // An option given without its value, or a required option or parameter left out.
                message = a.isOption() && !a.required() ? "needs a value" : "missing; it is required";
            }
        } else if (ex instanceof CommandLine.OverwrittenOptionException) {
            what = name(((CommandLine.OverwrittenOptionException) ex).getOverwritten());
            message = "given twice; expected it once";
        } else if (ex.getArgSpec() != null) {
            what = name(ex.getArgSpec());
            // picocli: "Invalid value for option '--vcpus': '0x' is not an int" -> the part after the name.
            message = message.replaceFirst("^Invalid value for (option '[^']*'|positional parameter at index \\S+ \\([^)]*\\)): ", "");
            message = message.replaceFirst("^" + java.util.regex.Pattern.quote(what) + ":? ", "").replaceFirst("^[A-Z]+ (?=\")", "");
        }
        // picocli's own words start upper-case; ours are lower-case phrases after the name.
        if (!message.isEmpty() && Character.isUpperCase(message.charAt(0)) && !message.startsWith("FILE") && !message.startsWith("ADDR")) {
            message = Character.toLowerCase(message.charAt(0)) + message.substring(1);
        }
        PrintWriter err = cl.getErr();
        err.println(cmd + ": " + (what == null ? "" : what + ": ") + message + " (try " + cmd + " --help)");
        err.flush();
        return BAD_INPUT;
    }

    private static String name(ArgSpec a) {
        return a.isOption() ? ((OptionSpec) a).longestName() : a.paramLabel();
    }

    /** "ptlab" or "ptlab run". */
    private static String commandName(CommandLine cl) {
        return cl.getCommandSpec().qualifiedName();
    }

    /** Anything a command threw (or an Error from anywhere): one line, exit 2 or 3. */
    private static int failure(CommandLine cl, Throwable t, boolean debug) {
        PrintWriter err = cl.getErr();
        String cmd = commandName(cl);
        int code;
        if (t instanceof OutOfMemoryError) {
            code = BAD_INPUT;
            err.println(outOfMemory(cmd, sizedBy(cl), 0));
        } else if (t instanceof UserError) {
            code = BAD_INPUT;
            err.println(t.getMessage());
        } else if (t instanceof IllegalArgumentException && t.getMessage() != null) {
            code = BAD_INPUT;
            err.println(optionLine(cmd, t.getMessage()));
        } else {
            code = INTERNAL;
            StackTraceElement at = t.getStackTrace().length == 0 ? null : t.getStackTrace()[0];
            err.println(cmd + ": internal error (" + t.getClass().getSimpleName() + (at == null ? "" : " at " + at.getFileName() + ":"
                    + at.getLineNumber()) + "); please report it with the command line and input"
                    + (debug ? "" : " (" + DEBUG + " prints the stack trace)"));
        }
        if (debug) t.printStackTrace(err);
        err.flush();
        return code;
    }

    /** What a heap that ran out was spent on, when an option says: the simulation's --memory; else null. */
    private static String sizedBy(CommandLine cl) {
        CommandLine.ParseResult p = cl.getParseResult();
        while (p != null && p.subcommand() != null) p = p.subcommand();
        if (p == null || !p.hasMatchedOption("--memory")) return null;
        return "the simulation of --memory " + p.matchedOptionValue("--memory", "") + " needed more";
    }

    /**
     * The line for a heap that ran out (or would): the heap's size, what needed it if known,
     * and how to raise it.
     */
    public static String outOfMemory(String cmd, String what, long needed) {
        long heap = Runtime.getRuntime().maxMemory();
        return cmd + ": out of memory: the Java heap is " + Numbers.bytes(heap) + (what == null ? "" : " and " + what)
                + "; expected a smaller size, or a larger heap: " + JAVA_OPTS + "=-Xmx" + suggestedHeap(heap, needed) + " ./ptlab ...";
    }

    /**
     * What the hint suggests, in whole GiB (at least 2G): what was needed plus a third for
     * everything else, or twice the heap when the need is not known.
     */
    private static String suggestedHeap(long heap, long needed) {
        long want = needed > 0 ? needed + needed / 3 : 2 * heap;
        return Math.max(2, (want + (1L << 30) - 1) >>> 30) + "g";
    }

    /** Whether {@code bytes} more of heap is more than the JVM can ever have (leaving a quarter for everything else). */
    public static boolean exceedsHeap(long bytes) {
        long max = Runtime.getRuntime().maxMemory();
        return max != Long.MAX_VALUE && bytes > max - max / 4;
    }

    /**
     * The sim library's argument names (its IllegalArgumentException messages start
     * {@code name: ...}) as the options that set them.
     */
    private static final String[][] LIBRARY_NAMES = {
        {"memory", "--memory"}, {"vcpus", "--vcpus"}, {"accesses", "--accesses"}, {"hot fraction", "--hot"},
        {"eager split chunk", "--eager-split"}, {"backing", "--backing"}, {"granule", "--granule"},
        {"fault locking", "--fault-lock"}, {"host memory", "--host-memory"}, {"devices", "--devices"}};

    /** {@code ptlab CMD: --option: ...} for an option error, naming the option where the library named its argument. */
    static String optionLine(String cmd, String message) {
        String m = message;
        if (!m.startsWith("-")) {
            String lower = m.toLowerCase(Locale.ROOT);
            for (String[] n : LIBRARY_NAMES) {
                if (lower.startsWith(n[0] + ":")) {
                    m = n[1] + m.substring(n[0].length());
                    break;
                }
            }
        }
        return (cmd.startsWith("ptlab") ? cmd : "ptlab " + cmd) + ": " + m;
    }

    /** {@link #optionLine} of an IllegalArgumentException as an exception to throw. */
    static UserError option(String cmd, IllegalArgumentException e) {
        return new UserError(optionLine(cmd, e.getMessage()));
    }

    /** What went wrong with a file, in plain words (no Java class names). */
    static String plain(IOException e) {
        if (e instanceof NoSuchFileException) return "no such file or directory";
        if (e instanceof AccessDeniedException) return "permission denied";
        if (e instanceof FileAlreadyExistsException) return "a file is in the way (not a directory)";
        if (e instanceof NotDirectoryException) return "not a directory";
        if (e instanceof CharacterCodingException) return "not UTF-8 text";
        if (e instanceof FileSystemException && ((FileSystemException) e).getReason() != null) {
            return ((FileSystemException) e).getReason().toLowerCase(Locale.ROOT);
        }
        String m = e.getMessage();
        return m == null || m.isEmpty() ? "an I/O error" : m.toLowerCase(Locale.ROOT).startsWith("is a directory") ? "is a directory" : m;
    }

    /**
     * Checks, before any work, that {@code option}'s output file can be written: not empty, not a
     * directory, its directory existing and writable.
     */
    static void checkWritableFile(String cmd, String option, Path file) {
        String bad = null;
        if (file.toString().isEmpty()) {
            bad = "is empty; expected a file name";
        } else if (Files.isDirectory(file)) {
            bad = file + " is a directory; expected a file name";
        } else {
            Path dir = file.toAbsolutePath().getParent();
            if (dir == null || !Files.isDirectory(dir)) {
                bad = file + ": no such directory " + dir + "; expected a file in an existing directory";
            } else if (Files.exists(file) ? !Files.isWritable(file) : !Files.isWritable(dir)) {
                bad = file + ": permission denied; expected a writable file";
            }
        }
        if (bad != null) throw new UserError(optionLine(cmd, option + ": " + bad));
    }
}
