//! The Rust entry of hv, called once by pvh's PVH entry stub (expanded here with hv's stack),
//! hv's heap, and the panic path.

use core::fmt::Write;

use pvh::boot::{self, IDENTITY_MAP_BYTES};
use pvh::boot_info::{self, BootInfoError, CMDLINE_MAX, MemoryRegion, PhysRead, StartInfo};
use pvh::exceptions::{self, Fault};
use pvh::frames::{FrameAllocator, FreeRanges, PhysRange};
use pvh::gdt;
use pvh::heap::LockedHeap;

use crate::cmdline;
use crate::hvlog;

use crate::time::{Clock, TimeScale};

use super::domain::DomainSpec;
use super::lapic::Lapic;
use super::machine::{Host, Machine};
use super::virtio::{self, VirtioDisk};
use super::{fpu, irq, rtc, serial, svm, tsc};

/// Size of the boot stack (hv's only stack); an unmapped guard page lies below it.
pub const BOOT_STACK_SIZE: usize = 128 * 1024;

pvh::pvh_entry!(stack_size = BOOT_STACK_SIZE, entry = start);

/// hv's heap before any domain: domain 0's keys, the configs and hv's own small allocations.
pub const HEAP_BASE: u64 = 4 << 20;

/// The most domains hv runs at once (its heap is sized for the configs it is given, up to
/// this many).
pub const DOMAINS_MAX: u64 = 16;

/// Bytes of hv's heap for `domains` domains: [`HEAP_BASE`] and, for each domain, what its
/// xenstore can hold at C xenstored's quotas ([`super::xenstore::HEAP_PER_DOMAIN`]) and one
/// vif's queue of frames waiting for rx buffers ([`netback::RX_QUEUE_BYTES`]; a second vif's
/// comes out of [`HEAP_BASE`]). A restarted domain reuses the share of the one it replaces.
pub const fn heap_bytes(domains: u64) -> u64 {
    HEAP_BASE + domains * (super::xenstore::HEAP_PER_DOMAIN + netback::RX_QUEUE_BYTES as u64)
}

/// hv's heap, for domain 0's xenstore tree and connection queues.
#[global_allocator]
pub static HEAP: LockedHeap = LockedHeap::empty();

/// Most memory-map entries hv reads.
const MAX_MEMMAP: usize = 64;

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Host-physical memory through hv's identity map (read-only view for boot data).
struct HostPhys;

impl PhysRead for HostPhys {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
        if pa.checked_add(buf.len() as u64)? > IDENTITY_MAP_BYTES {
            return None;
        }
        // SAFETY: the range lies inside the identity map; it holds boot data QEMU wrote
        // (start info, command line, module list, memory map), which nothing changes now.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
        Some(())
    }
}

/// hv's CPU exception handler: the fault and its frame-pointer backtrace (`hv: BACKTRACE fault
/// <rip> <return address>...`, resolved by xtask) on the serial port, then QEMU stopped with
/// hv's failure status.
fn fault(fault: &Fault<'_>) -> ! {
    let _ = writeln!(serial::Serial, "hv: EXCEPTION in hv: {fault}");
    let mut returns = [0; pvh::backtrace::DEPTH_MAX];
    let n = pvh::backtrace::walk_boot_stack(fault.frame.rbp, &mut returns);
    let _ = write!(serial::Serial, "hv: ");
    let _ = pvh::backtrace::write_line(
        &mut serial::Serial,
        "fault",
        Some(fault.frame.rip),
        returns.get(..n).unwrap_or(&[]),
    );
    serial::exit_qemu(serial::EXIT_HV_FAILURE)
}

/// What hv reads from QEMU's start info: the command line, module 0 (the guest ELF) and the
/// memory map.
struct BootData {
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    module: (u64, u64),
    memmap: [MemoryRegion; MAX_MEMMAP],
    memmap_len: usize,
}

impl BootData {
    fn read(paddr: u64) -> Result<Self, BootInfoError> {
        let info = StartInfo::read(&HostPhys, paddr)?;
        let mut cmdline = [0u8; CMDLINE_MAX];
        let cmdline_len = info.read_cmdline(&HostPhys, &mut cmdline)?;
        let (mod_pa, mod_len, _) = info.module(&HostPhys, 0)?;
        let mut memmap = [MemoryRegion::EMPTY; MAX_MEMMAP];
        // QEMU's loader always passes a v1 start info with a map: no fallback.
        let (memmap_len, _) =
            boot_info::select_memory_map(&info, &HostPhys, |_| Ok(0), &mut memmap)?;
        Ok(Self {
            cmdline,
            cmdline_len,
            module: (mod_pa, mod_len),
            memmap,
            memmap_len,
        })
    }

