//! The Rust entry of hv, called once by the boot stub, and the panic path.

use core::fmt::Write;

use crate::boot_info::BootInfo;
use crate::cmdline;
use crate::frames::{Frames, Range};
use crate::guest::phys::{GuestPhys, PhysError};
use crate::hvlog;

use super::domain::{self, Domain};
use super::{boot, exceptions, gdt, heap, serial, svm};

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Host-physical memory through hv's identity map (read-only view for boot data).
pub struct HostPhys;

impl GuestPhys for HostPhys {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        let end = pa
            .checked_add(buf.len() as u64)
            .ok_or(PhysError { gpa: pa })?;
        if end > boot::IDENTITY_MAP_BYTES {
            return Err(PhysError { gpa: pa });
        }
        // SAFETY: the range lies inside the identity map; it holds boot data QEMU wrote
        // (start info, command line, module list, memory map), which nothing changes now.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, pa: u64, _data: &[u8]) -> Result<(), PhysError> {
        Err(PhysError { gpa: pa })
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
    exceptions::init();
    quiet_pic();
    hvlog!("starting (start info at {start_info:#x})");
    let info = match BootInfo::read(&HostPhys, u64::from(start_info)) {
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
            r.base + r.size,
            r.kind
        );
    }
    let (mod_pa, mod_len) = info.module;
    let mod_end = mod_pa.saturating_add(mod_len);
    if mod_len == 0 || mod_end > boot::IDENTITY_MAP_BYTES {
        fail(format_args!(
            "guest ELF module at {mod_pa:#x} ({mod_len:#x} bytes) is empty or above 4 GiB"
        ));
    }
    let reserved = [
        Range {
            start: 0,
            end: 1 << 20,
        },
        Range {
            start: (&raw const __kernel_start) as u64,
            end: (&raw const __kernel_end) as u64,
        },
        Range {
            start: mod_pa,
            end: mod_end,
        },
    ];
    let mut frames = Frames::new(info.memmap(), &reserved, boot::IDENTITY_MAP_BYTES);
    match frames.allocate(heap::HEAP_BYTES, 0x1000) {
        // SAFETY: the frames are hv's from now on (allocated, never freed) and lie in the
        // identity map (the allocator's limit); init runs once, here.
        Ok(start) => unsafe { heap::init(start, heap::HEAP_BYTES as usize) },
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
    domain::finish(&dom, end)
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
