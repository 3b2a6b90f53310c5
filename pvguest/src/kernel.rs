//! The boot sequence after the switch to long mode: descriptor tables, Xen discovery,
//! console, start info, memory, heap; then event channels (upcall vector, `VIRQ_TIMER`,
//! event-driven console waits), the grant table and xenstore. [`boot()`] returns what it found;
//! the caller (the binary's entry) then runs the self-tests or the application. Self-test runs
//! bring the event, grant and xenstore set-up up only when a group needs it
//! ([`ensure_platform`]): the `boot` group runs before it.

use core::fmt::Write;

use spin::Once;

use crate::arch::upcall;
use crate::arch::{boot, exceptions, gdt, port::debugcon_write};
use crate::boot_info::{
    self, BootInfoError, CMDLINE_MAX, MemoryMapSource, MemoryRegion, PhysRead, RegionKind,
    StartInfo,
};
use crate::cmdline::Options;
use crate::memory::frames::{FRAME_SIZE, FrameAllocator, FreeRanges, PhysRange};
use crate::memory::{global, heap};
use crate::xen::console::{self, EmergencyWriter};
use crate::xen::cpuid::{self, XenCpuid};
use crate::xen::{events, grant_table, hypercall, shared_info, shutdown, time, xenstore};

/// Capacity of the memory-map copy.
pub const MAX_MEMORY_REGIONS: usize = 64;
/// The heap takes half of the largest free run, at most this much (the rest stays frames:
/// grant pages, rings, the balloon). A quarter of the heap is the HTTP service's connection
/// pool (`httpd::Pool::for_memory`), so a guest with more memory serves more clients at once:
/// about 80 in a 32 MiB guest, 128 (the most) from about 56 MiB up, with the rest to larger
/// buffers beyond: four large slots first (bulk transfers), then every slot. It was 16 MiB, which held every guest from 32 MiB up at 83
/// connections, fewer than `ab -c 128`.
pub const MAX_HEAP_BYTES: u64 = 256 << 20;
/// The heap's size is a multiple of this. Xen's toolstack and hv place the boot data one page
/// apart, so the largest free run differs by a page between them; rounded to a page, half of
/// it flipped between two values with every odd change of the kernel's size in pages (and
/// `FACT heap-alloc.heap-kib`, which the platforms must print alike, with it). Rounded to a
/// MiB, the two agree unless half the run lies within 2 KiB of a MiB boundary.
pub const HEAP_GRANULE: u64 = 1 << 20;

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// What boot found, kept for the self-tests and later subsystems.
#[derive(Debug)]
pub struct BootState {
    /// The checked start info.
    pub start_info: StartInfo,
    /// Xen's CPUID leaves.
    pub cpuid: XenCpuid,
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    map: [MemoryRegion; MAX_MEMORY_REGIONS],
    map_len: usize,
    /// Where the memory map came from.
    pub map_source: MemoryMapSource,
    /// The kernel image `[start, end)`.
    pub kernel: PhysRange,
    /// The heap region.
    pub heap: PhysRange,
    /// Free memory left after the heap, in bytes.
    pub free_after_heap: u64,
}

impl BootState {
    /// The command line (empty if absent or not UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The memory map.
    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.map[..self.map_len]
    }
}

static BOOT: Once<BootState> = Once::new();

/// The boot state (None until boot has set up memory).
pub fn boot_state() -> Option<&'static BootState> {
    BOOT.get()
}

/// Guest-physical memory through the identity map (the first 4 GiB), for reading boot data.
///
/// Reading an arbitrary address is not safe (it may be memory Rust code holds a reference
/// to, or a device), so the only way to get one is [`IdentityMap::new`], which states what
/// may be read through it.
pub struct IdentityMap(());

impl IdentityMap {
    /// A reader of boot data.
    ///
    /// # Safety
    /// While the value is used, every range it is asked to read must be boot data the domain
    /// builder wrote (the start info and the tables and strings it names): RAM that no Rust
    /// reference covers, that nothing writes concurrently, and that is not device memory.
    pub const unsafe fn new() -> Self {
        Self(())
    }
}

/// Reads the start info at `paddr` again (for the self-tests).
pub fn reread_start_info(paddr: u64) -> Result<StartInfo, boot_info::BootInfoError> {
    // SAFETY: StartInfo::read reads only the start info, which the domain builder wrote and
    // nothing changes after boot; the frame allocator and heap never hand it out (reserved).
    let mem = unsafe { IdentityMap::new() };
    StartInfo::read(&mem, paddr)
}

