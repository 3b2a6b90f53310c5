//! A few instructions at CPL 3, for the `hostile` group's `cpl3` class: a user window of two
//! pages (pvh's [`pvh::boot::install_user_window`]: the probes' code page and a stack page,
//! the only user-accessible mappings), user code and data segments and the TSS's RSP0 stack
//! (pvh's [`gdt`]), and recording gates that bring the exception the probe raised back to
//! CPL 0 as a plain return from [`run`].
//!
//! Each probe ends with `ud2`, so a probe whose instructions all complete still comes back
//! (as `#UD` at the `ud2`). Interrupts stay off throughout: the probes run with IF clear.

use core::arch::{asm, global_asm};

use spin::Once;

use super::gdt;

global_asm!(
    r#"
    /* ---- the code page mapped at the user window: the probes, nothing else ---- */
    .pushsection .text.user_window, "ax"
    .balign 4096
    .global user_window_code
user_window_code:
    /* cs: the code segment, in rax, then #UD. */
    .global user_probe_cs
user_probe_cs:
    mov eax, cs
    ud2
    /* unaligned: an 8-byte load one byte off alignment, then #UD (#AC first, with CR0.AM
       and EFLAGS.AC set, on a CPU that checks alignment). */
    .global user_probe_unaligned
user_probe_unaligned:
    mov rax, qword ptr [rsp - 15]
    .global user_probe_unaligned_end
user_probe_unaligned_end:
    ud2
    /* aligned: the same load aligned, then #UD. */
    .global user_probe_aligned
user_probe_aligned:
    mov rax, qword ptr [rsp - 16]
    ud2
    /* step: two one-byte instructions (entered with TF set: #DB after the first). */
    .global user_probe_step
user_probe_step:
    nop
    .global user_probe_step_end
user_probe_step_end:
    nop
    ud2
    /* privileged: CLI at CPL 3 with IOPL 0 is #GP(0). */
    .global user_probe_privileged
user_probe_privileged:
    cli
    ud2
    .balign 4096
    .popsection

    .pushsection .data.user_window, "aw"
    .balign 8
user_kernel_rsp: .quad 0
    .global user_exit
user_exit:
    .quad 0, 0, 0, 0, 0, 0  /* vector, error code, rip, rax, dr6, rflags */
    .popsection

    .pushsection .text.user_enter, "ax"
    /* user_enter(rip, rsp, rflags, cs, ss): iretq to CPL 3; comes back through a gate. */
    .global user_enter
user_enter:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov qword ptr [rip + user_kernel_rsp], rsp
    push r8
    push rsi
    push rdx
    push rcx
    push rdi
    xor eax, eax
    xor ebx, ebx
    xor ebp, ebp
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    xor r15d, r15d
    iretq

    .global user_gate_db
user_gate_db:
    push 0
    push 1
    jmp user_gate_common
    .global user_gate_ud
user_gate_ud:
    push 0
    push 6
    jmp user_gate_common
    .global user_gate_gp
user_gate_gp:
    push 13
    jmp user_gate_common
    .global user_gate_pf
user_gate_pf:
    push 14
    jmp user_gate_common
    .global user_gate_ac
user_gate_ac:
    push 17
user_gate_common:
    /* vector, error code, rip, cs, rflags, rsp, ss */
    test qword ptr [rsp + 24], 3
    jz 9f
    mov qword ptr [rip + user_exit + 24], rax
    pop rax
    mov qword ptr [rip + user_exit], rax
    pop rax
    mov qword ptr [rip + user_exit + 8], rax
    pop rax
    mov qword ptr [rip + user_exit + 16], rax
    mov rax, qword ptr [rsp + 8]
    mov qword ptr [rip + user_exit + 40], rax
    xor eax, eax
    cmp qword ptr [rip + user_exit], 1
    jne 2f
    mov rax, dr6
    mov rcx, 0xffff0ff0
    mov dr6, rcx
2:  mov qword ptr [rip + user_exit + 32], rax
    mov rsp, qword ptr [rip + user_kernel_rsp]
    push 2
    popfq
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
    /* From CPL 0: not a probe's; nothing to return to. */
9:  cli
    hlt
    jmp 9b
    .popsection
"#
);

