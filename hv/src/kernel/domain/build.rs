//! Building domain 1: its memory and nested tables, the guest ELF through the domain
//! builder, and the VMCB with the intercepts and the PVH entry state.

use crate::builder::{self, DomainConfig};
use crate::counters::Counters;
use crate::cpuid::CpuidContext;
use crate::dom0::ports::{PortTable, Service};
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::guest::phys::PAGE_SIZE;
use crate::hvlog;
use crate::hypercall::{DOM0_CONSOLE_PORT, DOM0_STORE_PORT, DomainParams, XenState};
use crate::layout;
use crate::npt::Npt;
use crate::svm::emulate::EFER_SVME;
use crate::svm::vmcb::{self, Segment, Vmcb, misc1, misc2};
use crate::time::{Clock, TimeScale};

use super::super::console::Console;
use super::super::memory::{DomainMemory, HostTables, alloc_zeroed, take_pool};
use super::super::svm::{self, GuestRegs};
use super::env::SharedInfoView;
use super::{Domain, DomainError, Owned};

const HUGE: u64 = 2 << 20;

/// An all-zero VMCB (kept here, in the kernel: hv's host-testable modules hold no `unsafe`).
// SAFETY: every field of the VMCB is an integer or an array of integers (the segments
// included), for which all-zero bytes are a valid value.
const VMCB_ZERO: Vmcb = unsafe { core::mem::zeroed() };

/// The VMCB page of the one vCPU.
static mut VMCB: Vmcb = VMCB_ZERO;

impl Domain {
    /// Builds domain 1 from the PVH ELF `image` with command line `cmdline`. Called once.
    pub fn build(
        mut frames: FrameAllocator,
        image: &[u8],
        cmdline: &str,
    ) -> Result<Self, DomainError> {
        let oom = |_| DomainError::OutOfMemory;
        let free_before_build = frames.free_bytes() / FRAME_SIZE;
        let ram_bytes = layout::MEMORY_MIB << 20;
        let ram = alloc_zeroed(&mut frames, ram_bytes, HUGE).map_err(oom)?;
        let console = alloc_zeroed(&mut frames, FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let store = alloc_zeroed(&mut frames, FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let shared_info = alloc_zeroed(&mut frames, FRAME_SIZE, FRAME_SIZE).map_err(oom)?;
        let pool_pages = crate::npt::paging_pool_pages(layout::MEMORY_MIB, 1);
        let mut pool = take_pool(&mut frames, pool_pages).map_err(oom)?;
        let npt = {
            let mut t = HostTables { pool: &mut pool };
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
        hvlog!(
            "d{}: paging pool {pool_pages} pages, {} used by the tables built",
            layout::DOMID,
            pool.in_use()
        );
        let mut mem = DomainMemory { npt, pool };
        let store_info = crate::dom0::toolstack::pvguest_info(
            layout::STORE_EVTCHN,
            layout::STORE_PFN,
            layout::CONSOLE_EVTCHN,
            layout::CONSOLE_PFN,
        );
        // SAFETY: `store` is a page just allocated for this domain's store and freed only at
        // teardown, after the store's last use;
        // hv reaches it only through the store's `HostFrame`.
        let xenstore = unsafe { super::super::xenstore::Xenstore::new(store, &store_info) }
            .map_err(DomainError::Xenstore)?;
        let built = builder::build(
            &mut mem,
            image,
            &DomainConfig {
                memory_mib: layout::MEMORY_MIB,
                cmdline: cmdline.as_bytes(),
            },
        )
        .map_err(DomainError::Build)?;
        let e820 = built.layout.memmap();
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
        *vmcb = VMCB_ZERO;
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
        // CR4 writes, checked as Xen checks them (svm::emulate::cr4_write_ok).
        c.intercept_cr = 1 << (16 + 4);
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

        let tsc_khz = super::super::tsc::calibrate_khz();
        hvlog!("TSC {tsc_khz} kHz (PIT calibration)");
        let boot_tsc = super::super::tsc::now();
        // No PIT: assume 1 GHz rather than divide by zero (the guest's clock is then off).
        let scale = TimeScale::new(u64::from(tsc_khz) * 1000)
            .or_else(|| TimeScale::new(1_000_000_000))
            .ok_or(DomainError::OutOfMemory)?;
        let clock = Clock { boot_tsc, scale };
        let lapic = super::super::lapic::Lapic::init(tsc_khz);
        match &lapic {
            Some(l) => hvlog!("local APIC timer {} kHz (TSC calibration)", l.hz() / 1000),
            None => hvlog!("no local APIC timer: waits spin on the TSC"),
        }
        let page = SharedInfoView::new(shared_info);
        page.write_time(&clock, boot_tsc);
        match super::super::rtc::unix_seconds() {
            Some(now) => {
                // The wall clock at system time 0: now minus the (tiny) time since boot_tsc.
                let since = clock.ns(super::super::tsc::now());
                let wc_ns = (u128::from(now) * 1_000_000_000).saturating_sub(u128::from(since));
                page.write_wallclock(
                    (wc_ns / 1_000_000_000) as u64,
                    (wc_ns % 1_000_000_000) as u32,
                );
                hvlog!("wall clock {now} s (CMOS RTC)");
            }
            None => hvlog!("CMOS RTC unreadable: wall clock left at the epoch"),
        }
        let ext = core::arch::x86_64::__cpuid(0x8000_0001);
        let power = core::arch::x86_64::__cpuid(0x8000_0007);
        Ok(Self {
            frames,
            free_before_build,
            owned: Owned {
                ram: (ram, ram_bytes),
                console,
                store,
                shared_info,
            },
            mem,
            vmcb,
            regs,
            shared_info,
            shared_info_gfn: None,
            vcpu_info: shared_info,
            e820,
            dom0_ports,
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
            msrs: crate::svm::msr::GuestMsrs::default(),
            // SAFETY: `console` is a page just allocated for this domain's console and freed
            // only at teardown, after the console's last use; hv reaches it only through the
            // console's `HostFrame`.
            console: unsafe { Console::new(console, layout::DOMID) },
            xenstore,
            xen: XenState::new(layout::DOMID),
            clock,
            lapic,
            grant_frames: [0; crate::grant::MAX_FRAMES as usize],
            stats: Default::default(),
            counters: Counters::new(),
            guest_log: Default::default(),
        })
    }
}
