package dev.ptlab.sim;

import java.util.ArrayList;
import java.util.List;

/**
 * What every workload's run produced: its phases' reports, the stage-2 table as the run left it,
 * and what memory was still in use once the VM was destroyed and the host process ended. A
 * workload's own result extends this with what only it measures, and says whether the run
 * passed its checks ({@link #passed()}).
 */
public class RunResult {
    public final List<PhaseReport> phases = new ArrayList<>();
    /** Every leaf of the stage-2 table at the end of the last phase, before the VM was destroyed. */
    public TableSnapshot tableAtEnd;
    /** Stage-2 table frames still in use after the VM was destroyed (0 unless something leaked). */
    public long framesInUseAtEnd;
    /** Host data pages still allocated after the VM was destroyed and the host process ended (0 with fixed memory). */
    public long hostPagesInUseAtEnd;
    /** Host page-table frames still allocated then (0 with fixed memory). */
    public long hostTableFramesInUseAtEnd;

    /** Whether every stage-2 table frame, host page and host table frame came back at the end. */
    public boolean memoryReturned() {
        return framesInUseAtEnd == 0 && hostPagesInUseAtEnd == 0 && hostTableFramesInUseAtEnd == 0;
    }

    /** Whether the run passed its own checks: here, that every frame and page came back; workloads add theirs. */
    public boolean passed() {
        return memoryReturned();
    }

    public PhaseReport phase(String name) {
        for (PhaseReport p : phases) if (p.name().equals(name)) return p;
        throw new IllegalArgumentException("phase: " + name + " is not one of the run's phases");
    }

    /**
     * Ends a workload's run (in its finally): the progress display, the VM (every table frame
     * back) and the host process (every host page back), recording what is left.
     */
    void endRun(Progress progress, Vm vm, GuestMemory memory) {
        progress.finish();
        vm.destroy();
        framesInUseAtEnd = vm.tableMemory().framesInUse();
        if (memory == null) return;
        memory.close();
        hostPagesInUseAtEnd = memory.hostPagesInUse();
        hostTableFramesInUseAtEnd = memory.hostTableFramesInUse();
    }
}
