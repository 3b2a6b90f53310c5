//! A domain's accesses to guest-physical memory outside its RAM and special pages: a nested
//! page fault on a frame hv has not mapped. Xen 4.17 types such a frame `p2m_mmio_dm`, and
//! `hvm_hap_nested_page_fault` hands the access to `handle_mmio`: the emulator completes the
//! instruction, and with no ioreq server (a PVH domU has no device model) its read returns
//! `~0` and its write is dropped (`null_handler` in `hvm/emulate.c`); an instruction the
//! emulator cannot complete gets `#GP(0)`. hv does the same with its one decoder
//! ([`crate::svm::decode::Instruction::memory_operand`]; QEMU's SVM has no decode assists)
//! and completes the instruction with [`emulate::complete_access`]. Nothing is mapped and no
//! frame or table is taken, so nothing is charged to the domain's paging pool. (Mapping one
//! shared read-only all-ones frame lazily was the other way: it would take table pages, have
//! to be undone when the guest later places a page there, and let hv's own accesses to guest
//! memory, hypercall buffers and grants, find a frame where Xen finds none.)
//!
//! A write to a read-only mapping (a grant mapped read-only) is completed the same way with
//! its write dropped, as Xen drops writes to its `P2M_DISCARD_WRITE_TYPES`; what the
//! instruction reads comes from the page. Which fault gets what is
//! [`emulate::npf_action`] (host-tested).
//!
//! Where hv differs: it completes `mov`, `movzx`, `movsx`, `bt` and `and`/`or`/`cmp`/`test`
//! (Xen's emulator takes nearly every instruction, string moves included); anything else,
//! an instruction fetched from such memory, and a guest page-table walk through it get
//! `#GP(0)` (for the walk, Xen's emulator injects the guest's `#PF`; hv has no decode assist
//! telling it the linear address). Every such access crashes the domain with the hv option
//! `npf=crash` (for debugging).
//!
//! The local APIC's page (`MSR_APIC_BASE`, 0xFEE00000) goes to the vCPU's emulated APIC
//! ([`crate::vlapic`]) while it is enabled in xAPIC mode, as Xen's `vlapic_range` routes
//! it: a `mov` (or `movzx`/`movsx`, `bt`, `and`/`or`/`cmp`/`test`) reads the register, a
//! `mov` to it writes the value stored. Anything else there gets `#GP(0)`; with the APIC
//! disabled or in x2APIC mode the page still crashes the domain (Xen reads all ones).

use core::sync::atomic::{AtomicBool, Ordering};

use crate::cmdline::NpfPolicy;
use crate::guest::phys::read_bytes;
use crate::guest_log;
use crate::svm::decode::Operand;
use crate::svm::emulate::{self, CpuState, NpfAction, npf, read_register};

use super::{Domain, Ending};

/// `npf=crash` was given.
static CRASH_ON_NPF: AtomicBool = AtomicBool::new(false);

/// Sets what every domain's access outside its memory does (hv's `npf=` option), once at
/// start.
pub fn set_npf_policy(policy: NpfPolicy) {
    CRASH_ON_NPF.store(policy == NpfPolicy::Crash, Ordering::Relaxed);
}

const VECTOR_GP: u8 = 13;

impl Domain {
    /// A nested page fault at guest-physical `gpa` with EXITINFO1 `info1`.
    pub(super) fn nested_page_fault(&mut self, info1: u64, gpa: u64) -> Option<Ending> {
        let crash = CRASH_ON_NPF.load(Ordering::Relaxed);
        let apic_page = self.msrs.apic_base & 0x000f_ffff_ffff_f000;
        let done = match emulate::npf_action(info1, gpa, crash) {
            _ if !crash
                && gpa & !0xfff == apic_page
                && self.msrs.vlapic.mmio_enabled()
                && info1 & (npf::FETCH | npf::GUEST_TABLES) == 0 =>
            {
                self.lapic_access(info1, gpa)
            }
            NpfAction::Crash => {
                return self.crash(format_args!(
                    "access to guest-physical {gpa:#x} outside its memory (error {info1:#x})"
                ));
            }
            NpfAction::Refuse(why) => Err(why),
            NpfAction::Unbacked => self.complete_at_rip(info1, None),
            NpfAction::DiscardWrite => self.complete_at_rip(info1, Some(gpa)),
        };
        match done {
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

    /// Completes the instruction at RIP whose access faulted, its write dropped; what it
    /// reads is all ones, or with `page` the bytes at that guest-physical address (a
    /// read-only mapping). Its length, or why it cannot be completed.
    fn complete_at_rip(&mut self, info1: u64, page: Option<u64>) -> Result<u64, &'static str> {
        let insn = self
            .fetch_instruction()
            .map_err(|_| "instruction not decoded")?;
        let operand = insn
            .memory_operand()
            .ok_or("instruction without a memory operand hv completes")?;
        if !emulate::access_matches(operand.access, info1 & npf::WRITE != 0) {
            return Err("the decoded access does not match the fault");
        }
        let value = match page {
            None => emulate::all_ones(operand.size),
            Some(gpa) => {
                let mut bytes = [0u8; 8];
                let n = usize::from(operand.size).min(8);
                read_bytes(&self.mem, gpa, &mut bytes[..n])
                    .map_err(|_| "the read-only page is not readable")?;
                u64::from_le_bytes(bytes)
            }
        };
        let mut cpu = self.cpu_state();
        emulate::complete_access(&operand, value, &mut cpu);
        self.set_cpu_state(&cpu);
        Ok(insn.len as u64)
    }

    /// Completes the instruction at RIP whose access to the local APIC's page at `gpa`
    /// faulted: a read from the register, or a store into it. Its length, or why not.
    fn lapic_access(&mut self, info1: u64, gpa: u64) -> Result<u64, &'static str> {
        let insn = self
            .fetch_instruction()
            .map_err(|_| "instruction not decoded")?;
        let operand = insn
            .memory_operand()
            .ok_or("instruction without a memory operand hv completes")?;
        let write = info1 & npf::WRITE != 0;
        if !emulate::access_matches(operand.access, write) {
            return Err("the decoded access does not match the fault");
        }
        let offset = u32::try_from(gpa & 0xfff).unwrap_or(0);
        let len = operand.size;
        let now = self.system_time();
        let mut cpu = self.cpu_state();
        if write {
            let stored = match insn.stored_value() {
                Some(Operand::Register(r)) => read_register(&cpu.gprs, r),
                Some(Operand::Immediate(i)) => i,
                None => return Err("only mov writes the local APIC"),
            };
            let value = u32::try_from(stored & 0xffff_ffff).unwrap_or(0);
            self.msrs.vlapic.mmio_write(offset, len, value, now);
        } else {
            let value = self.msrs.vlapic.mmio_read(offset, len, now);
            emulate::complete_access(&operand, u64::from(value), &mut cpu);
            self.set_cpu_state(&cpu);
        }
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