unsafe extern "C" {
    static user_window_code: u8;
    static user_probe_cs: u8;
    static user_probe_unaligned: u8;
    static user_probe_unaligned_end: u8;
    static user_probe_aligned: u8;
    static user_probe_step: u8;
    static user_probe_step_end: u8;
    static user_probe_privileged: u8;
    static mut user_exit: [u64; 6];
    fn user_enter(rip: u64, rsp: u64, rflags: u64, cs: u64, ss: u64);
    fn user_gate_db();
    fn user_gate_ud();
    fn user_gate_gp();
    fn user_gate_pf();
    fn user_gate_ac();
}

/// The stack page of the user window.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The user window's stack page (written at CPL 3 only by the probes).
static mut USER_STACK: Page = Page([0; 4096]);

/// The user window, once installed: its virtual address.
static WINDOW: Once<Result<u64, pvh::boot::UserWindowError>> = Once::new();

/// EFLAGS bits the probes set.
const RFLAGS_RESERVED: u64 = 1 << 1;
const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_AC: u64 = 1 << 18;
/// CR0.AM.
const CR0_AM: u64 = 1 << 18;

/// What a probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `mov eax, cs`: the code segment it ran with comes back in `rax`.
    Cs,
    /// An unaligned 8-byte load with CR0.AM and EFLAGS.AC set: `#AC(0)` on a CPU that
    /// checks alignment.
    AlignmentCheck,
    /// The same load with EFLAGS.AC clear: completes.
    UnalignedNoCheck,
    /// An aligned load with CR0.AM and EFLAGS.AC set: completes.
    AlignedCheck,
    /// Two instructions with EFLAGS.TF set: `#DB` (single step) after the first.
    SingleStep,
    /// `cli` with IOPL 0: `#GP(0)`.
    Privileged,
}

/// How a probe came back to CPL 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The vector it raised.
    pub vector: u64,
    /// Its error code (0 for the vectors without one).
    pub error_code: u64,
    /// Where it was raised, as an offset into the probe (a fault: the instruction; a trap:
    /// the next one).
    pub offset: u64,
    /// rax at that point.
    pub rax: u64,
    /// DR6 after a `#DB` (0 otherwise).
    pub dr6: u64,
    /// EFLAGS at that point.
    pub rflags: u64,
}

/// Why a probe could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserError {
    /// The user window could not be installed.
    Window(pvh::boot::UserWindowError),
    /// The GDT has no user segments (not initialised).
    NoUserSegments,
}

/// A probe's entry point, as an offset into the code page.
fn entry(probe: Probe) -> u64 {
    let code = (&raw const user_window_code) as u64;
    let at = match probe {
        Probe::Cs => (&raw const user_probe_cs) as u64,
        Probe::AlignmentCheck | Probe::UnalignedNoCheck => (&raw const user_probe_unaligned) as u64,
        Probe::AlignedCheck => (&raw const user_probe_aligned) as u64,
        Probe::SingleStep => (&raw const user_probe_step) as u64,
        Probe::Privileged => (&raw const user_probe_privileged) as u64,
    };
    at - code
}

/// Offsets of interest inside the probes, from each probe's start: the end of the unaligned
/// load (where the `#UD` after it is raised) and of the first stepped instruction (where the
/// single-step `#DB` is raised).
pub fn landmarks() -> (u64, u64) {
    (
        (&raw const user_probe_unaligned_end) as u64 - (&raw const user_probe_unaligned) as u64,
        (&raw const user_probe_step_end) as u64 - (&raw const user_probe_step) as u64,
    )
}

fn window() -> Result<u64, UserError> {
    let w = WINDOW.call_once(|| {
        let code = (&raw const user_window_code) as u64;
        let stack = (&raw const USER_STACK) as u64;
        pvh::boot::install_user_window(code, stack)
    });
    w.map_err(UserError::Window)
}

/// A 64-bit DPL-0 interrupt gate to `handler` through `selector`.
fn gate(handler: u64, selector: u16) -> (u64, u64) {
    let low = (handler & 0xffff)
        | (u64::from(selector) << 16)
        | (0x8e << 40)
        | (((handler >> 16) & 0xffff) << 48);
    (low, handler >> 32)
}

