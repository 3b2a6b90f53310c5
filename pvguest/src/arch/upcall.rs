//! The event-channel upcall entry: an IDT stub for the HVM callback vector that saves the
//! caller-saved registers, calls the Rust handler [`install`] was given (the platform's event
//! scan: this layer knows nothing of Xen's events) and returns with `iretq`; plus the
//! interrupt-flag primitives the idle loop needs (`sti; hlt` without a lost wake-up).
//!
//! With `HVM_PARAM_CALLBACK_IRQ` of type vector, Xen injects the vector directly (no LAPIC,
//! so no EOI): the upcall is re-injected for as long as `vcpu_info.evtchn_upcall_pending` is
//! set, and the handler clears it before scanning (Linux's `xen_hvm_evtchn_do_upcall`).

use core::sync::atomic::{AtomicPtr, Ordering};

use super::exceptions;

/// The IDT vector Xen injects for event-channel upcalls (Linux's `HYPERVISOR_CALLBACK_VECTOR`).
pub const UPCALL_VECTOR: u8 = 0xf3;

/// The handler the stub calls (an `extern "C" fn()`): the one [`install`] was given, a
/// function that does nothing before. The stub reads it with one aligned 8-byte load.
static HANDLER: AtomicPtr<()> = AtomicPtr::new(ignore_upcall as *mut ());

/// The handler before [`install`].
extern "C" fn ignore_upcall() {}

core::arch::global_asm!(
    r#"
    .pushsection .text.upcall, "ax"
    .p2align 4
    .global xen_upcall_entry
xen_upcall_entry:
    /* The CPU pushed ss, rsp, rflags, cs, rip (40 bytes, from a 16-byte aligned rsp). Save
       the nine caller-saved registers (72 bytes): rsp is 16-byte aligned again at the call.
       The kernel target is soft-float: Rust code uses no SSE/x87 state. */
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    cld
    call *{handler}(%rip)
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq
    .popsection
"#,
    handler = sym HANDLER,
    options(att_syntax)
);

unsafe extern "C" {
    /// The entry stub above (a code address, never called from Rust).
    static xen_upcall_entry: u8;
}

/// Installs the upcall stub at [`UPCALL_VECTOR`], calling `handler` with interrupts disabled.
/// Call with interrupts disabled, before telling Xen to use the vector.
pub fn install(handler: extern "C" fn()) {
    HANDLER.store(handler as *mut (), Ordering::Release);
    x86_64::instructions::interrupts::without_interrupts(|| {
        let entry = (&raw const xen_upcall_entry) as u64;
        // SAFETY: `entry` is the stub above, which saves every caller-saved register (the
        // Rust handler preserves the callee-saved ones), keeps the stack aligned and returns
        // with iretq; interrupts are off while the gate is written.
        unsafe { exceptions::set_interrupt_gate(UPCALL_VECTOR, entry) };
    });
}

/// Enables interrupts and halts until one arrives, atomically: `sti` delays interrupt
/// delivery by one instruction, so an upcall that became pending before this call cannot
/// slip in between and is taken right after (or instead of) the `hlt`. Under Xen, `hlt`
/// with IF=1 becomes `SCHEDOP_block`, which returns at once when an upcall is pending.
///
/// Returns with interrupts enabled.
pub fn enable_and_halt() {
    // SAFETY: sti; hlt only changes the interrupt flag and waits; the upcall handler that
    // may run preserves all registers. Not `nomem`: the handler writes memory the caller
    // reads afterwards (latched events).
    unsafe { core::arch::asm!("sti", "hlt", options(nostack)) };
}
