/**
 * A simulated device that mirrors host memory ({@link dev.ptlab.mm.device.MirrorDevice}, after the
 * kernel's test_hmm dmirror device, with nouveau's atomics protocol) and its flat mirror table.
 *
 * <p>Locking: the device resolves pages through the address space (GUP or device-exclusive
 * conversion) holding no device lock, then takes its own mutex and checks its interval
 * subscription's sequence before it maps; its invalidate callback takes the same mutex. A device
 * gives up an access only after losing many attempts in a row to invalidations, never because one
 * attempt was slow (a descheduled thread is not a lost race).
 */
package dev.ptlab.mm.device;