impl PhysRead for IdentityMap {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Option<()> {
        let end = paddr.checked_add(buf.len() as u64)?;
        if end > boot::IDENTITY_MAP_BYTES {
            return None;
        }
        // SAFETY: the range is inside the identity map, hence mapped; it is the domain's own
        // memory (start info, tables, command line written by the domain builder before
        // boot), which no other party changes now, so a plain copy is sound.
        unsafe { core::ptr::copy_nonoverlapping(paddr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Some(())
    }
}

fn kernel_range() -> PhysRange {
    PhysRange {
        start: (&raw const __kernel_start) as u64,
        end: (&raw const __kernel_end) as u64,
    }
}

/// Boot failed before anything can be reported on the console: say so on port 0xE9 and stop.
fn die_early(what: &str) -> ! {
    debugcon_write(b"pvguest: fatal: ");
    debugcon_write(what.as_bytes());
    debugcon_write(b"\n");
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The boot sequence, run once by the binary's entry with the start info's physical address:
/// returns what boot found, with the platform up unless only self-tests run (they bring up
/// what they need) and after any `selftest-fault=` (which does not return).
pub fn boot(start_info_paddr: u32) -> &'static BootState {
    debugcon_write(b"pvguest: long mode\n");
    gdt::init();
    exceptions::init(shutdown::fault);
    let guard = boot::install_stack_guard();

    let Some(xen) = cpuid::discover() else {
        die_early("Xen CPUID leaves not found")
    };
    if xen.hypercall_pages == 0 {
        die_early("Xen offers no hypercall page");
    }
    hypercall::install_page(xen.hypercall_msr);
    let shinfo = shared_info::map();
    let cons = console::init();
    console::init_logger();
    if let Err(e) = cons {
        let _ = writeln!(
            EmergencyWriter,
            "pvguest: PV console unavailable ({e}); port 0xE9 only"
        );
    }
    log::info!(
        "pvguest: Xen {}.{} (CPUID base {:#x}, hypercall MSR {:#x})",
        xen.version.0,
        xen.version.1,
        xen.base,
        xen.hypercall_msr
    );
    if let Err(e) = guard {
        panic!("stack guard: {e:?}");
    }
    if let Err(e) = shinfo {
        log::warn!("shared info not mapped: {e}; console waits cannot be bounded");
    }

    let state = match setup_memory(u64::from(start_info_paddr), xen) {
        Ok(s) => BOOT.call_once(|| s),
        Err(e) => panic!("boot: {e}"),
    };
    let opts = Options::parse(state.cmdline());
    // The length counts the whole line (the stock-Xen harness checks it against what it
    // passed); the text is cut short so that a long `note=` does not flood the console.
    let cmdline = state.cmdline();
    let shown = &cmdline[..cmdline.floor_char_boundary(CMDLINE_SHOWN)];
    let more = if shown.len() < cmdline.len() {
        " ..."
    } else {
        ""
    };
    log::info!("command line ({} bytes): {shown:?}{more}", cmdline.len());
    // The `boot` self-tests run before the event, grant and xenstore set-up, and
    // `selftest=boot` alone never needs it (hv offers only the console and memory so far);
    // every other use brings it up now.
    if opts.selftest.is_none() || opts.fault.is_some() {
        ensure_platform();
    }
    if let Some(kind) = opts.fault {
        raise_fault(kind);
    }
    state
}

static EVENTS: Once<bool> = Once::new();
static GRANTS: Once<()> = Once::new();
static XENSTORE: Once<()> = Once::new();

/// Brings up the platform once: event channels and time, the grant table, xenstore. Later
/// calls do nothing.
pub fn ensure_platform() {
    ensure_events();
    ensure_grants();
    ensure_xenstore();
}

/// Brings up event channels, then the timer and event-driven console waits, once; whether
/// event channels are up. Failures are logged; what depends on them reports its own error.
pub fn ensure_events() -> bool {
    *EVENTS.call_once(|| {
        if let Err(e) = events::init() {
            log::error!("event channels: {e}; staying on polling");
            return false;
        }
        match time::init() {
            Ok(port) => {
                log::info!(
                    "events: upcall vector {:#x}, VIRQ_TIMER on port {}",
                    upcall::UPCALL_VECTOR,
                    port.get()
                );
                // Event-driven waits need the timer to bound them.
                if let Err(e) = console::use_events() {
                    log::warn!("console stays on polling: {e}");
                }
            }
            Err(e) => log::error!("timer: {e}; console stays on polling"),
        }
        true
    })
}

/// Maps the grant table's first frame, once (no events needed).
pub fn ensure_grants() {
    GRANTS.call_once(|| match grant_table::init() {
        Ok((nr, max)) => log::info!("grant table: {nr} frames mapped by Xen, at most {max}"),
        Err(e) => log::error!("grant table: {e:?}"),
    });
}

/// Brings up xenstore (after event channels), once.
pub fn ensure_xenstore() {
    if !ensure_events() {
        return;
    }
    XENSTORE.call_once(|| match xenstore::init() {
        Ok(port) => log::info!("xenstore: ring up, port {}", port.get()),
        Err(e) => log::error!("xenstore: {e}"),
    });
}

/// Bytes of the command line shown in the boot log.
const CMDLINE_SHOWN: usize = 200;

/// The boot's stop message for an overlong command line, naming the limit.
const CMDLINE_TOO_LONG: &str = "the command line is longer than CMDLINE_MAX = 4096 bytes";
const _: () = assert!(CMDLINE_MAX == 4096, "update CMDLINE_TOO_LONG");

/// Reads the start info and memory map, then sets up the frame allocator and the heap.
fn setup_memory(paddr: u64, cpuid: XenCpuid) -> Result<BootState, &'static str> {
    // SAFETY: setup_memory reads only the start info and the command line, memory map and
    // module list it names: boot data the domain builder wrote, which nothing changes now and
    // no Rust reference covers (the heap and frame allocator do not exist yet).
    let mem = unsafe { IdentityMap::new() };
    let info = StartInfo::read(&mem, paddr).map_err(|e| {
        log::error!("start info at {paddr:#x}: {e:?}");
        "bad start info"
    })?;
    log::info!(
        "start info v{} at {paddr:#x}: flags {:#x}, {} modules, cmdline at {:#x}, memmap {} entries at {:#x}",
        info.raw.version,
        info.raw.flags,
        info.raw.nr_modules,
        info.raw.cmdline_paddr,
        info.raw.memmap_entries,
        info.raw.memmap_paddr
    );
    let mut cmdline = [0u8; CMDLINE_MAX];
    let cmdline_len = info.read_cmdline(&mem, &mut cmdline).map_err(|e| {
        log::error!("command line: {e}");
        match e {
            BootInfoError::CmdlineTooLong { .. } => CMDLINE_TOO_LONG,
            _ => "bad command line",
        }
    })?;

