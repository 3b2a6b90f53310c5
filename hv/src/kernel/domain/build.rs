//! Building a domain: its memory and nested tables, its kernel through the domain builder,
//! its VMCB with the intercepts and the PVH entry state, and its keys in the store.

use alloc::string::String;
use alloc::vec::Vec;

use crate::builder::{self, DomainConfig};
use crate::counters::Counters;
use crate::cpuid::CpuidContext;
use crate::dom0::ports::{PortTable, Service};
use crate::dom0::toolstack::{self, Ring};
use crate::frames::{FRAME_SIZE, FrameError};
use crate::guest::phys::PAGE_SIZE;
use crate::hvlog;
use crate::hypercall::memory::{Ledger, MAXMEM_SLACK_PAGES};
use crate::hypercall::{DOM0_CONSOLE_PORT, DOM0_STORE_PORT, DomainParams, XenState};
use crate::layout;
use crate::npt::Npt;
use crate::svm::emulate::EFER_SVME;
use crate::svm::vmcb::{self, Segment, Vmcb, misc1, misc2};

use super::super::console::Console;
use super::super::fpu::ExtendedState;
use super::super::machine::Host;
use super::super::memory::{DomainMemory, HostTables, alloc_zeroed, take_pool};
use super::super::svm::{self, GuestRegs};
use super::env::SharedInfoView;
use super::{Domain, DomainError, Owned};

/// What a domain is built from: its config's settings and its kernel's bytes.
#[derive(Clone, Debug)]
pub struct DomainSpec {
    /// `name`.
    pub name: String,
    /// The kernel ELF (in hv's PVH module, which hv keeps for the whole run).
    pub image: &'static [u8],
    /// The guest command line.
    pub cmdline: String,
    /// The ramdisk (xl's `ramdisk`, from hv's PVH module), if any.
    pub ramdisk: Option<&'static [u8]>,
    /// `memory` in MiB.
    pub memory_mib: u64,
    /// `on_poweroff`.
    pub on_poweroff: xlcfg::Action,
    /// `on_reboot`.
    pub on_reboot: xlcfg::Action,
    /// `on_crash`.
    pub on_crash: xlcfg::Action,
}

const HUGE: u64 = 2 << 20;

/// `canary-gfn=<frame>` (hex with `0x`, or decimal) on a guest's command line, the last one.
fn canary_gfn(cmdline: &str) -> Option<u64> {
    let v = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("canary-gfn="))
        .next_back()?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// An all-zero VMCB (kept here, in the kernel: hv's host-testable modules hold no `unsafe`).
// SAFETY: every field of the VMCB is an integer or an array of integers (the segments
// included), for which all-zero bytes are a valid value.
const VMCB_ZERO: Vmcb = unsafe { core::mem::zeroed() };

/// The frames a build took so far, given back if it fails.
struct Taken<'a> {
    host: &'a mut Host,
    runs: Vec<(u64, u64)>,
}

impl Taken<'_> {
    fn zeroed(&mut self, bytes: u64, align: u64) -> Result<u64, FrameError> {
        let pa = alloc_zeroed(&mut self.host.frames, bytes, align)?;
        self.runs.push((pa, bytes));
        Ok(pa)
    }

    /// Gives back every run taken (the build failed).
    fn give_back(&mut self) {
        for (pa, bytes) in self.runs.drain(..) {
            if let Err(e) = self.host.frames.free(pa, bytes) {
                hvlog!("failed build: {pa:#x}+{bytes:#x} not given back: {e:?}");
            }
        }
    }
}

impl Domain {
    /// Builds domain `domid` from `spec` (the `spec_index`th), taking its frames from `host`
    /// and writing its keys into `host`'s store. A failed build gives back what it took.
    pub fn build(
        host: &mut Host,
        spec: &DomainSpec,
        spec_index: usize,
        domid: u16,
    ) -> Result<Self, DomainError> {
        let free_before_build = host.frames.free_bytes() / FRAME_SIZE;
        let mut taken = Taken {
            host,
            runs: Vec::new(),
        };
        let r = Self::build_in(&mut taken, spec, spec_index, domid, free_before_build);
        if r.is_err() {
            taken.give_back();
        }
        r
    }

