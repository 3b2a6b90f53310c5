//! The SSE registers xmm0..xmm15 and MXCSR, loaded and stored as plain values: what a
//! self-test needs to check that the hypervisor keeps them for this domain. The kernel target
//! is soft-float, so compiled code never touches these registers; only these functions do.

/// The number of xmm registers in 64-bit mode.
pub const XMM_COUNT: usize = 16;

/// The MXCSR bits [`set_mxcsr`] accepts: the six exception flags, the six masks, rounding
/// control and flush-to-zero (bits 0..=5 and 7..=15). DAZ (bit 6) exists only on CPUs whose
/// `MXCSR_MASK` says so, and every bit above 15 is reserved: `ldmxcsr` of either raises #GP.
pub const MXCSR_SETTABLE: u32 = 0xffbf;

/// Loads `values[i]` into `xmm<i>` for every register.
pub fn load(values: &[u128; XMM_COUNT]) {
    let base = values.as_ptr();
    // SAFETY: `base` points to 16 readable, initialised u128s (256 bytes); `movdqu` takes any
    // alignment. The registers written are not declared as clobbers on purpose, and that is
    // sound here: the kernel target is soft-float (no `sse` feature), so compiled code never
    // holds a value in an xmm register and nothing the compiler relies on changes. SSE is
    // enabled (CR4.OSFXSR, CR0.EM clear) by pvh's entry stub before any Rust code runs.
    unsafe {
        core::arch::asm!(
            "movdqu xmm0, [{b}]",
            "movdqu xmm1, [{b} + 16]",
            "movdqu xmm2, [{b} + 32]",
            "movdqu xmm3, [{b} + 48]",
            "movdqu xmm4, [{b} + 64]",
            "movdqu xmm5, [{b} + 80]",
            "movdqu xmm6, [{b} + 96]",
            "movdqu xmm7, [{b} + 112]",
            "movdqu xmm8, [{b} + 128]",
            "movdqu xmm9, [{b} + 144]",
            "movdqu xmm10, [{b} + 160]",
            "movdqu xmm11, [{b} + 176]",
            "movdqu xmm12, [{b} + 192]",
            "movdqu xmm13, [{b} + 208]",
            "movdqu xmm14, [{b} + 224]",
            "movdqu xmm15, [{b} + 240]",
            b = in(reg) base,
            options(nostack, readonly, preserves_flags),
        );
    }
}

/// The current values of xmm0..xmm15.
pub fn store() -> [u128; XMM_COUNT] {
    let mut values = [0u128; XMM_COUNT];
    let base = values.as_mut_ptr();
    // SAFETY: `base` points to 16 writable u128s (256 bytes) owned by this frame; `movdqu`
    // takes any alignment. Reading the registers has no other effect (and see [`load`] on
    // why compiled code holds nothing in them).
    unsafe {
        core::arch::asm!(
            "movdqu [{b}], xmm0",
            "movdqu [{b} + 16], xmm1",
            "movdqu [{b} + 32], xmm2",
            "movdqu [{b} + 48], xmm3",
            "movdqu [{b} + 64], xmm4",
            "movdqu [{b} + 80], xmm5",
            "movdqu [{b} + 96], xmm6",
            "movdqu [{b} + 112], xmm7",
            "movdqu [{b} + 128], xmm8",
            "movdqu [{b} + 144], xmm9",
            "movdqu [{b} + 160], xmm10",
            "movdqu [{b} + 176], xmm11",
            "movdqu [{b} + 192], xmm12",
            "movdqu [{b} + 208], xmm13",
            "movdqu [{b} + 224], xmm14",
            "movdqu [{b} + 240], xmm15",
            b = in(reg) base,
            options(nostack, preserves_flags),
        );
    }
    values
}

/// The current MXCSR (`stmxcsr`).
pub fn mxcsr() -> u32 {
    let mut value = 0u32;
    // SAFETY: `stmxcsr` writes 4 bytes to `value`, a live local; nothing else changes.
    unsafe {
        core::arch::asm!(
            "stmxcsr [{p}]",
            p = in(reg) &raw mut value,
            options(nostack, preserves_flags),
        );
    }
    value
}

/// A value `ldmxcsr` would refuse with #GP: bits outside [`MXCSR_SETTABLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedMxcsrBits(pub u32);

/// Sets MXCSR (`ldmxcsr`) to `value`, which may use only [`MXCSR_SETTABLE`] bits.
pub fn set_mxcsr(value: u32) -> Result<(), ReservedMxcsrBits> {
    if value & !MXCSR_SETTABLE != 0 {
        return Err(ReservedMxcsrBits(value & !MXCSR_SETTABLE));
    }
    // SAFETY: `ldmxcsr` reads 4 bytes from `value`, a live local; no reserved bit is set
    // (checked above), so it cannot fault. Compiled code does no SSE arithmetic (soft-float
    // target), so a changed rounding mode or unmasked exception affects nothing but SSE
    // instructions this module's callers run themselves.
    unsafe {
        core::arch::asm!(
            "ldmxcsr [{p}]",
            p = in(reg) &raw const value,
            options(nostack, readonly, preserves_flags),
        );
    }
    Ok(())
}
