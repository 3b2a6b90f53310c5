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

use super::domain::{self, Domain};
use super::{irq, serial, svm};

/// Size of the boot stack (hv's only stack); an unmapped guard page lies below it.
pub const BOOT_STACK_SIZE: usize = 128 * 1024;

pvh::pvh_entry!(stack_size = BOOT_STACK_SIZE, entry = start);

/// hv's heap before any domain: domain 0's keys and hv's own small allocations.
pub const HEAP_BASE: u64 = 4 << 20;

/// The domains hv's heap is sized for. hv runs one domain today; when it runs several, it
/// must refuse to create one beyond this (or size the heap by its configs).
pub const DOMAINS_MAX: u64 = 1;

/// Bytes of hv's heap: [`HEAP_BASE`] and, for each domain, what its xenstore can hold at C
/// xenstored's quotas ([`super::xenstore::HEAP_PER_DOMAIN`]).
pub const HEAP_BYTES: u64 = HEAP_BASE + DOMAINS_MAX * super::xenstore::HEAP_PER_DOMAIN;

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

/// hv's CPU exception handler: the fault on the serial port, then QEMU stopped with hv's
/// failure status.
fn fault(fault: &Fault<'_>) -> ! {
    let _ = writeln!(serial::Serial, "hv: EXCEPTION in hv: {fault}");
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

/// The Rust entry: `start_info` is the physical address of `hvm_start_info`.
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
        "command line: hv {:?}, guest {:?}; guest ELF {:#x} bytes at {:#x}",
        split.hv,
        split.guest,
        info.module.1,
        info.module.0
    );
    for opt in split.hv.split_whitespace() {
        hvlog!("ignoring unknown option {opt:?} (hv has no options yet)");
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
    let free = FreeRanges::compute(info.memmap(), &reserved, IDENTITY_MAP_BYTES);
    let mut frames = FrameAllocator::new(free);
    match frames.allocate_top(HEAP_BYTES, 0x1000) {
        // SAFETY: the frames are hv's from now on (allocated, never freed) and lie in the
        // identity map (the allocator's limit); init runs once, here.
        Ok(start) => unsafe { HEAP.init(start, HEAP_BYTES as usize) },
        Err(e) => fail(format_args!("no memory for hv's heap: {e:?}")),
    }
    hvlog!("{} MiB free for domains", frames.free_bytes() >> 20);
    if let Err(e) = svm::enable() {
        fail(format_args!("cannot enable SVM: {e:?}"));
    }
    // SAFETY: QEMU loaded the module there (start info), the range lies in the identity map
    // (checked) and is reserved from the frame allocator, so nothing writes it while the
    // builder reads it.
    let image = unsafe { core::slice::from_raw_parts(mod_pa as *const u8, mod_len as usize) };
    let mut dom = match Domain::build(frames, image, split.guest) {
        Ok(d) => d,
        Err(e) => fail(format_args!("cannot build domain 1: {e}")),
    };
    hvlog!("SVM on; running d1");
    let end = dom.run();
    domain::finish(dom, end)
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
    serial::exit_qemu(serial::EXIT_HV_FAILURE)
}