    fn build_in(
        taken: &mut Taken<'_>,
        spec: &DomainSpec,
        spec_index: usize,
        domid: u16,
        free_before_build: u64,
    ) -> Result<Self, DomainError> {
        let ram_bytes = spec.memory_mib << 20;
        let free = taken.host.frames.free_bytes();
        let oom = |_| DomainError::OutOfMemory {
            wanted: ram_bytes,
            free,
        };
        let ram = taken.zeroed(ram_bytes, HUGE).map_err(oom)?;
        let console = taken.zeroed(FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let store = taken.zeroed(FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let shared_info = taken.zeroed(FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let acpi_bytes = builder::acpi::ACPI_PAGES * FRAME_SIZE;
        let acpi = taken.zeroed(acpi_bytes, FRAME_SIZE).map_err(oom)?;
        let vmcb_pa = taken.zeroed(FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let method = taken.host.fpu;
        let ext = ExtendedState::new(&mut taken.host.frames, method).map_err(oom)?;
        taken.runs.push(ext.frames());
        let pool_pages = crate::npt::paging_pool_pages(spec.memory_mib, 1);
        let mut pool = take_pool(&mut taken.host.frames, pool_pages).map_err(oom)?;
        taken.runs.push(pool.block());
        let npt = {
            let mut t = HostTables { pool: &mut pool };
            let npt = Npt::new(&mut t).map_err(DomainError::Npt)?;
            npt.map_range(&mut t, 0, ram, ram_bytes, true)
                .map_err(DomainError::Npt)?;
            npt.map_4k(&mut t, layout::CONSOLE_PFN * PAGE_SIZE, console, true)
                .map_err(DomainError::Npt)?;
            npt.map_4k(&mut t, layout::STORE_PFN * PAGE_SIZE, store, true)
                .map_err(DomainError::Npt)?;
            // The ACPI tables' pages (the builder writes them), as libxl places them.
            for page in 0..builder::acpi::ACPI_PAGES {
                let at = page * PAGE_SIZE;
                npt.map_4k(&mut t, builder::acpi::ACPI_INFO_GPA + at, acpi + at, true)
                    .map_err(DomainError::Npt)?;
            }
            npt
        };
        hvlog!(
            "d{domid}: paging pool {pool_pages} pages, {} used by the tables built",
            pool.in_use()
        );
        let mut mem = DomainMemory { npt, pool };
        let built = builder::build(
            &mut mem,
            spec.image,
            &DomainConfig {
                memory_mib: spec.memory_mib,
                cmdline: spec.cmdline.as_bytes(),
                ramdisk: spec.ramdisk,
            },
        )
        .map_err(DomainError::Build)?;
        let e820 = built.layout.memmap();
        let handle = toolstack::domain_uuid(domid);
        let uuid = toolstack::uuid_text(&handle);
        let store_info = toolstack::domain_info(
            domid,
            &spec.name,
            &uuid,
            spec.memory_mib,
            Ring {
                port: layout::STORE_EVTCHN,
                gfn: layout::STORE_PFN,
            },
            Ring {
                port: layout::CONSOLE_EVTCHN,
                gfn: layout::CONSOLE_PFN,
            },
        );
        // SAFETY: `store` is a page just allocated for this domain's store and freed only at
        // teardown, after the store's last use; hv reaches it only through the store's
        // `HostFrame`.
        let xenstore = unsafe {
            super::super::xenstore::Xenstore::new(&mut taken.host.store, store, &store_info)
        };
        let xenstore = match xenstore {
            Ok(x) => x,
            Err(e) => {
                super::super::xenstore::destroy(&mut taken.host.store, domid, &uuid);
                return Err(DomainError::Xenstore(e));
            }
        };
        // Domain 0's ends of the store and console channels (XenState::new binds them).
        let mut dom0_ports = PortTable::new();
        for (port, service) in [
            (DOM0_STORE_PORT, Service::Xenstored),
            (DOM0_CONSOLE_PORT, Service::Console),
        ] {
            if let Err(e) = dom0_ports.register(port, service) {
                hvlog!("dom0 port {port}: not registered ({e:?})");
            }
        }
        hvlog!(
            "d{domid}: {} MiB RAM at host {ram:#x}, kernel {:#x}-{:#x}, entry {:#x}, start info {:#x}",
            spec.memory_mib,
            built.kernel.0,
            built.kernel.1,
            built.regs.rip,
            built.start_info_gpa
        );
        // For the isolation check (xtask's `hv-isolation`): the host frame behind the page a
        // victim names with `canary-gfn=`, which an attacker then aims its calls at.
        if let Some(gfn) = canary_gfn(&spec.cmdline).filter(|g| *g < ram_bytes / FRAME_SIZE) {
            hvlog!(
                "d{domid} canary gfn {gfn:#x} host frame {:#x}",
                ram / FRAME_SIZE + gfn
            );
        }

        // SAFETY: `vmcb_pa` is a zeroed page just allocated for this domain's VMCB (identity
        // mapped, page aligned, 4096 bytes = size_of::<Vmcb>()), referenced only through this
        // domain until its teardown frees it, after which the domain is dropped. All-zero
        // bytes are a valid VMCB (integers only).
        let Some(vmcb) = (unsafe { (vmcb_pa as *mut Vmcb).as_mut() }) else {
            return Err(DomainError::OutOfMemory {
                wanted: ram_bytes,
                free,
            });
        };
        *vmcb = VMCB_ZERO;
        let r = &built.regs;
        let c = &mut vmcb.control;
        c.intercept_misc1 = misc1::INTR
            | misc1::VINTR
            | misc1::CPUID
            | misc1::INVD
            | misc1::HLT
            | misc1::INVLPGA
            | misc1::IOIO_PROT
            | misc1::MSR_PROT
            | misc1::SHUTDOWN;
        // CR4 writes, checked as Xen checks them (svm::emulate::cr4_write_ok).
        c.intercept_cr = 1 << (16 + 4);
        c.intercept_misc2 = misc2::VMRUN
            | misc2::VMMCALL
            | misc2::VMLOAD
            | misc2::VMSAVE
            | misc2::STGI
            | misc2::CLGI
            | misc2::SKINIT
            | misc2::WBINVD
            | misc2::MONITOR
            | misc2::MWAIT
            | misc2::XSETBV;
        // As Xen's HVM_TRAP_MASK (less #MC, which the host does not handle): #DB and #AC,
        // reflected, so that an endless delivery of either exits to hv (XSA-156).
        c.intercept_exceptions = vmcb::EXCEPTIONS_REFLECTED;
        c.iopm_base_pa = svm::iopm_pa();
        c.msrpm_base_pa = svm::msrpm_pa();
        // One ASID per domain (QEMU flushes the whole TLB at every VMRUN anyway).
        c.guest_asid = u32::from(domid);
        c.tlb_control = vmcb::TLB_CONTROL_FLUSH_ALL;
        c.vintr = vmcb::V_INTR_MASKING;
        c.np_enable = 1;
        c.n_cr3 = mem.npt.root;
        let s = &mut vmcb.save;
        s.cs = r.cs;
        s.ds = r.ds;
        s.es = r.es;
        s.ss = r.ss;
        s.fs = r.fs;
        s.gs = r.gs;
        s.tr = r.tr;
        s.ldtr = r.ldtr;
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

        let clock = taken.host.clock;
        let page = SharedInfoView::new(shared_info);
        page.write_time(&clock, super::super::tsc::now());
        if let Some((sec, nsec)) = taken.host.wallclock {
            page.write_wallclock(sec, nsec);
        }
        let ext_leaf = core::arch::x86_64::__cpuid(0x8000_0001);
        let power = core::arch::x86_64::__cpuid(0x8000_0007);
        hvlog!("domain {domid} is {}", spec.name);
        Ok(Self {
            name: spec.name.clone(),
            spec: spec_index,
            free_before_build,
            owned: Owned {
                console,
                store,
                shared_info,
                vmcb: vmcb_pa,
                acpi: (acpi, acpi_bytes),
            },
            // Xen counts the console and xenstore pages as the domain's; xl's max_pages is
            // the memory and 1 MiB (`maxmem` is `memory` on hv).
            ledger: {
                let pages = ram_bytes / PAGE_SIZE;
                Ledger::new(ram, pages, 2, pages + MAXMEM_SLACK_PAGES)
            },
            mem,
            vmcb,
            vmcb_pa,
            regs,
            ext,
            shared_info,
            shared_info_gfn: None,
            vcpu_info: shared_info,
            e820,
            dom0_ports,
            params: DomainParams {
                domid,
                console_pfn: layout::CONSOLE_PFN,
                console_evtchn: layout::CONSOLE_EVTCHN,
                store_pfn: layout::STORE_PFN,
                store_evtchn: layout::STORE_EVTCHN,
                handle,
            },
            uuid,
            cpuid: CpuidContext {
                domid,
                vcpu_id: 0,
                host_tsc_reliable: power.edx & (1 << 8) != 0,
                host_rdtscp: ext_leaf.edx & (1 << 27) != 0,
                tsc_khz: taken.host.tsc_khz,
            },
            msrs: crate::svm::msr::GuestMsrs::default(),
            // SAFETY: `console` is a page just allocated for this domain's console and freed
            // only at teardown, after the console's last use; hv reaches it only through the
            // console's `HostFrame`.
            console: unsafe { Console::new(console, domid) },
            xenstore,
            xen: XenState::new(domid),
            clock,
            grant_frames: [0; crate::grant::MAX_FRAMES as usize],
            waiting: None,
            upcall_seen: false,
            yielded: false,
            stats: Default::default(),
            counters: Counters::new(),
            trace: crate::trace::ExitTrace::new(),
            guest_log: Default::default(),
        })
    }
}
