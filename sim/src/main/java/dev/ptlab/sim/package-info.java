/**
 * The VM simulator: memslots, vCPUs with their MMUs, the guest-abort handler, workloads and
 * metrics. Empty until the simulator issue lands.
 */
package dev.ptlab.sim;
