//! XSAVE-managed state as a whole: CR4.OSXSAVE, XCR0 (`XSETBV`/`XGETBV`) and the area
//! `XRSTOR`/`XSAVE` load and store, for the `extended-state` self-test. The kernel target is
//! soft-float, so compiled code never holds a value in an x87, SSE, AVX or AVX-512 register;
//! only these functions and [`super::vector`]'s change them.

use core::arch::asm;
use core::arch::x86_64::{__cpuid, __cpuid_count};

/// CR4.OSXSAVE.
const CR4_OSXSAVE: u64 = 1 << 18;

/// A 64-byte-aligned XSAVE area of [`Area::BYTES`] (the standard form of x87, SSE, AVX and
/// AVX-512 takes 2688 bytes).
#[repr(C, align(64))]
pub struct Area(pub [u8; Area::BYTES]);

impl Area {
    /// Bytes of an area.
    pub const BYTES: usize = 4096;
}

/// Whether the CPU offers XSAVE (CPUID 1 ECX bit 26).
pub fn has_xsave() -> bool {
    __cpuid(1).ecx & (1 << 26) != 0
}

/// The XCR0 bits the CPU supports (CPUID 0xD.0 EDX:EAX). Only with [`has_xsave`].
pub fn supported_xcr0() -> u64 {
    let r = __cpuid_count(0xd, 0);
    u64::from(r.eax) | (u64::from(r.edx) << 32)
}

/// Where component `bit` (2..=62) lies in the standard form: `(offset, size)` from CPUID
/// 0xD.`bit` (EBX, EAX).
pub fn component(bit: u32) -> (usize, usize) {
    let r = __cpuid_count(0xd, bit);
    let bytes = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
    (bytes(r.ebx), bytes(r.eax))
}

/// Sets CR4.OSXSAVE (XSAVE, XRSTOR, XSETBV and XGETBV then run); whether it was set before.
/// Only with [`has_xsave`].
pub fn enable_osxsave() -> bool {
    let cr4: u64;
    // SAFETY: reading CR4 has no effect; ring 0.
    unsafe { asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags)) };
    if cr4 & CR4_OSXSAVE == 0 {
        // SAFETY: the CPU has XSAVE (the caller checked CPUID), so OSXSAVE is a valid CR4 bit;
        // it only enables the XSAVE instructions, XCR0 staying at its value (1 after reset).
        unsafe {
            asm!("mov cr4, {}", in(reg) cr4 | CR4_OSXSAVE, options(nostack, preserves_flags));
        }
    }
    cr4 & CR4_OSXSAVE != 0
}

/// Clears CR4.OSXSAVE again (after [`enable_osxsave`] found it clear). XCR0 must be 1 first.
pub fn disable_osxsave() {
    // SAFETY: clearing OSXSAVE only disables the XSAVE instructions; XCR0 is back at 1 (the
    // caller's duty), so no enabled component is left behind.
    unsafe {
        let cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4 & !CR4_OSXSAVE, options(nostack, preserves_flags));
    }
}

/// XCR0 (`XGETBV` with ECX = 0). Only with CR4.OSXSAVE set ([`enable_osxsave`]).
pub fn xgetbv() -> u64 {
    let (low, high): (u64, u64);
    // SAFETY: CR4.OSXSAVE is set (the caller's duty, documented); XGETBV only reads XCR0
    // (into EDX:EAX, clearing the upper halves of RDX and RAX).
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("rax") low, out("rdx") high,
            options(nomem, nostack, preserves_flags));
    }
    low | (high << 32)
}

/// Sets XCR0 (`XSETBV`).
///
/// # Safety
/// CR4.OSXSAVE is set and `value` is a valid XCR0 for this CPU (bit 0 set, only bits
/// [`supported_xcr0`] offers, AVX with SSE, the three AVX-512 bits together and with AVX).
pub unsafe fn xsetbv(value: u64) {
    // SAFETY: the caller's contract makes the value valid; compiled code uses no extended
    // state (soft-float), so what XCR0 enables changes nothing it relies on.
    unsafe {
        asm!("xsetbv", in("ecx") 0u32, in("eax") value & 0xffff_ffff, in("edx") value >> 32,
            options(nomem, nostack, preserves_flags));
    }
}

/// Loads the components in `mask` from `area` (`XRSTOR`; those whose header bit is clear
/// are initialised).
///
/// # Safety
/// CR4.OSXSAVE is set, `mask` is within XCR0, and `area` holds a valid standard-form image:
/// a header with XCOMP_BV and its reserved bytes zero, XSTATE_BV within XCR0, an MXCSR
/// without reserved bits.
pub unsafe fn xrstor(area: &Area, mask: u64) {
    // SAFETY: `area` is 64-byte aligned and large enough for every component the test
    // enables (checked by the caller against CPUID); the image is valid (the caller's
    // contract), so XRSTOR cannot fault. Only extended state changes, which compiled code
    // does not use (soft-float).
    unsafe {
        asm!("xrstor64 [{}]", in(reg) area.0.as_ptr(),
            in("eax") mask & 0xffff_ffff, in("edx") mask >> 32,
            options(nostack, readonly, preserves_flags));
    }
}

/// Stores the components in `mask` into `area` (`XSAVE`; the header's XSTATE_BV says which
/// were not in their initial state).
///
/// # Safety
/// CR4.OSXSAVE is set and every component in `mask` that XCR0 enables fits in an [`Area`]
/// (CPUID 0xD.`bit` offset plus size at most [`Area::BYTES`]).
pub unsafe fn xsave(area: &mut Area, mask: u64) {
    // SAFETY: `area` is 64-byte aligned and owned by the caller; what XSAVE writes (the
    // legacy region, the header and the components of `mask` XCR0 enables) lies inside it
    // (the caller's contract).
    unsafe {
        asm!("xsave64 [{}]", in(reg) area.0.as_mut_ptr(),
            in("eax") mask & 0xffff_ffff, in("edx") mask >> 32,
            options(nostack, preserves_flags));
    }
}
