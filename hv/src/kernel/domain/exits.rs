//! The exit handlers: CPUID, HLT, port I/O, MSRs, XSETBV, what is only kept from the guest
//! ([`emulate::answer`]: the SVM instructions, MONITOR/MWAIT, INVD/WBINVD, `#DB`, `#AC`),
//! nested page faults (`super::mmio`) and hypercalls.

use crate::cpuid;
use crate::guest::phys::{PAGE_SIZE, write_bytes};
use crate::guest::walk::{PagingState, copy_from_guest};
use crate::guest_log;
use crate::hypercall::upcall_vector::UpcallGate;
use crate::hypercall::{self, Action};
use crate::svm::decode::{self, Mode, Opcode};
use crate::svm::emulate::{self, Answer, EFER_LMA, EFER_SVME, PortIo};
use crate::svm::exit;
use crate::svm::msr;

use super::super::machine::Host;
use super::super::svm::{self, MSR_EFER};
use super::env::Env;
use super::events::Wait;
use super::{Domain, Ending};

const RFLAGS_IF: u64 = 1 << 9;
/// CS.L in the VMCB's packed segment attributes (64-bit code).
const CS_L: u16 = 1 << 9;
/// CS.D in the VMCB's packed segment attributes (32-bit default size).
const CS_D: u16 = 1 << 10;
const VECTOR_GP: u8 = 13;

impl Domain {
    /// Handles exit `code`; `Some` if the domain ended. `peers` are the other domains (this
    /// one's slot is empty while it is handled), for what passes between domains.
    pub fn handle_exit(
        &mut self,
        code: u64,
        host: &mut Host,
        peers: &mut [Option<alloc::boxed::Box<Domain>>],
    ) -> Option<Ending> {
        let info1 = self.vmcb.control.exitinfo1;
        let info2 = self.vmcb.control.exitinfo2;
        match emulate::answer(code, info1) {
            Some(Answer::Raise { vector, error_code }) => {
                if vector == 1 {
                    let s = &mut self.vmcb.save;
                    s.dr6 = emulate::injected_db_dr6(s.dr6, s.rflags);
                }
                self.inject(vector, error_code);
                return None;
            }
            Some(Answer::Skip) => {
                self.skip_cache_invalidation();
                return None;
            }
            None => {}
        }
        match code {
            exit::INTR | exit::NMI => None,
            exit::VINTR => {
                self.window_open();
                None
            }
            exit::VMMCALL => self.hypercall(host, peers),
            exit::CPUID => {
                let len = self.instruction_len(Opcode::Cpuid, 2);
                self.cpuid();
                self.advance(len);
                None
            }
            exit::HLT => {
                let len = self.instruction_len(Opcode::Hlt, 1);
                self.advance(len);
                if self.vmcb.save.rflags & RFLAGS_IF == 0 {
                    // Xen: a vCPU halted with interrupts off is down; the domain powers off.
                    Some(Ending::Shutdown(abi::sched::SHUTDOWN_POWEROFF))
                } else {
                    // Xen's hvm_hlt: block until an upcall can be delivered.
                    self.wait(Wait::Block)
                }
            }
            exit::IOIO => {
                self.ioio(info1);
                self.retire(info2);
                None
            }
            exit::MSR => {
                self.msr(info1 != 0);
                None
            }
            exit::XSETBV => {
                self.xsetbv();
                None
            }
            exit::CR4_WRITE => {
                self.cr4_write();
                None
            }
            exit::NPF => self.nested_page_fault(info1, info2),
            exit::SHUTDOWN => self.crash(format_args!("triple fault")),
            // QEMU writes VMEXIT_INVALID as 32 bits.
            exit::INVALID | 0xffff_ffff => self.crash(format_args!(
                "VMRUN refused the guest state (efer {:#x}, cr0 {:#x}, cr4 {:#x})",
                self.vmcb.save.efer, self.vmcb.save.cr0, self.vmcb.save.cr4
            )),
            other => self.crash(format_args!(
                "unexpected exit {other:#x} (info1 {info1:#x}, info2 {info2:#x})"
            )),
        }
    }

    /// The guest's CPUID `leaf`/`sub`.
    fn guest_cpuid(&self, leaf: u32, sub: u32) -> [u32; 4] {
        cpuid::xen_leaf(leaf, sub, &self.cpuid)
            .unwrap_or_else(|| host_cpuid(leaf, sub, self.vmcb.save.cr4))
    }

    fn cpuid(&mut self) {
        let leaf = self.vmcb.save.rax as u32;
        let sub = self.regs.rcx as u32;
        let r = self.guest_cpuid(leaf, sub);
        self.vmcb.save.rax = u64::from(r[0]);
        self.regs.rbx = u64::from(r[1]);
        self.regs.rcx = u64::from(r[2]);
        self.regs.rdx = u64::from(r[3]);
    }