    /// The command line (empty if not UTF-8).
    fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    fn memmap(&self) -> &[MemoryRegion] {
        &self.memmap[..self.memmap_len]
    }
}

/// Remaps the legacy PICs to vectors 32..47 and masks every line (hv takes no device
/// interrupts yet; SeaBIOS left them on vectors 8..15, which are exception vectors).
fn quiet_pic() {
    use x86_64::instructions::port::Port;
    let seq: [(u16, u8); 10] = [
        (0x20, 0x11),
        (0xa0, 0x11),
        (0x21, 32),
        (0xa1, 40),
        (0x21, 4),
        (0xa1, 2),
        (0x21, 1),
        (0xa1, 1),
        (0x21, 0xff),
        (0xa1, 0xff),
    ];
    for (port, val) in seq {
        // SAFETY: the 8259 PIC's command and data ports; reprogramming and masking it only
        // changes which interrupts reach this CPU (none), and IF is clear.
        unsafe { Port::<u8>::new(port).write(val) };
    }
}

/// The Rust entry: `start_info` is the physical address of `hvm_start_info`. Module 0 is
/// either a bare PVH ELF (one domain, `pvguest` with 128 MiB, its command line after `--`
/// in hv's) or a config archive (`xlcfg::archive`: xl.cfg configs and their kernels, one
/// domain per config).
pub(crate) extern "C" fn start(start_info: u32) -> ! {
    serial::init();
    gdt::init();
    exceptions::init(fault);
    irq::install();
    if let Err(e) = boot::install_stack_guard() {
        fail(format_args!("stack guard: {e:?}"));
    }
    quiet_pic();
    hvlog!("starting (start info at {start_info:#x})");
    let info = match BootData::read(u64::from(start_info)) {
        Ok(i) => i,
        Err(e) => fail(format_args!("bad PVH start info: {e:?}")),
    };
    let split = cmdline::split(info.cmdline());
    hvlog!(
        "command line: hv {:?}, guest {:?}; module {:#x} bytes at {:#x}",
        split.hv,
        split.guest,
        info.module.1,
        info.module.0
    );
    let options = cmdline::Options::parse(split.hv, |opt| {
        if crate::trace::option(opt) {
            hvlog!("option {opt}: every domain's exit trace printed at its end");
        } else if opt == "keep" {
            super::control::set_keep();
            hvlog!("option keep: hv runs on when no domain is left (until shutdown-hv)");
        } else {
            hvlog!(
                "ignoring unknown option {opt:?} (hv knows npf=emulate|crash, trace=dump, keep, \
                 xenstored-entry-nb=, xenstored-transaction-nodes=, xenstored-memory=)"
            );
        }
    });
    if options.npf == cmdline::NpfPolicy::Crash {
        hvlog!("npf=crash: an access outside a domain's memory crashes the domain");
    }
    super::domain::set_npf_policy(options.npf);
    if options.xenstored != xenstored::quota::Quotas::default() {
        hvlog!("xenstored quotas: {:?}", options.xenstored);
    }
    for r in info.memmap() {
        hvlog!(
            "  memory {:#012x}-{:#012x} type {}",
            r.base,
            r.end(),
            r.kind.code()
        );
    }
    let (mod_pa, mod_len) = info.module;
    let mod_end = mod_pa.saturating_add(mod_len);
    if mod_len == 0 || mod_end > IDENTITY_MAP_BYTES {
        fail(format_args!(
            "guest ELF module at {mod_pa:#x} ({mod_len:#x} bytes) is empty or above 4 GiB"
        ));
    }
    let reserved = [
        PhysRange {
            start: 0,
            end: 1 << 20,
        },
        PhysRange {
            start: (&raw const __kernel_start) as u64,
            end: (&raw const __kernel_end) as u64,
        },
        PhysRange {
            start: mod_pa,
            end: mod_end,
        },
    ];
    // SAFETY: QEMU loaded the module there (start info), the range lies in the identity map
    // (checked) and is reserved from the frame allocator, so nothing writes it for the rest
    // of the run (hv keeps it, to restart domains from it).
    let module: &'static [u8] =
        unsafe { core::slice::from_raw_parts(mod_pa as *const u8, mod_len as usize) };
    let is_archive = xlcfg::archive::is_archive(module);
    let domains = if is_archive {
        match xlcfg::archive::Archive::config_count(module) {
            Ok(n) => u64::from(n),
            Err(e) => fail(format_args!(
                "the PVH module is a broken config archive: {e}"
            )),
        }
    } else {
        1
    };
    if domains > DOMAINS_MAX {
        fail(format_args!(
            "{domains} domain configs given: hv runs at most {DOMAINS_MAX}"
        ));
    }
    super::memory::set_max_ram_page(info.memmap());
    let free = FreeRanges::compute(info.memmap(), &reserved, IDENTITY_MAP_BYTES);
    let mut frames = FrameAllocator::new(free);
    // With `keep`, room for every domain the control channel may create and their kernels.
    let heap = if super::control::keep() {
        heap_bytes(DOMAINS_MAX) + 2 * u64::from(hvctl::MAX_KERNEL)
    } else {
        heap_bytes(domains.max(1))
    };
    match frames.allocate_top(heap, 0x1000) {
        // SAFETY: the frames are hv's from now on (allocated, never freed) and lie in the
        // identity map (the allocator's limit); init runs once, here.
        Ok(start) => unsafe { HEAP.init(start, heap as usize) },
        Err(e) => fail(format_args!("no memory for hv's heap: {e:?}")),
    }
    let mut disks = super::blk::Disks::new(disks(&mut frames, info.memmap()));
    let nic = super::nic::scan(&mut frames, &ram_of(info.memmap()));
    hvlog!(
        "{} MiB free for domains (heap {} MiB for {domains} domain(s))",
        frames.free_bytes() >> 20,
        heap >> 20
    );
    if let Err(e) = svm::enable() {
        fail(format_args!("cannot enable SVM: {e:?}"));
    }
    let fpu = fpu::enable();
    hvlog!("extended state: {fpu:?}");
    let archive = is_archive.then(|| xlcfg::archive::Archive::parse(module));
    let mut disk_lists = alloc::vec::Vec::new();
    let mut vif_lists = alloc::vec::Vec::new();
    let specs = match &archive {
        Some(Ok(a)) => specs_of(a, &mut disk_lists, &mut vif_lists),
        Some(Err(e)) => fail(format_args!(
            "the PVH module is a broken config archive: {e}"
        )),
        None => alloc::vec![DomainSpec {
            name: crate::layout::DEFAULT_NAME.into(),
            image: module,
            cmdline: split.guest.into(),
            ramdisk: None,
            memory_mib: crate::layout::DEFAULT_MEMORY_MIB,
            on_poweroff: xlcfg::Action::Destroy,
            on_reboot: xlcfg::Action::Destroy,
            on_crash: xlcfg::Action::Destroy,
        }],
    };
    if let Err(e) = disks.plan(&disk_lists) {
        fail(format_args!("disks: {e}"));
    }
    let tsc_khz = tsc::calibrate_khz();
    hvlog!("TSC {tsc_khz} kHz (PIT calibration)");
    let boot_tsc = tsc::now();
    // No PIT: assume 1 GHz rather than divide by zero (the guests' clocks are then off).
    let Some(scale) =
        TimeScale::new(u64::from(tsc_khz) * 1000).or_else(|| TimeScale::new(1_000_000_000))
    else {
        fail(format_args!("no time scale"))
    };
    let clock = Clock { boot_tsc, scale };
    let lapic = Lapic::init(tsc_khz);
    match &lapic {
        Some(l) => hvlog!("local APIC timer {} kHz (TSC calibration)", l.hz() / 1000),
        None => hvlog!("no local APIC timer: waits spin on the TSC"),
    }
    let wallclock = match rtc::unix_seconds() {
        Some(now) => {
            // The wall clock at system time 0: now minus the (tiny) time since boot_tsc.
            let since = clock.ns(tsc::now());
            let wc_ns = (u128::from(now) * 1_000_000_000).saturating_sub(u128::from(since));
            hvlog!("wall clock {now} s (CMOS RTC)");
            Some((
                (wc_ns / 1_000_000_000) as u64,
                (wc_ns % 1_000_000_000) as u32,
            ))
        }
        None => {
            hvlog!("CMOS RTC unreadable: wall clock left at the epoch");
            None
        }
    };
    let store = match super::xenstore::new_store(options.xenstored) {
        Ok(s) => s,
        Err(e) => fail(format_args!("xenstore: {e}")),
    };
    let host = Host {
        frames,
        store,
        clock,
        tsc_khz,
        wallclock,
        fpu,
        held: crate::held::HeldFrames::default(),
        disks,
        net: super::net::Net::new(nic, vif_lists),
        dom0_events: crate::dom0::blk::Dom0Events::default(),
    };
    hvlog!("SVM on; running {} domain(s)", specs.len());
    Machine::new(host, lapic, specs).run()
}

