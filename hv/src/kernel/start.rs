//! The Rust entry of hv, called once by the boot stub, and the panic path.

use core::fmt::Write;

use crate::boot_info::BootInfo;
use crate::cmdline;
use crate::guest::phys::{GuestPhys, PhysError};
use crate::hvlog;

use super::{boot, exceptions, gdt, serial};

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
    for r in info.memmap() {
        hvlog!(
            "  memory {:#012x}-{:#012x} type {}",
            r.base,
            r.base + r.size,
            r.kind
        );
    }
    fail(format_args!("nothing more to do yet"))
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
