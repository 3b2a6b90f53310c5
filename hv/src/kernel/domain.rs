//! The one domain hv runs: its memory (RAM, console and xenstore pages, shared_info), its
//! vCPU (VMCB and registers), building it from the guest ELF, and the exit loop that
//! handles every #VMEXIT until the domain shuts down.

use core::fmt::Write;

use crate::builder::{self, DomainConfig};
use crate::counters::Counters;
use crate::cpuid::{self, CpuidContext};
use crate::frames::{FRAME_SIZE, Frames};
use crate::guest::phys::{PAGE_SIZE, write_bytes};
use crate::guest::walk::{self, PagingState};
use crate::hvlog;
use crate::hypercall::{self, Action, DomainParams, E820, GuestFault, HypercallEnv};
use crate::layout;
use crate::npt::Npt;
use crate::svm::emulate::{self, EFER_LMA, EFER_SVME, PortIo};
use crate::svm::exit;
use crate::svm::vmcb::{self, Segment, Vmcb, misc1, misc2};

use super::console::ConsoleBackend;
use super::memory::{DomainMemory, HostTables, alloc_zeroed};
use super::serial;
use super::svm::{self, GuestRegs, MSR_EFER};

const HUGE: u64 = 2 << 20;
const RFLAGS_IF: u64 = 1 << 9;
const VECTOR_UD: u8 = 6;
const VECTOR_GP: u8 = 13;

/// Why the domain could not be built.
#[derive(Clone, Copy, Debug)]
pub enum DomainError {
    /// Out of host memory.
    OutOfMemory,
    /// The nested tables could not be made.
    Npt(crate::npt::NptError),
    /// The domain builder refused the guest.
    Build(builder::BuildError),
}

impl core::fmt::Display for DomainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("out of host memory"),
            Self::Npt(e) => write!(f, "nested page tables: {e:?}"),
            Self::Build(e) => write!(f, "{e}"),
        }
    }
}

/// How the domain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `SCHEDOP_shutdown` (or HLT with IF=0) with this `SHUTDOWN_*` reason.
    Shutdown(u32),
    /// hv crashed the domain (bad access, triple fault, invalid state).
    Crashed,
}

/// The VMCB page of the one vCPU.
static mut VMCB: Vmcb = Vmcb::ZERO;

/// A domain and its one vCPU.
pub struct Domain {
    frames: Frames,
    mem: DomainMemory,
    vmcb: &'static mut Vmcb,
    regs: GuestRegs,
    shared_info: u64,
    shared_info_gfn: Option<u64>,
    e820: [E820; builder::layout::MEMMAP_ENTRIES],
    params: DomainParams,
    cpuid: CpuidContext,
    console: ConsoleBackend,
    /// Exits and hypercalls so far.
    pub counters: Counters,
}

fn to_vmcb(s: builder::regs::Segment) -> Segment {
    Segment {
        selector: s.selector,
        attrib: s.attrib,
        limit: s.limit,
        base: s.base,
    }
}

