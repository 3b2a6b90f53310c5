//! One domain and its one vCPU: its memory (RAM, console and xenstore pages, shared_info),
//! its VMCB, registers and the state VMRUN does not switch. `build` makes it from its
//! kernel, `exits` handles every #VMEXIT, `events` its timer, upcalls and waits, `env` is
//! what a hypercall may touch, `mmio` its accesses outside its memory. The machine it runs on (`super::machine`) owns what domains
//! share: host frames, the xenstore tree, the clock and the scheduler.

mod backend;
mod build;
mod env;
mod events;
mod exits;
mod mmio;

use alloc::string::String;
use core::fmt::Write;

pub use backend::DOM0_BACKEND_PORT_BASE;
pub use build::DomainSpec;
use events::Wait;
pub use mmio::set_npf_policy;

use crate::builder;
use crate::counters::{Counters, GuestLogBudget};
use crate::cpuid::CpuidContext;
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::hvlog;
use crate::hypercall::{DomainParams, XenState};
use crate::svm::emulate;
use crate::svm::vmcb::Vmcb;

use super::console::Console;
use super::fpu::ExtendedState;
use super::memory::DomainMemory;
use super::serial;
use super::svm::{self, GuestRegs};

/// Why a domain could not be built.
#[derive(Clone, Copy, Debug)]
pub enum DomainError {
    /// Out of host memory: `wanted` bytes for the domain's RAM, with `free` bytes free.
    OutOfMemory {
        /// Bytes of RAM the config asks for.
        wanted: u64,
        /// Bytes hv had free.
        free: u64,
    },
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
            Self::OutOfMemory { wanted, free } => write!(
                f,
                "out of host memory ({} MiB of RAM asked, {} MiB free in hv)",
                wanted >> 20,
                free >> 20
            ),
            Self::Npt(e) => write!(f, "nested page tables: {e:?}"),
            Self::Build(e) => write!(f, "{e}"),
            Self::Xenstore(e) => write!(f, "xenstore keys: {e}"),
        }
    }
}

/// How a domain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `SCHEDOP_shutdown` (or HLT with IF=0) with this `SHUTDOWN_*` reason.
    Shutdown(u32),
    /// hv crashed the domain (bad access, triple fault, invalid state), for this reason.
    Crashed(String),
}

/// The host frames hv took for a domain outside its paging pool and grant frames, each
/// given back at teardown.
struct Owned {
    /// The console ring's page.
    console: u64,
    /// The xenstore ring's page.
    store: u64,
    /// The shared_info page.
    shared_info: u64,
    /// The VMCB's page.
    vmcb: u64,
    /// The ACPI tables' pages (`[start, start + bytes)`).
    acpi: (u64, u64),
}

/// What a teardown gave back.
pub struct Teardown {
    /// Frames given back to the allocator.
    pub frames_back: u64,
    /// Free frames afterwards.
    pub free_after: u64,
}

/// A domain and its one vCPU.
pub struct Domain {
    /// The domain's name (its config's `name`).
    pub name: String,
    /// Which spec it was built from (for `on_* = "restart"`).
    pub spec: usize,
    /// Free frames of hv's allocator just before the domain was built.
    pub free_before_build: u64,
    /// The frames taken for the domain besides its pool and grant frames.
    owned: Owned,
    /// Its RAM and the frames it was given since, and its page count.
    ledger: crate::hypercall::memory::Ledger,
    mem: DomainMemory,
    vmcb: &'static mut Vmcb,
    /// Host-physical address of the VMCB.
    vmcb_pa: u64,
    regs: GuestRegs,
    /// FPU/SSE/AVX state, XCR0, DR0–3 (switched by the machine between domains).
    pub ext: ExtendedState,
    shared_info: u64,
    shared_info_gfn: Option<u64>,
    /// Host address of vCPU 0's `vcpu_info` (in shared_info until the guest registers one).
    vcpu_info: u64,
    e820: [abi::memory::E820Entry; builder::layout::MEMMAP_ENTRIES],
    /// Domain 0's ports and the services behind them.
    dom0_ports: crate::dom0::ports::PortTable,
    /// The domain's fixed facts (its id among them).
    pub params: DomainParams,
    /// The domain's UUID in text form (its `/vm/<uuid>` node).
    pub uuid: String,
    cpuid: CpuidContext,
    /// The vCPU's MSRs outside the VMCB (APIC base, MTRRs, TSC_AUX; `svm::msr`).
    pub msrs: crate::svm::msr::GuestMsrs,
    console: Console,
    /// This domain's connection to domain 0's xenstored.
    pub xenstore: super::xenstore::Xenstore,
    /// Event channels, grants, the timer and the guest-set parameters.
    xen: XenState,
    /// hv's system clock (the calibrated TSC; the same for every domain).
    clock: crate::time::Clock,
    /// Host frames of the grant table (0: not allocated yet).
    grant_frames: [u64; crate::grant::MAX_FRAMES as usize],
    /// What the vCPU waits for, if it waits, and since when (TSC).
    waiting: Option<(Wait, u64)>,
    /// vCPU 0's `evtchn_upcall_pending` at its last exit: with its own upcall vector, a
    /// pending flag hv finds set where the guest left it clear was raised by hv since, and
    /// asserts the vector (`events`).
    upcall_seen: bool,
    /// The vCPU asked to give the CPU away (`SCHEDOP_yield`).
    pub yielded: bool,
    /// Upcalls injected, VIRQ_TIMER events raised, waits for a timer or an event.
    stats: events::EventStats,
    /// Exits and hypercalls so far.
    pub counters: Counters,
    /// The last exits (printed if the domain crashes, or with `trace=dump`).
    pub trace: crate::trace::ExitTrace,
    /// What is left of the lines the guest's doings may log.
    guest_log: GuestLogBudget,
}

