//! The event-channel upcall entry: an IDT stub for the HVM callback vector that saves the
//! caller-saved registers, calls the Rust handler [`install`] was given (the platform's event
//! scan: this layer knows nothing of Xen's events) and returns with `iretq`; plus the
//! interrupt-flag primitives the idle loop needs (`sti; hlt` without a lost wake-up).
//!
//! With `HVM_PARAM_CALLBACK_IRQ` of type vector, Xen injects the vector directly (no LAPIC,
//! so no EOI): the upcall is re-injected for as long as `vcpu_info.evtchn_upcall_pending` is
//! set, and the handler clears it before scanning (Linux's `xen_hvm_evtchn_do_upcall`).
//!
//! The upcall must never run between the `sti` and the `hlt` of [`enable_and_halt`]: the
//! `hlt` would then wait for the next event, and the one that should have ended it has just
//! been handled. On hardware the `sti` shadow rules this out, but a nested SVM that drops the
//! shadow can inject there: QEMU 7.2's TCG saves it in the VMCB's `int_state` at a #VMEXIT
//! and never loads it back at VMRUN, so an interrupt that exits to Xen right after the `sti`
//! comes back to a guest without the shadow, and Xen's pending upcall is injected before the
//! `hlt` (the platform guest on stock Xen under QEMU slept for good this way, after its
//! timer's upcall, in 3 of 46 boots, and in CI's `xen-test`). The stub therefore checks
//! where it interrupted: at that `hlt`, it resumes after it, as a `hlt` ended by this very
//! upcall would have, and counts it ([`halts_skipped`]). On hardware this never triggers.

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

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
    /* Interrupted at the `hlt` of pvguest_sti_hlt, i.e. inside the `sti` shadow: resume
       after it (the saved rip is above the 72 bytes just pushed). */
    lea pvguest_idle_hlt(%rip), %rax
    cmp %rax, 72(%rsp)
    jne 1f
    incq 72(%rsp)
    lock incq {skipped}(%rip)
1:
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

    /* sti; hlt as a function of its own, so that the `hlt` has one address the stub can
       recognise. Clobbers nothing. */
    .p2align 4
    .global pvguest_sti_hlt
pvguest_sti_hlt:
    sti
pvguest_idle_hlt:
    hlt
    ret
    .popsection
"#,
    handler = sym HANDLER,
    skipped = sym HALTS_SKIPPED,
    options(att_syntax)
);

/// Upcalls that interrupted the `hlt` of [`enable_and_halt`] before it ran (see the module
/// documentation); the stub skipped that `hlt` each time.
static HALTS_SKIPPED: AtomicU64 = AtomicU64::new(0);

/// How many times an upcall arrived between the `sti` and the `hlt` of [`enable_and_halt`]
/// (impossible on hardware; QEMU's nested SVM drops the `sti` shadow), each time with the
/// `hlt` skipped so that the vCPU did not sleep past the event.
pub fn halts_skipped() -> u64 {
    HALTS_SKIPPED.load(Ordering::Relaxed)
}

unsafe extern "C" {
    /// The entry stub above (a code address, never called from Rust).
    static xen_upcall_entry: u8;
    /// `sti; hlt; ret` (above).
    fn pvguest_sti_hlt();
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
/// with IF=1 becomes `SCHEDOP_block`, which returns at once when an upcall is pending. Where
/// the shadow is not kept and the upcall runs before the `hlt` after all, the stub skips the
/// `hlt` ([`halts_skipped`]).
///
/// Returns with interrupts enabled.
pub fn enable_and_halt() {
    // SAFETY: pvguest_sti_hlt is `sti; hlt; ret`: it only changes the interrupt flag and
    // waits, and clobbers no register; the upcall handler that may run preserves them all.
    // A call, not inline asm, so the compiler assumes memory changed (latched events).
    unsafe { pvguest_sti_hlt() };
}