/// The virtio-blk disks on PCI bus 0 (their DMA pool taken from `frames`), each read once
/// (sector 0) to show the device answers.
fn disks(frames: &mut FrameAllocator, memmap: &[MemoryRegion]) -> alloc::vec::Vec<VirtioDisk> {
    let mut disks = virtio::scan(frames, &ram_of(memmap));
    for d in &mut disks {
        let mut sector = [0u8; 512];
        match d.read(0, &mut sector) {
            Ok(()) => {
                let sum = sector
                    .iter()
                    .fold(0u32, |a, &b| a.rotate_left(5) ^ u32::from(b));
                hvlog!("pci {}: sector 0 read, hash {sum:#010x}", d.location);
            }
            Err(e) => hvlog!("pci {}: reading sector 0 failed: {e:?}", d.location),
        }
    }
    disks
}

/// The memory map's RAM, as `(start, end)`.
fn ram_of(memmap: &[MemoryRegion]) -> alloc::vec::Vec<(u64, u64)> {
    memmap
        .iter()
        .filter(|r| r.kind == boot_info::RegionKind::Ram)
        .map(|r| (r.base, r.end()))
        .collect()
}

/// The domains an archive's configs describe, in its order, each with its kernel from the
/// archive. A config that does not parse (xtask checks them first, so only a hand-made
/// archive has one) or names a kernel the archive lacks stops hv, saying which.
fn specs_of(
    a: &xlcfg::archive::Archive<'static>,
    disks: &mut alloc::vec::Vec<alloc::vec::Vec<super::blk::DiskEntry>>,
    vifs: &mut alloc::vec::Vec<alloc::vec::Vec<super::net::VifEntry>>,
) -> alloc::vec::Vec<DomainSpec> {
    let mut specs = alloc::vec::Vec::new();
    for entry in a.configs() {
        let Ok(text) = core::str::from_utf8(entry.data) else {
            fail(format_args!("config {}: not UTF-8", entry.name));
        };
        let c = match xlcfg::parse(text, xlcfg::dir_of(entry.name)) {
            Ok(c) => c,
            Err(problems) => {
                for p in &problems {
                    hvlog!("{}", p.render(entry.name));
                }
                fail(format_args!("config {} has problems", entry.name));
            }
        };
        let Some(image) = a.file(&c.kernel) else {
            fail(format_args!(
                "config {}: kernel {} is not in the archive",
                entry.name, c.kernel
            ));
        };
        let ramdisk = c.ramdisk.as_ref().map(|r| {
            a.file(r).unwrap_or_else(|| {
                fail(format_args!(
                    "config {}: ramdisk {r} is not in the archive",
                    entry.name
                ))
            })
        });
        vifs.push(super::net::VifEntry::list_of(&c));
        disks.push(super::blk::DiskEntry::list_of(&c));
        specs.push(DomainSpec {
            name: c.name,
            image,
            cmdline: c.cmdline,
            ramdisk,
            memory_mib: c.memory_mib,
            on_poweroff: c.on_poweroff,
            on_reboot: c.on_reboot,
            on_crash: c.on_crash,
        });
    }
    specs
}
/// Logs `what` and stops QEMU with hv's failure status.
pub fn fail(what: core::fmt::Arguments<'_>) -> ! {
    hvlog!("fatal: {what}");
    serial::exit_qemu(serial::EXIT_HV_FAILURE)
}

/// Prints a panic and stops QEMU with hv's failure status.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    let _ = writeln!(serial::Serial, "hv: PANIC: {info}");
    let mut returns = [0; pvh::backtrace::DEPTH_MAX];
    let n = pvh::backtrace::walk_boot_stack(pvh::backtrace::current_rbp(), &mut returns);
    let _ = write!(serial::Serial, "hv: ");
    let _ = pvh::backtrace::write_line(
        &mut serial::Serial,
        "panic",
        None,
        returns.get(..n).unwrap_or(&[]),
    );
    serial::exit_qemu(serial::EXIT_HV_FAILURE)
}
