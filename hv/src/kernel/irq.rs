//! hv's interrupt stubs, installed in pvh's IDT after the exception vectors: one for external
//! interrupts (vectors 32..47 from the remapped, masked PIC), which acknowledges them at both
//! PICs, and the local APIC timer's and spurious vectors.

use pvh::exceptions;

use super::lapic;

core::arch::global_asm!(
    r#"
    .pushsection .text.irq, "ax"
    /* An external interrupt: end of interrupt to both PICs, iretq. */
    .p2align 4
    .global irq_stub
irq_stub:
    push %rax
    mov $0x20, %al
    out %al, $0xa0
    out %al, $0x20
    pop %rax
    iretq

    /* hv's local APIC timer: end of interrupt to the local APIC (its EOI register at
       0xFEE000B0, reached through a zero-extended 32-bit address), iretq. */
    .p2align 4
    .global lapic_timer_stub
lapic_timer_stub:
    push %rax
    mov $0xfee000b0, %eax
    movl $0, (%rax)
    pop %rax
    iretq

    /* The local APIC's spurious vector: no EOI. */
    .p2align 4
    .global spurious_stub
spurious_stub:
    iretq
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    /// The external-interrupt stub: end of interrupt to both PICs, `iretq`.
    static irq_stub: u8;
    /// The local APIC timer's stub: end of interrupt to the local APIC, `iretq`.
    static lapic_timer_stub: u8;
    /// The local APIC's spurious-interrupt stub: `iretq`.
    static spurious_stub: u8;
}

/// External-interrupt vectors hv handles (the PIC remapped to 32..47).
pub const IRQ_VECTORS: core::ops::RangeInclusive<u8> = 32..=47;

/// Points the IRQ vectors, the local APIC timer's and its spurious vector at the stubs above.
/// Call after `pvh::exceptions::init`, with interrupts disabled (they are, from the PVH
/// entry until hv's first `sti`).
pub fn install() {
    let gates = IRQ_VECTORS
        .map(|v| (v, (&raw const irq_stub) as u64))
        .chain([
            (lapic::TIMER_VECTOR, (&raw const lapic_timer_stub) as u64),
            (lapic::SPURIOUS_VECTOR, (&raw const spurious_stub) as u64),
        ]);
    for (vector, stub) in gates {
        // SAFETY: each stub saves what it clobbers (rax) and ends with iretq; interrupts are
        // off (the caller), so no gate is read half-written.
        unsafe { exceptions::set_interrupt_gate(vector, stub) };
    }
}
