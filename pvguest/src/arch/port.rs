//! Port I/O the kernel uses: Xen's guest debug port 0xE9.

use core::arch::asm;

/// Writes `bytes` to port 0xE9 (`XEN_HVM_DEBUGCONS_IOPORT`): Xen prints them as `(dN) ...`
/// in its log when booted with `guest_loglvl=all`. Never fails; harmless without Xen.
///
/// One `rep outsb` per call: Xen emulates the whole string in one exit instead of one exit
/// per byte, which keeps this mirror cheap next to the PV console ring.
pub fn debugcon_write(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: `rep outsb` reads `bytes.len()` bytes from the live slice (rsi, counted by rcx)
    // and writes them to port 0xE9, Xen's write-only debug console, which affects no memory
    // and no device this kernel drives. The direction flag is clear (Rust ABI).
    unsafe {
        asm!(
            "rep outsb",
            in("dx") abi::xen::XEN_HVM_DEBUGCONS_IOPORT,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly)
        );
    }
}