impl Domain {
    /// Builds domain 1 from the PVH ELF `image` with command line `cmdline`. Called once.
    pub fn build(mut frames: Frames, image: &[u8], cmdline: &str) -> Result<Self, DomainError> {
        let oom = |_| DomainError::OutOfMemory;
        let ram_bytes = layout::MEMORY_MIB << 20;
        let ram = alloc_zeroed(&mut frames, ram_bytes, HUGE).map_err(oom)?;
        let console = alloc_zeroed(&mut frames, FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let store = alloc_zeroed(&mut frames, FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let shared_info = alloc_zeroed(&mut frames, FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let npt = {
            let mut t = HostTables {
                frames: &mut frames,
            };
            let npt = Npt::new(&mut t).map_err(DomainError::Npt)?;
            for off in (0..ram_bytes).step_by(HUGE as usize) {
                npt.map_2m(&mut t, off, ram + off, true)
                    .map_err(DomainError::Npt)?;
            }
            npt.map_4k(&mut t, layout::CONSOLE_PFN * PAGE_SIZE, console, true)
                .map_err(DomainError::Npt)?;
            npt.map_4k(&mut t, layout::STORE_PFN * PAGE_SIZE, store, true)
                .map_err(DomainError::Npt)?;
            npt
        };
        let mut mem = DomainMemory { npt };
        let built = builder::build(
            &mut mem,
            image,
            &DomainConfig {
                memory_mib: layout::MEMORY_MIB,
                cmdline: cmdline.as_bytes(),
            },
        )
        .map_err(DomainError::Build)?;
        let mut e820 = [E820::default(); builder::layout::MEMMAP_ENTRIES];
        for (slot, e) in e820.iter_mut().zip(built.layout.memmap()) {
            *slot = E820 {
                addr: e.addr,
                size: e.size,
                kind: e.type_,
            };
        }
        hvlog!(
            "d{}: {} MiB RAM at host {ram:#x}, kernel {:#x}-{:#x}, entry {:#x}, start info {:#x}",
            layout::DOMID,
            layout::MEMORY_MIB,
            built.kernel.0,
            built.kernel.1,
            built.regs.rip,
            built.start_info_gpa
        );

        // SAFETY: called once (from start); nothing else refers to VMCB, so this is the only
        // reference to it for the rest of the run.
        let Some(vmcb) = (unsafe { (&raw mut VMCB).as_mut() }) else {
            return Err(DomainError::OutOfMemory);
        };
        *vmcb = Vmcb::ZERO;
        let r = &built.regs;
        let c = &mut vmcb.control;
        c.intercept_misc1 = misc1::INTR
            | misc1::VINTR
            | misc1::CPUID
            | misc1::HLT
            | misc1::INVLPGA
            | misc1::IOIO_PROT
            | misc1::MSR_PROT
            | misc1::SHUTDOWN;
        c.intercept_misc2 = misc2::VMRUN
            | misc2::VMMCALL
            | misc2::VMLOAD
            | misc2::VMSAVE
            | misc2::STGI
            | misc2::CLGI
            | misc2::SKINIT
            | misc2::XSETBV;
        c.iopm_base_pa = svm::iopm_pa();
        c.msrpm_base_pa = svm::msrpm_pa();
        c.guest_asid = 1;
        c.tlb_control = vmcb::TLB_CONTROL_FLUSH_ALL;
        c.vintr = vmcb::V_INTR_MASKING;
        c.np_enable = 1;
        c.n_cr3 = mem.npt.root;
        let s = &mut vmcb.save;
        s.cs = to_vmcb(r.cs);
        s.ds = to_vmcb(r.ds);
        s.es = to_vmcb(r.es);
        s.ss = to_vmcb(r.ss);
        s.fs = to_vmcb(r.fs);
        s.gs = to_vmcb(r.gs);
        s.tr = to_vmcb(r.tr);
        s.ldtr = to_vmcb(r.ldtr);
        s.gdtr = Segment {
            base: r.gdtr.0,
            limit: r.gdtr.1,
            ..Segment::default()
        };
        s.idtr = Segment {
            base: r.idtr.0,
            limit: r.idtr.1,
            ..Segment::default()
        };
        s.cpl = 0;
        s.efer = r.efer | EFER_SVME;
        s.cr0 = r.cr0;
        s.cr3 = r.cr3;
        s.cr4 = r.cr4;
        s.dr6 = r.dr6;
        s.dr7 = r.dr7;
        s.rflags = r.rflags;
        s.rip = r.rip;
        s.rsp = r.rsp;
        s.rax = 0;
        s.g_pat = 0x0007_0406_0007_0406;
        let regs = GuestRegs {
            rbx: r.rbx,
            ..GuestRegs::default()
        };

        let tsc_khz = super::tsc::calibrate_khz();
        hvlog!("TSC {tsc_khz} kHz (PIT calibration)");
        let ext = core::arch::x86_64::__cpuid(0x8000_0001);
        let power = core::arch::x86_64::__cpuid(0x8000_0007);
        Ok(Self {
            frames,
            mem,
            vmcb,
            regs,
            shared_info,
            shared_info_gfn: None,
            e820,
            params: DomainParams {
                domid: layout::DOMID,
                console_pfn: layout::CONSOLE_PFN,
                console_evtchn: layout::CONSOLE_EVTCHN,
                store_pfn: layout::STORE_PFN,
                store_evtchn: layout::STORE_EVTCHN,
            },
            cpuid: CpuidContext {
                domid: layout::DOMID,
                vcpu_id: 0,
                host_tsc_reliable: power.edx & (1 << 8) != 0,
                host_rdtscp: ext.edx & (1 << 27) != 0,
                tsc_khz,
            },
            console: ConsoleBackend::new(console, layout::DOMID),
            counters: Counters::new(),
        })
    }

    /// Runs the domain until it ends.
    pub fn run(&mut self) -> Ending {
        let vmcb_pa = core::ptr::from_ref::<Vmcb>(self.vmcb) as u64;
        loop {
            // SAFETY: SVM is enabled (start), the VMCB is ours and complete (build), its
            // intercepts include VMRUN, and the nested tables map only the domain's frames.
            unsafe { svm::run(vmcb_pa, &mut self.regs) };
            let code = self.vmcb.control.exitcode;
            self.counters.exit(code);
            // The event injected at this VMRUN was delivered, or the exit interrupted its
            // delivery and EXITINTINFO holds it: then deliver it again on the next VMRUN.
            let pending = self.vmcb.control.exitintinfo;
            self.vmcb.control.event_inj = if pending & (1 << 31) != 0 { pending } else { 0 };
            if let Some(end) = self.handle_exit(code) {
                self.console.drain();
                self.console.finish();
                return end;
            }
        }
    }

    /// Prints the counters.
    pub fn print_counters(&self) {
        let _ = self.counters.print(&mut serial::Serial);
    }

    fn advance(&mut self, len: u64) {
        self.vmcb.save.rip = self.vmcb.save.rip.wrapping_add(len);
    }

    fn inject(&mut self, vector: u8, error_code: Option<u32>) {
        self.vmcb.control.event_inj = emulate::exception_event(vector, error_code);
    }

    fn crash(&self, what: core::fmt::Arguments<'_>) -> Option<Ending> {
        hvlog!(
            "d{} crashed: {what} (rip {:#x}, cr3 {:#x})",
            layout::DOMID,
            self.vmcb.save.rip,
            self.vmcb.save.cr3
        );
        Some(Ending::Crashed)
    }

    fn handle_exit(&mut self, code: u64) -> Option<Ending> {
        let info1 = self.vmcb.control.exitinfo1;
        let info2 = self.vmcb.control.exitinfo2;
        match code {
            exit::INTR | exit::NMI => None,
            exit::VINTR => {
                self.vmcb.control.vintr &= !(1 << 8);
                None
            }
            exit::VMMCALL => self.hypercall(),
            exit::CPUID => {
                self.cpuid();
                self.advance(2);
                None
            }
            exit::HLT => {
                self.advance(1);
                if self.vmcb.save.rflags & RFLAGS_IF == 0 {
                    // Xen: a vCPU halted with interrupts off is down; the domain powers off.
                    Some(Ending::Shutdown(abi::sched::SHUTDOWN_POWEROFF))
                } else {
                    None
                }
            }
            exit::IOIO => {
                self.ioio(info1);
                self.vmcb.save.rip = info2;
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
            exit::VMRUN
            | exit::VMLOAD
            | exit::VMSAVE
            | exit::STGI
            | exit::CLGI
            | exit::SKINIT
            | exit::INVLPGA => {
                self.inject(VECTOR_UD, None);
                None
            }
            exit::NPF => self.crash(format_args!(
                "access to guest-physical {info2:#x} outside its memory (error {info1:#x})"
            )),
            exit::SHUTDOWN => self.crash(format_args!("triple fault")),
            exit::INVALID => self.crash(format_args!(
                "VMRUN refused the guest state (efer {:#x}, cr0 {:#x}, cr4 {:#x})",
                self.vmcb.save.efer, self.vmcb.save.cr0, self.vmcb.save.cr4
            )),
            other => self.crash(format_args!(
                "unexpected exit {other:#x} (info1 {info1:#x}, info2 {info2:#x})"
            )),
        }
    }

    fn cpuid(&mut self) {
        let leaf = self.vmcb.save.rax as u32;
        let sub = self.regs.rcx as u32;
        let r = cpuid::xen_leaf(leaf, sub, &self.cpuid).unwrap_or_else(|| host_cpuid(leaf, sub));
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
            self.advance(2);
        } else {
            self.inject(VECTOR_GP, Some(0));
        }
    }

    fn rdmsr(&self, msr: u32) -> Option<u64> {
        match msr {
            MSR_EFER => Some(emulate::efer_read(self.vmcb.save.efer)),
            _ => None,
        }
    }

    fn wrmsr(&mut self, msr: u32, value: u64) -> bool {
        match msr {
            MSR_EFER => match emulate::efer_write(self.vmcb.save.efer, value) {
                Some(efer) => {
                    self.vmcb.save.efer = efer;
                    true
                }
                None => false,
            },
            cpuid::HYPERCALL_MSR => self.write_hypercall_page(value),
            _ => false,
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
                hvlog!(
                    "d{}: hypercall page at {value:#x} refused: {e:?}",
                    layout::DOMID
                );
                false
            }
        }
    }

    fn xsetbv(&mut self) {
        let value = (self.vmcb.save.rax & 0xffff_ffff) | (self.regs.rdx << 32);
        let index = self.regs.rcx as u32;
        let host = core::arch::x86_64::__cpuid_count(0xd, 0);
        let supported = u64::from(host.eax) | (u64::from(host.edx) << 32);
        if emulate::xcr0_valid(index, value, supported) {
            // SAFETY: the value was checked against what the CPU supports.
            unsafe { svm::xsetbv(value) };
            self.advance(3);
        } else {
            self.inject(VECTOR_GP, Some(0));
        }
    }

    fn hypercall(&mut self) -> Option<Ending> {
        self.advance(3);
        let s = &self.vmcb.save;
        let long = s.efer & EFER_LMA != 0 && s.cs.attrib & (1 << 9) != 0;
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
            self.vmcb.save.rax = (-i64::from(abi::errno::XEN_EPERM)) as u64;
            return None;
        }
        let paging = PagingState {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer & !EFER_SVME,
            cpl: s.cpl,
        };
        let params = self.params;
        let mut env = Env {
            mem: &mut self.mem,
            frames: &mut self.frames,
            paging,
            shared_info: self.shared_info,
            shared_info_gfn: &mut self.shared_info_gfn,
            e820: &self.e820,
            console: &mut self.console,
        };
        let out = hypercall::dispatch(&mut env, &params, op, args);
        if !out.implemented {
            self.counters.enosys += 1;
        }
        let ret = out.ret as u64;
        self.vmcb.save.rax = if long { ret } else { ret & 0xffff_ffff };
        match out.action {
            Action::Resume => None,
            Action::Shutdown(reason) => Some(Ending::Shutdown(reason)),
        }
    }
}

/// The host's CPUID, with what a PVH domU must not see hidden (SVM, VMX) and the
/// hypervisor bit set, as Xen does.
fn host_cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    let mut v = [r.eax, r.ebx, r.ecx, r.edx];
    match leaf {
        1 => {
            v[1] &= 0x00ff_ffff; // initial APIC id 0 (vCPU 0)
            v[2] &= !(1 << 5); // VMX
            v[2] |= 1 << 31; // hypervisor present
        }
        0x8000_0001 => v[2] &= !(1 << 2), // SVM
        0x8000_000a => v = [0; 4],        // SVM features
        _ => {}
    }
    v
}