    fn ioio(&mut self, info1: u64) {
        // OUT is dropped; INS/OUTS are skipped whole (see the crate docs).
        if let PortIo::In { bytes, .. } = emulate::decode_ioio(info1) {
            self.vmcb.save.rax = emulate::in_all_ones(self.vmcb.save.rax, bytes);
        }
    }

    fn msr(&mut self, write: bool) {
        let msr = self.regs.rcx as u32;
        let value = (self.vmcb.save.rax & 0xffff_ffff) | (self.regs.rdx << 32);
        let ok = if write {
            self.wrmsr(msr, value)
        } else {
            match self.rdmsr(msr) {
                Some(v) => {
                    self.vmcb.save.rax = v & 0xffff_ffff;
                    self.regs.rdx = v >> 32;
                    true
                }
                None => false,
            }
        };
        if ok {
            let len = if write {
                self.instruction_len(Opcode::Wrmsr, 2)
            } else {
                self.instruction_len(Opcode::Rdmsr, 2)
            };
            self.advance(len);
        } else {
            self.inject(VECTOR_GP, Some(0));
        }
    }

    /// What the guest's CPUID says that its MSRs depend on.
    fn msr_policy(&self) -> msr::MsrPolicy {
        let leaf = |l: u32| self.guest_cpuid(l, 0);
        msr::MsrPolicy {
            mtrr: leaf(1)[3] & (1 << 12) != 0,
            tsc_aux: leaf(0x8000_0001)[3] & (1 << 27) != 0 || leaf(7)[2] & (1 << 22) != 0,
            maxphysaddr: (leaf(0x8000_0008)[0] & 0xff) as u8,
            x2apic: leaf(1)[2] & cpuid::X2APIC != 0,
            now: self.system_time(),
        }
    }

    fn rdmsr(&self, index: u32) -> Option<u64> {
        match index {
            MSR_EFER => Some(emulate::efer_read(self.vmcb.save.efer)),
            _ => {
                let in_vmcb = msr::VmcbMsrs::from_save(&self.vmcb.save);
                msr::read(index, &self.msrs, &in_vmcb, &self.msr_policy())
            }
        }
    }

    fn wrmsr(&mut self, index: u32, value: u64) -> bool {
        match index {
            MSR_EFER => match emulate::efer_write(self.vmcb.save.efer, value, self.vmcb.save.cr0) {
                Some(efer) => {
                    self.vmcb.save.efer = efer;
                    true
                }
                None => false,
            },
            cpuid::HYPERCALL_MSR => self.write_hypercall_page(value),
            _ => {
                let policy = self.msr_policy();
                let mut in_vmcb = msr::VmcbMsrs::from_save(&self.vmcb.save);
                let ok = msr::write(index, value, &mut self.msrs, &mut in_vmcb, &policy);
                in_vmcb.store(&mut self.vmcb.save);
                ok
            }
        }
    }

    /// Fills the guest's hypercall page ([`emulate::hypercall_page`]) at `value`.
    fn write_hypercall_page(&mut self, value: u64) -> bool {
        if value & (PAGE_SIZE - 1) != 0 {
            return false; // page index > 0: Xen offers one page
        }
        match write_bytes(&mut self.mem, value, &emulate::hypercall_page()) {
            Ok(()) => true,
            Err(e) => {
                guest_log!(
                    self.guest_log,
                    "d{}: hypercall page at {value:#x} refused: {e:?}",
                    self.domid()
                );
                false
            }
        }
    }

    fn xsetbv(&mut self) {
        let value = (self.vmcb.save.rax & 0xffff_ffff) | (self.regs.rdx << 32);
        let index = self.regs.rcx as u32;
        // What the guest's CPUID offers (the host's, less PKRU).
        let xstate = self.guest_cpuid(0xd, 0);
        let supported = u64::from(xstate[0]) | (u64::from(xstate[3]) << 32);
        if emulate::xcr0_valid(index, value, supported) {
            // SAFETY: the value was checked against what the CPU supports.
            unsafe { svm::xsetbv(value) };
            self.ext.xcr0 = value;
            let len = self.instruction_len(Opcode::Xsetbv, 3);
            self.advance(len);
        } else {
            self.inject(VECTOR_GP, Some(0));
        }
    }

