//! Instructions a hostile guest executes, each answered with the exception it raised or
//! what it left in its registers: while [`Traps`] lives, the IDT gates of `#UD`, `#GP` and
//! `#PF` point at stubs that record the vector and resume after the instruction (the address
//! each probe stores in `hostile_trap_resume` before it runs), instead of the kernel's fault
//! report, which never resumes.

use core::arch::{asm, global_asm};

global_asm!(
    r#"
    .pushsection .data.hostile_trap, "aw"
    .balign 8
    .global hostile_trap_vector
hostile_trap_vector: .quad 0
    .global hostile_trap_resume
hostile_trap_resume: .quad 0
    .popsection

    .pushsection .text.hostile_trap, "ax"
    .global hostile_trap_ud
hostile_trap_ud:
    mov qword ptr [rip + hostile_trap_vector], 6
    jmp hostile_trap_common
    .global hostile_trap_gp
hostile_trap_gp:
    add rsp, 8
    mov qword ptr [rip + hostile_trap_vector], 13
    jmp hostile_trap_common
    .global hostile_trap_pf
hostile_trap_pf:
    add rsp, 8
    mov qword ptr [rip + hostile_trap_vector], 14
hostile_trap_common:
    push rax
    mov rax, qword ptr [rip + hostile_trap_resume]
    test rax, rax
    jz 2f
    mov qword ptr [rsp + 8], rax
    mov qword ptr [rip + hostile_trap_resume], 0
    pop rax
    iretq
2:
    cli
    hlt
    jmp 2b
    .popsection
"#
);

unsafe extern "C" {
    static mut hostile_trap_vector: u64;
    static mut hostile_trap_resume: u64;
    fn hostile_trap_ud();
    fn hostile_trap_gp();
    fn hostile_trap_pf();
}

/// The vectors whose gates [`Traps`] replaces.
const VECTORS: [u8; 3] = [6, 13, 14];

/// The recording gates, installed until dropped (the kernel's gates are then put back).
pub struct Traps {
    idt: u64,
    saved: [(u64, u64); 3],
}

fn gate(handler: u64, selector: u16) -> (u64, u64) {
    let low = (handler & 0xffff)
        | (u64::from(selector) << 16)
        | (0x8e << 40)
        | (((handler >> 16) & 0xffff) << 48);
    (low, handler >> 32)
}

impl Traps {
    /// Installs the recording gates (interrupts off while the gates change).
    pub fn install() -> Self {
        let idt = x86_64::instructions::tables::sidt().base.as_u64();
        let selector: u16;
        // SAFETY: reads CS into a register; no memory or flags touched.
        unsafe {
            asm!("mov {0:x}, cs", out(reg) selector, options(nomem, nostack, preserves_flags))
        };
        let handlers = [
            hostile_trap_ud as *const () as u64,
            hostile_trap_gp as *const () as u64,
            hostile_trap_pf as *const () as u64,
        ];
        let mut saved = [(0, 0); 3];
        x86_64::instructions::interrupts::without_interrupts(|| {
            for (i, v) in VECTORS.iter().enumerate() {
                let at = (idt + u64::from(*v) * 16) as *mut u64;
                // SAFETY: `at` is gate `v` of the loaded IDT (the kernel's static table,
                // writable, 256 gates of 16 bytes); one CPU with interrupts off, so the CPU
                // never sees a half-written gate; the stubs end with `iretq`.
                unsafe {
                    saved[i] = (at.read_volatile(), at.add(1).read_volatile());
                    let (low, high) = gate(handlers[i], selector);
                    at.write_volatile(low);
                    at.add(1).write_volatile(high);
                }
            }
        });
        Self { idt, saved }
    }
}

impl Drop for Traps {
    fn drop(&mut self) {
        x86_64::instructions::interrupts::without_interrupts(|| {
            for (i, v) in VECTORS.iter().enumerate() {
                let at = (self.idt + u64::from(*v) * 16) as *mut u64;
                // SAFETY: as in `install`: the same gate, given back its saved contents.
                unsafe {
                    at.write_volatile(self.saved[i].0);
                    at.add(1).write_volatile(self.saved[i].1);
                }
            }
        });
    }
}

/// The vector the last probe raised (0: none), cleared.
fn take_vector() -> u64 {
    // SAFETY: a plain u64 written only by the stubs (with interrupts off) and here.
    unsafe {
        let v = (&raw const hostile_trap_vector).read_volatile();
        (&raw mut hostile_trap_vector).write_volatile(0);
        (&raw mut hostile_trap_resume).write_volatile(0);
        v
    }
}

/// The address probes store their resume point in.
fn resume_slot() -> u64 {
    (&raw mut hostile_trap_resume) as u64
}

/// What an instruction did: the vector it raised, or the registers it left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It raised this vector.
    Raised(u64),
    /// It completed, leaving rax and rdx (and rcx for RDTSCP).
    Done(u64, u64, u64),
}