/// What a hypercall may touch.
struct Env<'a> {
    mem: &'a mut DomainMemory,
    frames: &'a mut Frames,
    paging: PagingState,
    shared_info: u64,
    shared_info_gfn: &'a mut Option<u64>,
    e820: &'a [E820],
    console: &'a mut ConsoleBackend,
}

impl HypercallEnv for Env<'_> {
    fn read_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
        walk::copy_from_guest(&*self.mem, &self.paging, va, buf).map_err(|_| GuestFault)
    }

    fn write_guest(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault> {
        walk::copy_to_guest(self.mem, &self.paging, va, data).map_err(|_| GuestFault)
    }

    fn map_shared_info(&mut self, gfn: u64) -> Result<(), i64> {
        let einval = -i64::from(abi::errno::XEN_EINVAL);
        let gpa = gfn.checked_mul(PAGE_SIZE).ok_or(einval)?;
        if gpa >= crate::npt::GPA_LIMIT {
            return Err(einval);
        }
        let enomem = -i64::from(abi::errno::XEN_ENOMEM);
        let mut t = HostTables {
            frames: self.frames,
        };
        if let Some(old) = *self.shared_info_gfn {
            self.mem
                .npt
                .unmap_4k(&mut t, old * PAGE_SIZE)
                .map_err(|_| enomem)?;
        }
        self.mem
            .npt
            .map_4k(&mut t, gpa, self.shared_info, true)
            .map_err(|_| enomem)?;
        *self.shared_info_gfn = Some(gfn);
        Ok(())
    }

    fn e820(&self) -> &[E820] {
        self.e820
    }

    fn console_notify(&mut self) {
        self.console.drain();
    }
}

/// Logs the end of the domain, prints the counters and stops QEMU with the status for
/// `end`: 33 for poweroff, 35 for anything else.
pub fn finish(domain: &Domain, end: Ending) -> ! {
    let status = match end {
        Ending::Shutdown(abi::sched::SHUTDOWN_POWEROFF) => serial::EXIT_POWEROFF,
        _ => serial::EXIT_CRASH,
    };
    match end {
        Ending::Shutdown(r) => hvlog!("d{}: shutdown, reason {r}", layout::DOMID),
        Ending::Crashed => hvlog!("d{}: crashed", layout::DOMID),
    }
    domain.print_counters();
    let _ = writeln!(
        serial::Serial,
        "hv: {} exits, {} hypercalls, {} console bytes",
        domain.counters.total_exits(),
        domain.counters.total_hypercalls(),
        domain.console.bytes
    );
    serial::exit_qemu(status)
}