impl Domain {
    /// The domain's id.
    pub fn domid(&self) -> u16 {
        self.params.domid
    }

    /// Runs the vCPU until the next #VMEXIT and counts it; the exit code.
    pub fn enter(&mut self) -> u64 {
        // SAFETY: SVM is enabled (start), the VMCB is this domain's and complete (build), its
        // intercepts include VMRUN, and the nested tables map only the domain's frames.
        unsafe { svm::run(self.vmcb_pa, &mut self.regs) };
        let code = self.vmcb.control.exitcode;
        self.upcall_seen = self.words().upcall_pending();
        self.counters.exit(code);
        self.trace.exit(code, self.vmcb.save.rip);
        // The event injected at this VMRUN was delivered, or the exit interrupted its
        // delivery and EXITINTINFO holds it: then deliver it again on the next VMRUN
        // (an interrupt QEMU recorded as an exception goes back as an interrupt).
        self.vmcb.control.event_inj =
            crate::svm::inject::reinjection(self.vmcb.control.exitintinfo);
        code
    }

    /// The domain's ports connected to other domains: `(port, peer, peer's port)`.
    pub fn foreign_ports(&self) -> alloc::vec::Vec<(u32, u16, u32)> {
        self.xen.evtchn.foreign().collect()
    }

    /// The mappings this domain holds of other domains' grants, removed (it dies).
    pub fn take_mappings(&mut self) -> alloc::vec::Vec<crate::grant::MapEntry> {
        self.xen.maptrack.drain().collect()
    }

