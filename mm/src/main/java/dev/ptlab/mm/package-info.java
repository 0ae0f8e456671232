/**
 * Host memory: address spaces, VMAs, process page tables, MMU notifiers and device-exclusive
 * entries. Empty until the host-memory issue lands; the module exists so the reactor already has
 * the shape SPEC.md describes.
 */
package dev.ptlab.mm;