    let mut map = [MemoryRegion::EMPTY; MAX_MEMORY_REGIONS];
    let (map_len, map_source) =
        boot_info::select_memory_map(&info, &mem, hypercall_memory_map, &mut map).map_err(|e| {
            log::error!("memory map: {e:?}");
            "no memory map"
        })?;
    log::info!("memory map ({map_source:?}):");
    for r in &map[..map_len] {
        log::info!("  {:#012x}-{:#012x} {:?}", r.base, r.end(), r.kind);
    }

    // Everything the allocator must not hand out.
    let kernel = kernel_range();
    let mut reserved = [PhysRange { start: 0, end: 0 }; 8 + 2 * MAX_MODULES];
    let mut n = 0;
    let mut reserve = |r: PhysRange| {
        if n < reserved.len() {
            reserved[n] = r;
            n += 1;
        }
    };
    reserve(PhysRange {
        start: 0,
        end: 1 << 20,
    });
    reserve(kernel);
    reserve(PhysRange::from_len(
        paddr,
        boot_info::start_info_size(info.raw.version),
    ));
    if info.raw.cmdline_paddr != 0 {
        reserve(PhysRange::from_len(
            info.raw.cmdline_paddr,
            cmdline_len as u64 + 1,
        ));
    }
    if info.has_memmap() {
        let bytes = u64::from(info.raw.memmap_entries)
            * core::mem::size_of::<abi::start_info::HvmMemmapTableEntry>() as u64;
        reserve(PhysRange::from_len(info.raw.memmap_paddr, bytes));
    }
    if info.raw.nr_modules > 0 {
        let bytes = u64::from(info.raw.nr_modules)
            * core::mem::size_of::<abi::start_info::HvmModlistEntry>() as u64;
        reserve(PhysRange::from_len(info.raw.modlist_paddr, bytes));
        if info.raw.nr_modules as usize > MAX_MODULES {
            return Err("too many boot modules");
        }
        for i in 0..info.raw.nr_modules {
            let (mpaddr, msize, mcmd) =
                info.module(&mem, i).map_err(|_| "unreadable module list")?;
            reserve(PhysRange::from_len(mpaddr, msize));
            if mcmd != 0 {
                reserve(PhysRange::from_len(mcmd, FRAME_SIZE)); // length unknown: keep a page
            }
        }
    }
    let free = FreeRanges::compute(&map[..map_len], &reserved[..n], boot::IDENTITY_MAP_BYTES);
    if free.dropped > 0 {
        log::warn!("{} free ranges ignored (table full)", free.dropped);
    }
    let mut frames = FrameAllocator::new(free);
    let heap_bytes = (frames.largest_free() / 2).min(MAX_HEAP_BYTES) & !(HEAP_GRANULE - 1);
    if heap_bytes < (1 << 20) {
        return Err("less than 2 MiB of contiguous free memory");
    }
    let heap_start = frames
        .allocate(heap_bytes / FRAME_SIZE)
        .map_err(|_| "heap allocation failed")?;
    // SAFETY: the frames were just taken from RAM that is free (not the kernel, boot data or
    // low memory), lie below 4 GiB (identity mapped, writable), and are never handed out again.
    unsafe { heap::init(heap_start, heap_bytes as usize) };
    log::info!(
        "heap: {} KiB at {heap_start:#x}; {} KiB free besides",
        heap_bytes >> 10,
        frames.free_bytes() >> 10
    );