    /// The host frames of this domain's mappings of domain `dom`'s grants.
    pub fn mapped_frames_of(&self, dom: u16) -> impl Iterator<Item = u64> + '_ {
        self.xen
            .maptrack
            .iter()
            .filter(move |m| m.foreign.dom == dom)
            .map(|m| m.foreign.frame)
    }

    /// This domain's grant `gref` acquired for domain `ldom` (its table's checks; a pin when
    /// `pin`), with the granted frame's host address.
    pub fn acquire_grant(
        &mut self,
        gref: u32,
        ldom: u16,
        readonly: bool,
        pin: bool,
    ) -> Result<crate::grant::Foreign, i16> {
        let Self {
            grant_frames,
            mem,
            xen,
            ..
        } = self;
        let mut view = env::GrantView { grant_frames, mem };
        let (gfn, slot) = xen
            .grants
            .acquire_for(&mut view, gref, ldom, readonly, pin)?;
        let Some(frame) = view.host_frame(gfn) else {
            xen.grants.release_for(&mut view, gref, readonly, slot);
            return Err(abi::grant_table::GNTST_BAD_PAGE);
        };
        Ok(crate::grant::Foreign {
            dom: self.params.domid,
            gref,
            readonly,
            pin: slot,
            frame,
        })
    }

    /// Domain `ldom`, which held `f` (a grant of this domain), died or unmapped it: the
    /// pin ends and the entry's flags are reduced.
    pub fn release_grant(&mut self, f: &crate::grant::Foreign) {
        let Self {
            grant_frames,
            mem,
            xen,
            ..
        } = self;
        let mut view = env::GrantView { grant_frames, mem };
        xen.grants.release_for(&mut view, f.gref, f.readonly, f.pin);
    }

    /// Its peer (`ldom`, `lport`) closed or died: this domain's `port` goes back to unbound.
    pub fn peer_closed(&mut self, port: u32, ldom: u16, lport: u32) {
        self.xen.evtchn.peer_closed(port, ldom, lport);
    }

    /// Drains the console and ends a partial last line (at the domain's end).
    pub fn close_console(&mut self) {
        self.console.drain();
        self.console.finish();
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
        self.trace.mark_crashed();
        let mut why = String::new();
        let _ = why.write_fmt(what);
        let _ = write!(
            why,
            " (rip {:#x}, cr3 {:#x})",
            self.vmcb.save.rip, self.vmcb.save.cr3
        );
        Some(Ending::Crashed(why))
    }

    /// Gives back every host frame taken for the domain: its RAM less the pages it gave back
    /// (ballooned out) and the frames it was given since, each once (its ledger's runs), the
    /// console, xenstore and shared_info pages, the VMCB, the ACPI pages, the XSAVE area, the grant frames and
    /// the paging pool's block (every nested table with it). A run the allocator refuses is
    /// logged and not counted.
    ///
    /// The domain must not run afterwards, nor its console or store rings be touched (their
    /// pages are free again): the machine drops it right after.
    pub fn teardown(&mut self, frames: &mut FrameAllocator, held: &[u64]) -> Teardown {
        let o = &self.owned;
        let runs = [
            (o.console, FRAME_SIZE),
            (o.store, FRAME_SIZE),
            (o.shared_info, FRAME_SIZE),
            (o.vmcb, FRAME_SIZE),
            o.acpi,
            self.ext.frames(),
            self.mem.pool.block(),
        ];
        let mut frames_back = 0u64;
        let grants = self.grant_frames.iter().map(|&g| (g, FRAME_SIZE));
        if self.ledger.spares() > 0 {
            hvlog!(
                "d{}: {} ballooned-out frames kept as spares (no room in hv's free-range table), given back now",
                self.domid(),
                self.ledger.spares()
            );
        }
        let memory = self.ledger.runs();
        for (start, bytes) in memory.into_iter().chain(runs).chain(grants) {
            if start == 0 {
                continue; // a grant frame never allocated
            }
            // Frames other domains still map stay out (held until their last unmap).
            match crate::held::free_except(frames, start, bytes, held) {
                Ok(n) => frames_back = frames_back.saturating_add(n),
                Err(e) => hvlog!(
                    "d{} teardown: {start:#x}+{bytes:#x} not all given back: {e:?}",
                    self.domid()
                ),
            }
        }
        self.grant_frames = [0; crate::grant::MAX_FRAMES as usize];
        Teardown {
            frames_back,
            free_after: frames.free_bytes() / FRAME_SIZE,
        }
    }

    /// Prints what the domain did: the lines its doings could not log, its counters, its
    /// paging pool and its events (at its end).
    pub fn report(&self) {
        let id = self.domid();
        if self.guest_log.suppressed() > 0 {
            hvlog!(
                "d{id}: {} more lines the guest caused were not printed",
                self.guest_log.suppressed()
            );
        }
        if self.trace.wanted() {
            let _ = self.trace.print(&mut serial::Serial, id);
        }
        self.print_counters();
        let _ = writeln!(
            serial::Serial,
            "hv: {} exits, {} hypercalls, {} console bytes",
            self.counters.total_exits(),
            self.counters.total_hypercalls(),
            self.console.bytes()
        );
        let pool = &self.mem.pool;
        let _ = writeln!(
            serial::Serial,
            "hv: d{id}: paging pool {} pages, at most {} in use, {} refused",
            pool.pages(),
            pool.peak(),
            pool.refused()
        );
        let s = &self.stats;
        let _ = writeln!(
            serial::Serial,
            "hv: {} upcalls injected, {} interrupt windows, {} VIRQ_TIMER events, {} waits ({} us waiting)",
            s.injected,
            s.windows,
            s.timer_events,
            s.waits,
            self.clock.scale.scale(s.wait_ticks) / 1000
        );
    }
}
