//! x86_64 machine layer: pvh's (descriptor tables, exception stubs, port I/O; the PVH entry
//! itself is expanded in `main.rs` with [`BOOT_STACK_SIZE`] and the binary's entry function)
//! plus the debug console port 0xE9, the event-channel upcall stub and idle (`sti; hlt`), and
//! the SSE registers as plain values and the XSAVE state as a whole for the self-tests
//! ([`vector`], [`xsave`]), and a few instructions run at CPL 3 ([`user`]). The only place that
//! touches control registers, descriptor tables and vector registers; it imports nothing of the
//! kernel above it (the fault handler is passed to [`exceptions::init`] by the boot sequence).

pub use pvh::{boot, exceptions, gdt, stack};

pub mod upcall;
pub mod user;
pub mod vector;
pub mod xsave;

/// Size of the boot stack (the kernel's only stack); an unmapped guard page lies below it.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// The kernel's stacks as `(name, bytes)` for the status document: the boot stack's size and
/// peak (its high-water mark since boot, [`stack`]), its peak since the last repaint (the
/// service repaints when it starts) and the depth its callers held then (`serve_base`: the
/// service's own depth is the difference), and the RSP0 stack's (exceptions at CPL 3: the
/// `cpl3` probes).
pub fn stack_use() -> [(&'static str, u64); 6] {
    let boot = stack::boot_stack_use();
    let serving = stack::boot_stack_use_since_repaint();
    let rsp0 = gdt::privilege_stack_use();
    [
        ("size", boot.size as u64),
        ("peak", boot.peak as u64),
        ("serve_peak", serving.peak as u64),
        ("serve_base", stack::repaint_depth() as u64),
        ("rsp0_size", rsp0.size as u64),
        ("rsp0_peak", rsp0.peak as u64),
    ]
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
