//! The one domain hv runs: its memory (RAM, console and xenstore pages, shared_info) and its
//! vCPU (VMCB and registers). `build` makes it from the guest ELF, `exits` handles every
//! #VMEXIT until the domain shuts down, `env` is what a hypercall may touch.

mod build;
mod env;
mod events;
mod exits;

use core::fmt::Write;

use crate::builder;
use crate::counters::{Counters, GuestLogBudget};
use crate::cpuid::CpuidContext;
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::hvlog;
use crate::hypercall::{DomainParams, XenState};
use crate::layout;
use crate::svm::emulate;
use crate::svm::vmcb::Vmcb;

use super::console::Console;
use super::memory::DomainMemory;
use super::serial;
use super::svm::{self, GuestRegs};

/// Why the domain could not be built.
#[derive(Clone, Copy, Debug)]
pub enum DomainError {
    /// Out of host memory.
    OutOfMemory,
    /// The nested tables could not be made.
    Npt(crate::npt::NptError),
    /// The domain builder refused the guest.
    Build(builder::BuildError),
    /// The toolstack's xenstore keys could not be written.
    Xenstore(xenstored::XsdError),
}

impl core::fmt::Display for DomainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("out of host memory"),
            Self::Npt(e) => write!(f, "nested page tables: {e:?}"),
            Self::Build(e) => write!(f, "{e}"),
            Self::Xenstore(e) => write!(f, "xenstore keys: {e}"),
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

/// The host frames hv took for a domain outside its paging pool and grant frames, each
/// given back at teardown.
struct Owned {
    /// The domain's RAM: `(base, bytes)`.
    ram: (u64, u64),
    /// The console ring's page.
    console: u64,
    /// The xenstore ring's page.
    store: u64,
    /// The shared_info page.
    shared_info: u64,
}

/// What a teardown gave back.
struct Teardown {
    /// Frames given back to the allocator.
    frames_back: u64,
    /// Free frames afterwards.
    free_after: u64,
}

/// A domain and its one vCPU.
pub struct Domain {
    frames: FrameAllocator,
    /// Free frames of `frames` just before the domain was built.
    free_before_build: u64,
    /// The frames taken for the domain besides its pool and grant frames.
    owned: Owned,
    mem: DomainMemory,
    vmcb: &'static mut Vmcb,
    regs: GuestRegs,
    shared_info: u64,
    shared_info_gfn: Option<u64>,
    /// Host address of vCPU 0's `vcpu_info` (in shared_info until the guest registers one).
    vcpu_info: u64,
    e820: [abi::memory::E820Entry; builder::layout::MEMMAP_ENTRIES],
    /// Domain 0's ports and the services behind them.
    dom0_ports: crate::dom0::ports::PortTable,
    params: DomainParams,
    cpuid: CpuidContext,
    /// The vCPU's MSRs outside the VMCB (APIC base, MTRRs; `svm::msr`).
    msrs: crate::svm::msr::GuestMsrs,
    console: Console,
    /// Domain 0's xenstored for this domain.
    xenstore: super::xenstore::Xenstore,
    /// Event channels, grants, the timer and the guest-set parameters.
    xen: XenState,
    /// hv's system clock (the calibrated TSC).
    clock: crate::time::Clock,
    /// hv's own timer (`None`: no usable local APIC; waits then spin on the TSC).
    lapic: Option<super::lapic::Lapic>,
    /// Host frames of the grant table (0: not allocated yet).
    grant_frames: [u64; crate::grant::MAX_FRAMES as usize],
    /// Upcalls injected, VIRQ_TIMER events raised, waits for a timer or an event.
    stats: events::EventStats,
    /// Exits and hypercalls so far.
    pub counters: Counters,
    /// What is left of the lines the guest's doings may log.
    guest_log: GuestLogBudget,
}

