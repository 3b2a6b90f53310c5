//! Port I/O: single bytes in and out, and a whole byte string out in one `rep outsb` (a
//! hypervisor emulates the string in one exit instead of one exit per byte).
//!
//! Each function is `unsafe`: what a port write does depends on the device behind it (it may
//! reprogram interrupts, reset the machine or make QEMU exit).

use core::arch::asm;

/// Writes `value` to `port`.
///
/// # Safety
/// The write must be harmless to the memory and devices the kernel relies on (the caller knows
/// the device behind `port`).
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded contract; `out` touches no memory and no flags.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from `port`.
///
/// # Safety
/// The read must be harmless (some devices change state when read).
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded contract; `in` touches no memory and no flags.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes `bytes` to `port` with one `rep outsb`.
///
/// # Safety
/// As [`outb`], for every byte of `bytes`.
pub unsafe fn outsb(port: u16, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: `rep outsb` reads `bytes.len()` bytes from the live slice (rsi, counted by rcx)
    // and writes them to `port` (harmless: the caller's contract). The direction flag is clear
    // (Rust ABI).
    unsafe {
        asm!(
            "rep outsb",
            in("dx") port,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly)
        );
    }
}
