//! x86_64 machine layer: pvh's (the PVH entry with pvguest's stack and entry function,
//! descriptor tables, exception stubs, port I/O) plus what is Xen's: the fault handler's
//! report (emergency console, then a crashed domain), the debug console port 0xE9, the
//! event-channel upcall stub and idle (`sti; hlt`). The only place that touches control
//! registers and descriptor tables.

use core::fmt::Write;

pub use pvh::{boot, exceptions, gdt};

pub mod upcall;

/// Size of the boot stack (the kernel's only stack); an unmapped guard page lies below it.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

pvh::pvh_entry!(stack_size = BOOT_STACK_SIZE, entry = crate::kernel::start);

/// The CPU exception handler given to [`exceptions::init`]: prints the fault through the
/// emergency console writer and shuts the domain down with reason crash.
pub fn fault(fault: &exceptions::Fault<'_>) -> ! {
    let _ = writeln!(crate::xen::console::EmergencyWriter, "EXCEPTION {fault}");
    crate::xen::shutdown::crash()
}

/// Port I/O: pvh's, and Xen's guest debug port 0xE9.
pub mod port {
    pub use pvh::port::*;

    /// Writes `bytes` to port 0xE9 (`XEN_HVM_DEBUGCONS_IOPORT`): Xen prints them as
    /// `(dN) ...` in its log when booted with `guest_loglvl=all`. Never fails; harmless
    /// without Xen.
    ///
    /// One `rep outsb` per call: Xen emulates the whole string in one exit instead of one
    /// exit per byte, which keeps this mirror cheap next to the PV console ring.
    pub fn debugcon_write(bytes: &[u8]) {
        // SAFETY: port 0xE9 is Xen's write-only debug console, which affects no memory and no
        // device this kernel drives (hv skips the string; without either, nothing listens).
        unsafe { outsb(abi::xen::XEN_HVM_DEBUGCONS_IOPORT, bytes) }
    }
}

/// Reads the time-stamp counter (`RDTSC`).
pub fn read_tsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; the domain runs with tsc_mode native or emulated
    // TSC, either way readable at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}