    fn hypercall(
        &mut self,
        host: &mut Host,
        peers: &mut [Option<alloc::boxed::Box<Domain>>],
    ) -> Option<Ending> {
        let len = self.instruction_len(Opcode::Vmmcall, 3);
        let s = &self.vmcb.save;
        let long = s.efer & EFER_LMA != 0 && s.cs.attrib & CS_L != 0;
        let (op, args) = if long {
            let r = &self.regs;
            (s.rax, [r.rdi, r.rsi, r.rdx, r.r10, r.r8])
        } else {
            let r = &self.regs;
            let m = |v: u64| v & 0xffff_ffff;
            (m(s.rax), [m(r.rbx), m(r.rcx), m(r.rdx), m(r.rsi), m(r.rdi)])
        };
        self.counters.hypercall(op);
        if self.vmcb.save.cpl != 0 {
            self.advance(len);
            self.vmcb.save.rax = (-i64::from(abi::errno::XEN_EPERM)) as u64;
            return None;
        }
        let paging = self.paging();
        let s = &self.vmcb.save;
        let params = self.params;
        let vector = self.xen.upcall_vector;
        let apic = &self.msrs.vlapic;
        let upcall = UpcallGate {
            open: s.rflags & RFLAGS_IF != 0 && self.vmcb.control.interrupt_shadow & 1 == 0,
            callback: self.xen.callback_vector().is_some(),
            vector_pending: vector.is_some_and(|v| apic.would_deliver(v)),
            vector_on_raise: vector.is_some_and(|v| apic.accepts(v)) && !self.upcall_seen,
        };
        let callback_before = self.xen.callback_irq;
        let mut env = Env {
            mem: &mut self.mem,
            frames: &mut host.frames,
            paging,
            shared_info: self.shared_info,
            shared_info_gfn: &mut self.shared_info_gfn,
            vcpu_info: &mut self.vcpu_info,
            e820: &self.e820,
            dom0_ports: &self.dom0_ports,
            console: &mut self.console,
            store: &mut host.store,
            xenstore: &mut self.xenstore,
            grant_frames: &mut self.grant_frames,
            clock: &self.clock,
            upcall,
            ledger: &mut self.ledger,
            peers,
            held: &mut host.held,
        };
        let out = hypercall::dispatch(&mut env, &params, &mut self.xen, op, args);
        self.trace.hypercall(op, trace_outcome(&out));
        if out.action == Action::Shutdown(abi::sched::SHUTDOWN_CRASH) {
            self.trace.mark_crashed();
        }
        if self.xen.callback_irq != callback_before {
            self.log_callback();
        }
        if core::mem::take(&mut self.xen.upcall_vector_set) {
            self.upcall_vector_set(vector);
        }
        if !out.implemented {
            self.counters.enosys += 1;
        }
        if let Action::Continue { args } = out.action {
            // RIP stays on the VMMCALL and RAX keeps the op: the guest takes what is due
            // (the upcall is injected before the next VMRUN) and calls again. An interrupt
            // shadow left in the VMCB (QEMU does not always clear it at this exit; `retire`
            // clears it for a completed call) would hold the upcall back until the call ends.
            self.set_hypercall_args(long, args);
            self.vmcb.control.interrupt_shadow &= !1;
            return None;
        }
        self.advance(len);
        let ret = out.ret as u64;
        self.vmcb.save.rax = if long { ret } else { ret & 0xffff_ffff };
        match out.action {
            Action::Resume => None,
            Action::Shutdown(reason) => Some(Ending::Shutdown(reason)),
            Action::Block => self.wait(Wait::Block),
            Action::Poll { timeout } => self.wait(Wait::Poll {
                timeout,
                raised: false,
            }),
            Action::Yield => {
                self.yielded = true;
                None
            }
            Action::Continue { .. } => None,
        }
    }

    /// Writes a continuation's arguments where the guest passes them (64-bit: rdi, rsi, rdx,
    /// r10, r8; 32-bit: ebx, ecx, edx, esi, edi).
    fn set_hypercall_args(&mut self, long: bool, args: [u64; 5]) {
        let r = &mut self.regs;
        if long {
            [r.rdi, r.rsi, r.rdx, r.r10, r.r8] = args;
        } else {
            let m = |v: u64| v & 0xffff_ffff;
            [r.rbx, r.rcx, r.rdx, r.rsi, r.rdi] = args.map(m);
        }
    }
}

impl Domain {
    /// The guest's paging registers, for walks of its page tables.
    fn paging(&self) -> PagingState {
        let s = &self.vmcb.save;
        PagingState {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer & !EFER_SVME,
            cpl: s.cpl,
        }
    }