impl Outcome {
    fn of(rax: u64, rdx: u64, rcx: u64) -> Self {
        match take_vector() {
            0 => Self::Done(rax, rdx, rcx),
            v => Self::Raised(v),
        }
    }
}

/// One of the instructions the group executes (with the [`Traps`] installed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `rdmsr` of this MSR.
    Rdmsr(u32),
    /// `wrmsr` of this MSR with this value.
    Wrmsr(u32, u64),
    /// `rdpmc` of this counter.
    Rdpmc(u32),
    /// `rdtscp`.
    Rdtscp,
    /// `monitor` on a variable of the group's.
    Monitor,
    /// `mwait` with no hints.
    Mwait,
    /// One of the SVM instructions by its third opcode byte (`0f 01 xx`): VMRUN `d8`,
    /// VMMCALL `d9`, VMLOAD `da`, VMSAVE `db`, STGI `dc`, CLGI `dd`, SKINIT `de`, INVLPGA
    /// `df`, with rax as given (VMMCALL: the hypercall number) and every argument register 0.
    Svm(u8, u64),
}

/// A word MONITOR watches.
static MONITORED: u64 = 0;

/// Executes `insn` with `_traps` installed.
pub fn execute(_traps: &Traps, insn: Insn) -> Outcome {
    let slot = resume_slot();
    let (mut rax, mut rdx, mut rcx) = (0u64, 0u64, 0u64);
    // SAFETY: the recording gates are installed (`_traps`), and each asm block stores the
    // address after its instruction in the resume slot first, so a fault resumes there with
    // the vector recorded. The instructions touch no memory of the kernel's: the MSRs
    // written are refused or harmless (the caller's choice), MONITOR watches a static, the
    // SVM instructions are intercepted by the hypervisor (rax 0 names no memory of ours if
    // one were not).
    unsafe {
        match insn {
            Insn::Rdmsr(msr) => asm!(
                "lea {r}, [rip + 2f]", "mov qword ptr [{s}], {r}", "rdmsr", "2:",
                r = out(reg) _, s = in(reg) slot, in("ecx") msr,
                out("eax") rax, out("edx") rdx,
            ),
            Insn::Wrmsr(msr, value) => asm!(
                "lea {r}, [rip + 2f]", "mov qword ptr [{s}], {r}", "wrmsr", "2:",
                r = out(reg) _, s = in(reg) slot, in("ecx") msr,
                in("eax") value & 0xffff_ffff, in("edx") value >> 32,
            ),
            Insn::Rdpmc(counter) => asm!(
                "lea {r}, [rip + 2f]", "mov qword ptr [{s}], {r}", "rdpmc", "2:",
                r = out(reg) _, s = in(reg) slot, in("ecx") counter,
                out("eax") rax, out("edx") rdx,
            ),
            Insn::Rdtscp => asm!(
                "lea {r}, [rip + 2f]", "mov qword ptr [{s}], {r}", "rdtscp", "2:",
                r = out(reg) _, s = in(reg) slot,
                out("eax") rax, out("edx") rdx, out("ecx") rcx,
            ),
            Insn::Monitor => asm!(
                "lea {r}, [rip + 2f]", "mov qword ptr [{s}], {r}", ".byte 0x0f, 0x01, 0xc8", "2:",
                r = out(reg) _, s = in(reg) slot,
                in("rax") &raw const MONITORED as u64, in("ecx") 0, in("edx") 0,
            ),
            Insn::Mwait => asm!(
                "lea {r}, [rip + 2f]", "mov qword ptr [{s}], {r}", ".byte 0x0f, 0x01, 0xc9", "2:",
                r = out(reg) _, s = in(reg) slot, in("eax") 0, in("ecx") 0,
            ),
            Insn::Svm(op, value) => {
                rax = value;
                svm(op, slot, &mut rax);
            }
        }
    }
    Outcome::of(rax, rdx, rcx)
}

/// One SVM instruction `0f 01 <op>` with rax = `*rax` (written back: VMMCALL's answer).
///
/// # Safety
/// As in [`execute`].
unsafe fn svm(op: u8, slot: u64, rax: &mut u64) {
    macro_rules! one {
        ($byte:literal) => {
            asm!(
                "lea {r}, [rip + 2f]", "mov qword ptr [{s}], {r}",
                concat!(".byte 0x0f, 0x01, ", $byte), "2:",
                r = out(reg) _, s = in(reg) slot, inout("rax") *rax,
                inout("rdi") 0u64 => _, inout("rsi") 0u64 => _, inout("rdx") 0u64 => _,
                inout("r10") 0u64 => _, inout("r8") 0u64 => _,
                inout("ecx") 0u32 => _, lateout("r11") _,
            )
        };
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match op {
            0xd8 => one!("0xd8"),
            0xd9 => one!("0xd9"),
            0xda => one!("0xda"),
            0xdb => one!("0xdb"),
            0xdc => one!("0xdc"),
            0xdd => one!("0xdd"),
            0xde => one!("0xde"),
            _ => one!("0xdf"),
        }
    }
}