/// Vectors whose gates [`run`] replaces while a probe runs, and their recording stubs.
fn gates() -> [(u8, u64); 5] {
    [
        (1, user_gate_db as *const () as u64),
        (6, user_gate_ud as *const () as u64),
        (13, user_gate_gp as *const () as u64),
        (14, user_gate_pf as *const () as u64),
        (17, user_gate_ac as *const () as u64),
    ]
}

/// Runs `probe` at CPL 3 and returns how it came back. Interrupts are off meanwhile; the
/// kernel's gates, CR0 and segment registers are as before afterwards.
pub fn run(probe: Probe) -> Result<Exit, UserError> {
    let base = window()?;
    let sel = gdt::user_selectors().ok_or(UserError::NoUserSegments)?;
    let kernel = gdt::kernel_selectors().ok_or(UserError::NoUserSegments)?;
    let rip = base + entry(probe);
    let rsp = base + 2 * 4096;
    let mut rflags = RFLAGS_RESERVED;
    let mut am = false;
    match probe {
        Probe::AlignmentCheck | Probe::AlignedCheck => {
            rflags |= RFLAGS_AC;
            am = true;
        }
        Probe::SingleStep => rflags |= RFLAGS_TF,
        Probe::Cs | Probe::UnalignedNoCheck | Probe::Privileged => {}
    }
    let exit = x86_64::instructions::interrupts::without_interrupts(|| {
        let idt = x86_64::instructions::tables::sidt().base.as_u64();
        let gates = gates();
        let mut saved = [(0u64, 0u64); 5];
        let cr0 = x86_64::registers::control::Cr0::read_raw();
        for (i, &(v, handler)) in gates.iter().enumerate() {
            let at = (idt + u64::from(v) * 16) as *mut u64;
            // SAFETY: `at` is gate `v` of the loaded IDT (pvh's static table, writable, 256
            // gates of 16 bytes); interrupts are off on the one CPU, so the CPU never
            // delivers through a half-written gate; the stubs return to `user_enter`'s
            // caller only for an exception from CPL 3 and halt otherwise.
            unsafe {
                saved[i] = (at.read_volatile(), at.add(1).read_volatile());
                let (low, high) = gate(handler, kernel.0);
                at.write_volatile(low);
                at.add(1).write_volatile(high);
            }
        }
        // SAFETY: CR0.AM only enables alignment checks at CPL 3 (where only the probe runs)
        // and is put back below; `user_enter` runs the probe's code on the user window (its
        // code and stack pages, the only user-accessible ones) with interrupts off, and
        // returns here through a recording gate with the callee-saved registers and the
        // kernel stack as they were (the CPU switched to the TSS's RSP0 stack for the
        // exception). The data segment registers and SS, nulled by IRETQ to CPL 3 and by the
        // exception's entry, are reloaded with the kernel's data segment (as the boot left
        // them; the kernel keeps no FS or GS base).
        unsafe {
            if am {
                x86_64::registers::control::Cr0::write_raw(cr0 | CR0_AM);
            }
            user_enter(rip, rsp, rflags, u64::from(sel.0), u64::from(sel.1));
            x86_64::registers::control::Cr0::write_raw(cr0);
            asm!(
                "mov ds, {0:x}", "mov es, {0:x}", "mov fs, {0:x}", "mov gs, {0:x}",
                "mov ss, {0:x}",
                in(reg) kernel.1,
                options(nostack, preserves_flags)
            );
        }
        for (i, &(v, _)) in gates.iter().enumerate() {
            let at = (idt + u64::from(v) * 16) as *mut u64;
            // SAFETY: as above: the same gate, given back its saved contents.
            unsafe {
                at.write_volatile(saved[i].0);
                at.add(1).write_volatile(saved[i].1);
            }
        }
        // SAFETY: `user_exit` is written only by the gate stubs (interrupts off), read here.
        unsafe { (&raw const user_exit).read_volatile() }
    });
    Ok(Exit {
        vector: exit[0],
        error_code: exit[1],
        offset: exit[2].wrapping_sub(rip),
        rax: exit[3],
        dr6: exit[4],
        rflags: exit[5],
    })
}