    /// The instruction at RIP that caused this exit: its bytes read through the guest page
    /// walk (QEMU's SVM saves no next RIP) and decoded by [`decode`]; `Err` with what went
    /// wrong if they cannot be read or do not decode.
    pub(super) fn fetch_instruction(&self) -> Result<decode::Instruction, decode::DecodeError> {
        let s = &self.vmcb.save;
        let mode = if s.efer & EFER_LMA != 0 && s.cs.attrib & CS_L != 0 {
            Mode::Bits64
        } else if s.cs.attrib & CS_D != 0 {
            Mode::Bits32
        } else {
            Mode::Bits16
        };
        let va = if mode == Mode::Bits64 {
            s.rip
        } else {
            s.cs.base.wrapping_add(s.rip)
        };
        let paging = self.paging();
        let mut bytes = [0u8; decode::MAX_LEN];
        // The instruction may end before a page the guest has not mapped: then read only
        // what lies in RIP's page.
        let in_page = (PAGE_SIZE - va % PAGE_SIZE).min(decode::MAX_LEN as u64) as usize;
        let got = if copy_from_guest(&self.mem, &paging, va, &mut bytes).is_ok() {
            decode::MAX_LEN
        } else if copy_from_guest(&self.mem, &paging, va, &mut bytes[..in_page]).is_ok() {
            in_page
        } else {
            0
        };
        decode::decode(&bytes[..got], mode)
    }

    /// The length of the instruction at RIP that caused this exit, which is an `expected`.
    /// Bytes that cannot be read, or decode to something else (the guest rewrote them), give
    /// `fallback`, the instruction's unprefixed length.
    fn instruction_len(&self, expected: Opcode, fallback: u64) -> u64 {
        match self.fetch_instruction() {
            Ok(i) if i.opcode == expected => i.len as u64,
            other => {
                guest_log!(
                    self.guest_log,
                    "d{}: instruction at rip {:#x} is not {expected:?} ({other:?}); taking {fallback} bytes",
                    self.domid(),
                    self.vmcb.save.rip
                );
                fallback
            }
        }
    }

    /// Steps over the INVD or WBINVD at RIP (QEMU may report either as the other's exit).
    fn skip_cache_invalidation(&mut self) {
        let len = match self.fetch_instruction() {
            Ok(i) if matches!(i.opcode, Opcode::Invd | Opcode::Wbinvd) => i.len as u64,
            _ => self.instruction_len(Opcode::Wbinvd, 2),
        };
        self.advance(len);
    }

    /// General register `n` (0 = RAX .. 15 = R15) of the guest.
    fn gpr(&self, n: u8) -> u64 {
        let r = &self.regs;
        match n {
            0 => self.vmcb.save.rax,
            1 => r.rcx,
            2 => r.rdx,
            3 => r.rbx,
            4 => self.vmcb.save.rsp,
            5 => r.rbp,
            6 => r.rsi,
            7 => r.rdi,
            8 => r.r8,
            9 => r.r9,
            10 => r.r10,
            11 => r.r11,
            12 => r.r12,
            13 => r.r13,
            14 => r.r14,
            _ => r.r15,
        }
    }

    /// `MOV` to CR4, checked as Xen's `hvm_set_cr4` checks it against the guest's CPUID:
    /// `#GP(0)` for a bit the guest may not set (instead of a VMRUN that fails).
    fn cr4_write(&mut self) {
        let insn = match self.fetch_instruction() {
            Ok(i) => i,
            Err(e) => {
                // The guest rewrote the instruction under us: let it run again.
                guest_log!(
                    self.guest_log,
                    "d{}: CR4 write not decoded ({e:?})",
                    self.domid()
                );
                return;
            }
        };
        let Some((4, gpr)) = insn.mov_to_cr() else {
            guest_log!(
                self.guest_log,
                "d{}: CR4 write exit on {:?}",
                self.domid(),
                insn.opcode
            );
            return;
        };
        let s = &self.vmcb.save;
        let mut value = self.gpr(gpr);
        if s.efer & EFER_LMA == 0 || s.cs.attrib & CS_L == 0 {
            value &= 0xffff_ffff; // outside 64-bit code the operand is 32 bits
        }
        let valid = emulate::cr4_guest_valid_bits(self.guest_cpuid(1, 0), self.guest_cpuid(7, 0));
        if emulate::cr4_write_ok(value, valid, s.cr4, s.cr0, s.efer, s.cr3) {
            self.vmcb.save.cr4 = value;
            self.advance(insn.len as u64);
        } else {
            self.inject(VECTOR_GP, Some(0));
        }
    }
}

/// The host's CPUID through Xen's HVM policy ([`cpuid::policy_leaf`]).
fn host_cpuid(leaf: u32, sub: u32, cr4: u64) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    cpuid::policy_leaf(leaf, sub, [r.eax, r.ebx, r.ecx, r.edx], cr4)
}

/// What the exit trace records of a hypercall's outcome.
fn trace_outcome(out: &hypercall::Outcome) -> crate::trace::Outcome {
    match out.action {
        Action::Continue { .. } => crate::trace::Outcome::Continued,
        Action::Shutdown(_) => crate::trace::Outcome::Pending,
        _ => crate::trace::Outcome::Returned(out.ret),
    }
}
