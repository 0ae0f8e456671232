// ptlab conformance probe: a bare-metal AArch64 program for QEMU's virt machine
// (virtualization=on, so an ELF given to -kernel starts at EL2 with the MMUs off).
//
// It reads a case list from DATA (loaded by the test with -device loader), and for every case
// programs the translation registers the case gives, then runs the address-translation
// instructions on each of the case's addresses and stores PAR_EL1 after each:
//   stage-2 case: VTCR_EL2, VTTBR_EL2, HCR_EL2 (VM set); EL1's stage 1 is off (SCTLR_EL1.M = 0),
//                 so VA = IPA; AT S12E1R then AT S12E1W.
//   hyp case:     MAIR_EL2, TCR_EL2, TTBR0_EL2, then the EL2 MMU on (SCTLR_EL2.M = 1: AT S1E2*
//                 translates only when it is on; the case's table identity-maps this code
//                 read-execute and DATA read-write); AT S1E2R then AT S1E2W; MMU off again.
// At the end it writes the results region to a host file with semihosting (SYS_OPEN, SYS_WRITE)
// and exits with SYS_EXIT. Any exception stores ESR/ELR/FAR/SPSR in the status block, writes the
// results file all the same and exits with code 3.
//
// DATA layout (little-endian 64-bit words), built by ConformanceTest:
//   header  +0 magic "PTLABPRB"  +8 case count  +16 case list address  +24 results-file name
//           address  +32 name length  +40 results region address  +48 results region length
//   case (64 bytes) +0 kind (0 stage-2, 1 hyp)  +8 VTCR_EL2 / TCR_EL2  +16 VTTBR_EL2 / TTBR0_EL2
//           +24 HCR_EL2 / MAIR_EL2  +32 address list  +40 address count  +48 result slots
//           (two words per address: PAR_EL1 after the read AT, after the write AT)
//   results region +0 status (1 done, 2 exception)  +8 ESR_EL2  +16 ELR_EL2  +24 FAR_EL2
//           +32 index of the case running  +40 SPSR_EL2, then the cases' result slots.

    .equ DATA,            0x40200000
    .equ HCR_RW,          (1 << 31)
    .equ SCTLR_EL1_OFF,   0x30d00800           // RES1 bits, M = 0
    .equ SCTLR_EL2_OFF,   0x30c50830           // RES1 bits, M = 0, C = 0, I = 0
    .equ SYS_OPEN,        0x01
    .equ SYS_CLOSE,       0x02
    .equ SYS_WRITE,       0x05
    .equ SYS_EXIT,        0x18
    .equ APP_EXIT,        0x20026              // ADP_Stopped_ApplicationExit

    .section .text.boot, "ax"
    .global _start
_start:
    adr     x0, vectors
    msr     vbar_el2, x0
    ldr     x0, =SCTLR_EL2_OFF
    msr     sctlr_el2, x0
    ldr     x0, =SCTLR_EL1_OFF
    msr     sctlr_el1, x0
    msr     tcr_el1, xzr                       // no top-byte ignore for the flat stage 1
    ldr     x0, =HCR_RW
    msr     hcr_el2, x0
    isb
    ldr     x19, =DATA
    ldr     x20, [x19, #8]                     // case count
    ldr     x21, [x19, #16]                    // case list
    ldr     x22, [x19, #40]                    // results region (status block)
    mov     x23, #0                            // case index
next_case:
    cmp     x23, x20
    b.eq    all_done
    str     x23, [x22, #32]
    ldp     x0, x1, [x21, #0]                  // kind, VTCR/TCR
    ldp     x2, x3, [x21, #16]                 // VTTBR/TTBR0, HCR/MAIR
    ldp     x24, x25, [x21, #32]               // addresses, count
    ldr     x26, [x21, #48]                    // result slots
    cbnz    x0, hyp_case

stage2_case:
    msr     vtcr_el2, x1
    msr     vttbr_el2, x2
    msr     hcr_el2, x3
    isb
    tlbi    vmalls12e1
    dsb     sy
    isb
1:  cbz     x25, 2f
    ldr     x0, [x24], #8
    at      s12e1r, x0
    isb
    mrs     x1, par_el1
    at      s12e1w, x0
    isb
    mrs     x2, par_el1
    stp     x1, x2, [x26], #16
    sub     x25, x25, #1
    b       1b
2:  ldr     x0, =HCR_RW
    msr     hcr_el2, x0
    isb
    b       case_done

hyp_case:
    msr     mair_el2, x3
    msr     tcr_el2, x1
    msr     ttbr0_el2, x2
    isb
    tlbi    alle2
    dsb     sy
    isb
    ldr     x4, =(SCTLR_EL2_OFF | 1)
    msr     sctlr_el2, x4
    isb
1:  cbz     x25, 2f
    ldr     x0, [x24], #8
    at      s1e2r, x0
    isb
    mrs     x1, par_el1
    at      s1e2w, x0
    isb
    mrs     x2, par_el1
    stp     x1, x2, [x26], #16
    sub     x25, x25, #1
    b       1b
2:  ldr     x4, =SCTLR_EL2_OFF
    msr     sctlr_el2, x4
    isb
    tlbi    alle2
    dsb     sy
    isb

case_done:
    add     x21, x21, #64
    add     x23, x23, #1
    b       next_case

all_done:
    mov     x0, #1
    str     x0, [x22]
    bl      write_results
    mov     x0, #0
    b       exit

// Writes the results region to the host file named in the header. Returns only on success.
write_results:
    mov     x28, x30
    adr     x1, sh_block
    ldr     x0, [x19, #24]                     // name
    str     x0, [x1, #0]
    mov     x0, #5                             // mode "wb"
    str     x0, [x1, #8]
    ldr     x0, [x19, #32]                     // name length
    str     x0, [x1, #16]
    mov     w0, #SYS_OPEN
    hlt     #0xf000
    cmn     x0, #1
    b.eq    io_failed
    mov     x27, x0                            // handle
    adr     x1, sh_block
    str     x27, [x1, #0]
    ldr     x0, [x19, #40]
    str     x0, [x1, #8]
    ldr     x0, [x19, #48]
    str     x0, [x1, #16]
    mov     w0, #SYS_WRITE
    hlt     #0xf000
    cbnz    x0, io_failed                      // bytes not written
    adr     x1, sh_block
    str     x27, [x1, #0]
    mov     w0, #SYS_CLOSE
    hlt     #0xf000
    mov     x30, x28
    ret
io_failed:
    mov     x0, #4
    b       exit

// x0 = exit code
exit:
    adr     x1, sh_block
    ldr     x2, =APP_EXIT
    stp     x2, x0, [x1]
    mov     w0, #SYS_EXIT
    hlt     #0xf000
3:  wfi
    b       3b

// Any exception: MMU off, record it, write the results, exit 3.
trap:
    ldr     x0, =SCTLR_EL2_OFF
    msr     sctlr_el2, x0
    isb
    ldr     x19, =DATA
    ldr     x22, [x19, #40]
    mov     x0, #2
    str     x0, [x22, #0]
    mrs     x0, esr_el2
    str     x0, [x22, #8]
    mrs     x0, elr_el2
    str     x0, [x22, #16]
    mrs     x0, far_el2
    str     x0, [x22, #24]
    mrs     x0, spsr_el2
    str     x0, [x22, #40]
    bl      write_results
    mov     x0, #3
    b       exit

    .ltorg

    .balign 2048
vectors:
    .rept 16
    b       trap
    .balign 128
    .endr

    .data
    .balign 8
sh_block:
    .quad 0, 0, 0, 0
