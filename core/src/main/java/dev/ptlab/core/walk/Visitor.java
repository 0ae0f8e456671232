package dev.ptlab.core.walk;

/**
 * One operation's per-entry logic. The walker calls it for the entries its flags select; it reads
 * and changes the entry only through the {@link VisitContext}, which is valid only during the
 * call.
 */
@FunctionalInterface
public interface Visitor {
    Status visit(VisitContext ctx, Visit visit);
}
