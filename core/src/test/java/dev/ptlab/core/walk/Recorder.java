package dev.ptlab.core.walk;

import java.util.ArrayList;
import java.util.List;

/** A visitor that records every call (and can be given extra behaviour). Test support. */
class Recorder implements Visitor {
    /** One recorded call: what the context showed when the visitor was entered. */
    record Call(Visit visit, int level, long addr, long old, long tablePa, int index) {
        @Override
        public String toString() {
            return visit + "@L" + level + "[" + index + "] addr=0x" + Long.toHexString(addr) + " old=0x" + Long.toHexString(old)
                    + " table=0x" + Long.toHexString(tablePa);
        }
    }

    /** Extra behaviour run after recording. */
    interface Action {
        Status act(VisitContext ctx, Visit visit);
    }

    final List<Call> calls = new ArrayList<>();
    private final Action action;

    Recorder() {
        this((c, v) -> Status.OK);
    }

    Recorder(Action action) {
        this.action = action;
    }

    @Override
    public Status visit(VisitContext ctx, Visit visit) {
        calls.add(new Call(visit, ctx.level(), ctx.addr(), ctx.old(), ctx.tablePa(), ctx.index()));
        return action.act(ctx, visit);
    }

    List<Call> of(Visit kind) {
        List<Call> out = new ArrayList<>();
        for (Call c : calls) if (c.visit() == kind) out.add(c);
        return out;
    }

    List<Call> atLevel(Visit kind, int level) {
        List<Call> out = new ArrayList<>();
        for (Call c : calls) if (c.visit() == kind && c.level() == level) out.add(c);
        return out;
    }

    static Call call(Visit v, int level, long addr, long old, long tablePa, int index) {
        return new Call(v, level, addr, old, tablePa, index);
    }
}
