//! A domain's accesses to guest-physical memory outside its RAM and special pages: a nested
//! page fault on a frame hv has not mapped. Xen 4.17 types such a frame `p2m_mmio_dm`, and
//! `hvm_hap_nested_page_fault` hands the access to `handle_mmio`: the emulator completes the
//! instruction, and with no ioreq server (a PVH domU has no device model) its read returns
//! `~0` and its write is dropped (`null_handler` in `hvm/emulate.c`); an instruction the
//! emulator cannot complete gets `#GP(0)`. hv does the same with its one decoder
//! (`svm::decode`, [`crate::svm::decode::Instruction::memory_operand`]) and completes the instruction
//! with [`emulate::complete_access`]. Nothing is mapped and no frame or table is taken, so
//! nothing is charged to the domain's paging pool.
//!
//! Where hv differs: it completes `mov`, `movzx`, `movsx`, `bt` and `and`/`or`/`cmp`/`test`
//! (Xen's emulator takes nearly every instruction, string moves included); anything else,
//! an instruction fetched from such memory, and a guest page-table walk through it get
//! `#GP(0)` (for the walk, Xen's emulator injects the guest's `#PF`; hv has no decode assist
//! telling it the linear address). The local APIC page (0xFEE00000, emulated by Xen) and a
//! fault on a present entry still crash the domain, as does every such access with the hv
//! option `npf=crash` (for debugging).

use core::sync::atomic::{AtomicBool, Ordering};

use crate::cmdline::NpfPolicy;
use crate::guest_log;
use crate::svm::decode::Access;
use crate::svm::emulate::{self, CpuState};

use super::{Domain, Ending};

/// `npf=crash` was given.
static CRASH_ON_NPF: AtomicBool = AtomicBool::new(false);

/// Sets what every domain's access outside its memory does (hv's `npf=` option), once at
/// start.
pub fn set_npf_policy(policy: NpfPolicy) {
    CRASH_ON_NPF.store(policy == NpfPolicy::Crash, Ordering::Relaxed);
}

/// EXITINFO1 of a nested page fault (AMD APM vol. 2, 15.25.6).
mod fault {
    /// The nested entry was present (a protection fault).
    pub const PRESENT: u64 = 1 << 0;
    /// A write.
    pub const WRITE: u64 = 1 << 1;
    /// An instruction fetch.
    pub const FETCH: u64 = 1 << 4;
    /// The fault came while walking the guest's own page tables.
    pub const GUEST_TABLES: u64 = 1 << 33;
}

/// The local APIC's page at its default base: Xen emulates a LAPIC there for a PVH domU;
/// hv does not yet, and keeps the crash rather than answer all ones.
const LAPIC_PAGE: u64 = 0xfee0_0000;

const VECTOR_GP: u8 = 13;

impl Domain {
    /// A nested page fault at guest-physical `gpa` with EXITINFO1 `info1`.
    pub(super) fn nested_page_fault(&mut self, info1: u64, gpa: u64) -> Option<Ending> {
        if CRASH_ON_NPF.load(Ordering::Relaxed)
            || info1 & fault::PRESENT != 0
            || gpa & !0xfff == LAPIC_PAGE
        {
            return self.crash(format_args!(
                "access to guest-physical {gpa:#x} outside its memory (error {info1:#x})"
            ));
        }
        match self.unbacked_access(info1) {
            Ok(len) => self.advance(len),
            Err(why) => {
                guest_log!(
                    self.guest_log,
                    "d{}: access to guest-physical {gpa:#x} (error {info1:#x}) at rip {:#x} not emulated: {why}; #GP(0) as on Xen",
                    self.domid(),
                    self.vmcb.save.rip
                );
                self.inject(VECTOR_GP, Some(0));
            }
        }
        None
    }

    /// Completes the instruction at RIP whose access faulted: its reads read all ones, its
    /// writes go nowhere. Its length, or why it cannot be completed.
    fn unbacked_access(&mut self, info1: u64) -> Result<u64, &'static str> {
        if info1 & fault::FETCH != 0 {
            return Err("instruction fetch");
        }
        if info1 & fault::GUEST_TABLES != 0 {
            return Err("guest page-table walk");
        }
        let insn = self
            .fetch_instruction()
            .map_err(|_| "instruction not decoded")?;
        let operand = insn
            .memory_operand()
            .ok_or("instruction without a memory operand hv completes")?;
        let write = info1 & fault::WRITE != 0;
        match (operand.access, write) {
            (Access::Read, true) | (Access::Write, false) => {
                return Err("the decoded access does not match the fault");
            }
            _ => {}
        }
        let mut cpu = self.cpu_state();
        emulate::complete_access(&operand, emulate::all_ones(operand.size), &mut cpu);
        self.set_cpu_state(&cpu);
        Ok(insn.len as u64)
    }

    /// The general registers and RFLAGS.
    fn cpu_state(&self) -> CpuState {
        let (r, s) = (&self.regs, &self.vmcb.save);
        CpuState {
            gprs: [
                s.rax, r.rcx, r.rdx, r.rbx, s.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11,
                r.r12, r.r13, r.r14, r.r15,
            ],
            rflags: s.rflags,
        }
    }

    /// Writes back what [`Self::cpu_state`] read.
    fn set_cpu_state(&mut self, cpu: &CpuState) {
        let r = &mut self.regs;
        let [
            rax,
            rcx,
            rdx,
            rbx,
            rsp,
            rbp,
            rsi,
            rdi,
            r8,
            r9,
            r10,
            r11,
            r12,
            r13,
            r14,
            r15,
        ] = cpu.gprs;
        (r.rcx, r.rdx, r.rbx, r.rbp, r.rsi, r.rdi) = (rcx, rdx, rbx, rbp, rsi, rdi);
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (r8, r9, r10, r11, r12, r13, r14, r15);
        let s = &mut self.vmcb.save;
        (s.rax, s.rsp, s.rflags) = (rax, rsp, cpu.rflags);
    }
}