impl Domain {
    /// Runs the domain until it ends.
    pub fn run(&mut self) -> Ending {
        let vmcb_pa = core::ptr::from_ref::<Vmcb>(self.vmcb) as u64;
        loop {
            self.before_entry();
            // SAFETY: SVM is enabled (start), the VMCB is ours and complete (build), its
            // intercepts include VMRUN, and the nested tables map only the domain's frames.
            unsafe { svm::run(vmcb_pa, &mut self.regs) };
            let code = self.vmcb.control.exitcode;
            self.counters.exit(code);
            // The event injected at this VMRUN was delivered, or the exit interrupted its
            // delivery and EXITINTINFO holds it: then deliver it again on the next VMRUN
            // (an interrupt QEMU recorded as an exception goes back as an interrupt).
            self.vmcb.control.event_inj =
                crate::svm::inject::reinjection(self.vmcb.control.exitintinfo);
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

    /// Moves RIP past an emulated instruction of `len` bytes ([`Self::retire`]).
    fn advance(&mut self, len: u64) {
        self.retire(self.vmcb.save.rip.wrapping_add(len));
    }

    /// Completes an emulated instruction whose next instruction is at `next_rip`, as Xen's
    /// `__update_guest_eip`: the STI/MOV-SS interrupt shadow ends, and a guest single-stepping
    /// with EFLAGS.TF gets its `#DB` (DR6.BS set).
    fn retire(&mut self, next_rip: u64) {
        const RFLAGS_TF: u64 = 1 << 8;
        const DR6_BS: u64 = 1 << 14;
        const VECTOR_DB: u8 = 1;
        self.vmcb.save.rip = next_rip;
        self.vmcb.control.interrupt_shadow &= !1;
        if self.vmcb.save.rflags & RFLAGS_TF != 0 {
            self.vmcb.save.dr6 |= DR6_BS;
            self.inject(VECTOR_DB, None);
        }
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
}

impl Domain {
    /// Gives back every host frame taken for the domain: its RAM, the console, xenstore and
    /// shared_info pages, the grant frames and the paging pool's block (every nested table
    /// with it). The VMCB, the permission maps and the host save area are hv's statics, not
    /// frames. A run the allocator refuses is logged and not counted.
    ///
    /// The domain must not run afterwards, nor its console or store rings be touched (their
    /// pages are free again): only [`finish`] calls this, just before QEMU stops.
    fn teardown(&mut self) -> Teardown {
        let o = &self.owned;
        let runs = [
            o.ram,
            (o.console, FRAME_SIZE),
            (o.store, FRAME_SIZE),
            (o.shared_info, FRAME_SIZE),
            self.mem.pool.block(),
        ];
        let mut frames_back = 0u64;
        let grants = self.grant_frames.iter().map(|&g| (g, FRAME_SIZE));
        for (start, bytes) in runs.into_iter().chain(grants) {
            if start == 0 {
                continue; // a grant frame never allocated
            }
            match self.frames.free(start, bytes) {
                Ok(()) => frames_back = frames_back.saturating_add(bytes / FRAME_SIZE),
                Err(e) => hvlog!(
                    "d{} teardown: {start:#x}+{bytes:#x} not given back: {e:?}",
                    layout::DOMID
                ),
            }
        }
        self.grant_frames = [0; crate::grant::MAX_FRAMES as usize];
        Teardown {
            frames_back,
            free_after: self.frames.free_bytes() / FRAME_SIZE,
        }
    }
}

/// Logs the end of the domain, tears it down (its frames back to the allocator), prints the
/// counters and stops QEMU with the status for `end`: 33 for poweroff, 35 for anything else.
pub fn finish(mut domain: Domain, end: Ending) -> ! {
    let status = match end {
        Ending::Shutdown(abi::sched::SHUTDOWN_POWEROFF) => serial::EXIT_POWEROFF,
        _ => serial::EXIT_CRASH,
    };
    match end {
        Ending::Shutdown(r) => hvlog!("d{}: shutdown, reason {r}", layout::DOMID),
        Ending::Crashed => hvlog!("d{}: crashed", layout::DOMID),
    }
    let t = domain.teardown();
    hvlog!(
        "d{} teardown: {} frames back, free {} -> {} frames",
        layout::DOMID,
        t.frames_back,
        domain.free_before_build,
        t.free_after
    );
    if domain.guest_log.suppressed() > 0 {
        hvlog!(
            "d{}: {} more lines the guest caused were not printed",
            layout::DOMID,
            domain.guest_log.suppressed()
        );
    }
    domain.print_counters();
    let _ = writeln!(
        serial::Serial,
        "hv: {} exits, {} hypercalls, {} console bytes",
        domain.counters.total_exits(),
        domain.counters.total_hypercalls(),
        domain.console.bytes()
    );
    let pool = &domain.mem.pool;
    let _ = writeln!(
        serial::Serial,
        "hv: d{}: paging pool {} pages, at most {} in use, {} refused",
        layout::DOMID,
        pool.pages(),
        pool.peak(),
        pool.refused()
    );
    let s = &domain.stats;
    let _ = writeln!(
        serial::Serial,
        "hv: {} upcalls injected, {} interrupt windows, {} VIRQ_TIMER events, {} waits ({} us waiting)",
        s.injected,
        s.windows,
        s.timer_events,
        s.waits,
        domain.clock.scale.scale(s.wait_ticks) / 1000
    );
    serial::exit_qemu(status)
}
