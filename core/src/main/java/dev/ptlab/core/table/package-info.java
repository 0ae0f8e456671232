/**
 * Stage-2 and hyp translation tables and the operations KVM performs on them.
 *
 * <p>Owns: {@link dev.ptlab.core.table.PageTable} (what both kinds share: root, lock, reclaimer,
 * teardown, the "free the child when empty" and "allocate a table or ENOMEM" helpers), the
 * {@link dev.ptlab.core.table.HypPageTable}, and the {@link dev.ptlab.core.table.Stage2PageTable}
 * façade whose operations each live in a file of their own: {@code Stage2Map} (map and
 * coalescing), {@code Stage2Annotate} (owner annotations), {@code Stage2Unmap},
 * {@code Stage2Attrs} (wrprotect, mkyoung, relaxPerms, test-clear-young, flush),
 * {@code Stage2Split} (create-unlinked, eager split) and {@code GreedyIdmap}. Adding an operation
 * is one such file plus a delegating method on the façade.
 *
 * <h2>Locks</h2>
 * Every public operation takes the table's {@link dev.ptlab.core.table.MmuLock} itself; a caller
 * may hold it around several calls. A {@link dev.ptlab.core.walk.WalkFlags#SHARED} walk holds it
 * for reading and runs inside a read section of the table's reclaimer; any other walk holds it
 * for writing, so exclusive walks never meet a shared one.
 *
 * <table>
 *   <caption>Operations, locks and what a race does</caption>
 *   <tr><th>operation</th><th>lock</th><th>walk</th><th>LOCKED entry or lost CAS (RACED)</th>
 *       <th>no valid leaf (NOT_MAPPED)</th></tr>
 *   <tr><td>{@code map(..., SHARED | HANDLE_FAULT)} (translation fault)</td><td>read</td>
 *       <td>shared: CAS, BBM via LOCKED</td><td>walk stops, RACED returned: the vCPU re-faults</td>
 *       <td>—</td></tr>
 *   <tr><td>{@code relaxPerms(..., SHARED | HANDLE_FAULT, tlb)} (permission fault)</td><td>read</td>
 *       <td>shared</td><td>stops, RACED (local TLBI still done)</td>
 *       <td>stops, NOT_MAPPED (local TLBI still done)</td></tr>
 *   <tr><td>{@code mkyoung(ipa, SHARED | HANDLE_FAULT)} (access-flag fault)</td><td>read</td>
 *       <td>shared</td><td>stops, RACED</td><td>stops, NOT_MAPPED</td></tr>
 *   <tr><td>the same three with {@code SHARED} only</td><td>read</td><td>shared</td>
 *       <td>entry skipped, walk goes on</td><td>skipped</td></tr>
 *   <tr><td>{@code getLeaf}</td><td>read</td><td>shared, read-only</td><td>—</td><td>—</td></tr>
 *   <tr><td>{@code map} without {@code SHARED}, {@code unmap}, {@code wrprotect}, {@code split},
 *       {@code flush}, {@code testClearYoung}, {@code setOwner}/{@code annotate},
 *       {@code idmapGreedy}, {@code checkRefcounts}</td><td>write</td><td>exclusive: opaque
 *       stores</td><td>never met (no shared walker can run)</td><td>skipped</td></tr>
 *   <tr><td>{@code destroy}</td><td>waits for pending frees, then write</td><td>exclusive</td>
 *       <td>—</td><td>—</td></tr>
 * </table>
 *
 * <p>A table a shared walk unlinks (coalescing a table into a block) is freed only after every
 * read section that could have seen it has ended ({@link dev.ptlab.core.table.FreeUnlinkedHook#DEFAULT});
 * under the write lock it is freed at once. Exclusive operations inside a shared one throw
 * instead of deadlocking. The hyp table allows exclusive walks only ({@code SHARED} gives EPERM,
 * as in the kernel).
 *
 * <h2>Break-before-make</h2>
 * In a shared walk: CAS the observed value to LOCKED (the winner owns the entry), TLBI, drop its
 * reference, cache maintenance, take the new reference, store-release. Leaf attribute updates
 * ({@code wrprotect}, {@code mkyoung}, {@code relaxPerms}) change only BBM-exempt bits and refuse
 * any other, in every mode.
 *
 * <h2>Misuse</h2>
 * Every operation checks its arguments before it changes anything, and an argument error names
 * the argument ({@link dev.ptlab.core.PageTableException#argument()}):
 * <ul>
 *   <li>A {@link dev.ptlab.core.mem.MemCache} must be of the table's own
 *       {@link dev.ptlab.core.mem.PhysicalMemory} ("cache"), whatever its base.</li>
 *   <li>Walk flags ("flags"): {@code map} takes {@code SHARED}, {@code HANDLE_FAULT} and
 *       {@code SKIP_CMO}; {@code mkyoung} and {@code relaxPerms} take {@code SHARED} and
 *       {@code HANDLE_FAULT} ({@link dev.ptlab.core.walk.WalkFlags#FAULT}). The visit flags are the
 *       operation's own and {@code SKIP_BBM_TLBI} is internal (right only for a table no hardware
 *       can see yet): both are refused, as is any undefined bit. {@code PageTable.walk} takes any
 *       defined flag.</li>
 *   <li>Re-entry: an operation or walk started from a visitor of an exclusive walk of the same
 *       table is refused with an IllegalStateException naming it (one field read per
 *       operation); from a shared walk's visitor, exclusive operations are refused by the lock
 *       and {@code destroy} by its own check. {@code getLeaf} only reads and may be called from any
 *       visitor; a shared operation inside a shared walk is like another CPU's fault beside it.</li>
 *   <li>A subtree ({@link dev.ptlab.core.table.UnlinkedTable}) may be freed only by the table that
 *       built it ("subtree").</li>
 * </ul>
 *
 * <h2>Failures inside an operation</h2>
 * An exception from TLB maintenance between the break and the make (or between clearing an
 * entry and dropping its reference, in unmap and when an emptied table is unlinked) restores the
 * old entry, whose reference was not dropped yet, and is rethrown: the table is as before the
 * failed entry (entries done before it stay done), consistent and usable; a table frame taken
 * for it goes back to the cache and a subtree built for a split is freed. No entry is left
 * LOCKED. Likewise when map's cache maintenance throws between the break and the make: the
 * entry as it was is made again (a replaced leaf, or a table whose subtree is still intact; an
 * empty entry where unmap-first coalescing already freed the subtree). A range TLBI deferred to after an unmap walk that fails leaves the table consistent
 * (the entries are gone) and only the TLBs to be invalidated again.
 *
 * <h2>Reference counts</h2>
 * A table frame's count is 1 + its counted entries (stage-2: non-zero and not LOCKED; hyp:
 * valid), so a count of 1 means empty and tables are freed bottom-up without scanning.
 */
package dev.ptlab.core.table;