    let free_after_heap = frames.free_bytes();
    if global::install(frames).is_err() {
        return Err("the frame allocator was handed over twice");
    }
    Ok(BootState {
        start_info: info,
        cpuid,
        cmdline,
        cmdline_len,
        map,
        map_len,
        map_source,
        kernel,
        heap: PhysRange::from_len(heap_start, heap_bytes),
        free_after_heap,
    })
}

/// Raises the CPU exception `kind` names (for checking the exception path on real Xen);
/// returns only for an unknown kind.
fn raise_fault(kind: &str) {
    log::warn!("raising a {kind} fault on purpose (selftest-fault)");
    match kind {
        "page" => {
            // Above the 4 GiB identity map: not present.
            // SAFETY: the read faults (#PF) before touching memory; the handler shuts down.
            let _ = unsafe { core::ptr::read_volatile(boot::IDENTITY_MAP_BYTES as *const u8) };
        }
        "guard" => {
            // SAFETY: the guard page is unmapped: the read faults; the handler shuts down.
            let _ = unsafe { core::ptr::read_volatile(boot::stack_guard_address() as *const u8) };
        }
        "stack" => {
            let depth = recurse(core::hint::black_box(u64::MAX));
            log::error!("recursion returned {depth}");
        }
        // SAFETY: ud2 raises #UD; the handler shuts down, so nothing runs after it.
        "ud" => unsafe { core::arch::asm!("ud2") },
        other => log::error!("unknown selftest-fault kind {other:?} (page, guard, stack, ud)"),
    }
}

/// Recurses `n` levels with 1 KiB frames: enough to run off the boot stack into its guard.
/// The frame escapes (`black_box`) and is used after the call, so it cannot become a loop.
fn recurse(n: u64) -> u64 {
    let mut frame = [0u8; 1024];
    core::hint::black_box(&mut frame);
    if n == 0 {
        return 0;
    }
    let deeper = recurse(n - 1);
    core::hint::black_box(&frame);
    deeper + 1
}

/// Boot modules the kernel accepts.
pub const MAX_MODULES: usize = 4;

/// `XENMEM_memory_map` into `out`; returns the count or Xen's errno.
pub fn hypercall_memory_map(out: &mut [MemoryRegion]) -> Result<usize, i64> {
    let mut raw = [abi::memory::E820Entry::default(); MAX_MEMORY_REGIONS];
    let n = hypercall::memory_map(&mut raw).map_err(|e| match e {
        hypercall::HypercallError::Xen(errno) => errno,
        // No hypercall page: as if Xen lacked the operation.
        _ => -i64::from(abi::errno::XEN_ENOSYS),
    })?;
    let n = n.min(out.len());
    for (slot, e) in out.iter_mut().zip(&raw[..n]) {
        let (base, size, ty) = (e.addr, e.size, e.type_);
        *slot = MemoryRegion {
            base,
            size,
            kind: RegionKind::from_code(ty),
        };
    }
    Ok(n)
}

/// Prints a panic and shuts the domain down with reason crash.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // No upcalls from here on: the console falls back to polling.
    x86_64::instructions::interrupts::disable();
    let _ = writeln!(EmergencyWriter, "PANIC: {info}");
    shutdown::print_backtrace();
    shutdown::crash()
}
