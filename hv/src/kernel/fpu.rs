//! The vCPU state VMRUN does not switch, saved and restored when hv changes domains: the
//! FPU/SSE/AVX registers (XSAVE/XRSTOR of every component the domain's XCR0 enables, or
//! FXSAVE/FXRSTOR on a CPU without XSAVE), XCR0 itself, DR0–DR3 and `TSC_AUX`. hv itself is
//! soft-float and uses no debug registers, so these hold a guest's values from one VMRUN of
//! that guest to the next, and only a switch to another domain needs them saved.
//!
//! The guest's XCR0 is read back from the CPU when its state is saved ([`xgetbv`]), not
//! only taken from the XSETBV intercept: QEMU 7.2's TCG never raises that intercept (the
//! guest's XSETBV writes the CPU's XCR0 itself), and a restore that put back a stale XCR0
//! (the reset value 1) left a Linux domU with AVX off under its feet after every switch, its
//! signal frames saved with AVX state unloadable (`bad frame in rt_sigreturn`).

use core::arch::asm;

use x86_64::registers::model_specific::Msr;

use crate::frames::{FRAME_SIZE, FrameAllocator, FrameError};

use super::memory::alloc_zeroed;

/// `TSC_AUX`, which `RDTSCP` and `RDPID` read (not switched by VMRUN).
const MSR_TSC_AUX: u32 = 0xc000_0103;
/// CR4.OSXSAVE.
const CR4_OSXSAVE: u64 = 1 << 18;
/// The x87 control word and MXCSR at reset (FNINIT and the SSE default), in a fresh area.
const FCW_INIT: u16 = 0x37f;
const MXCSR_INIT: u32 = 0x1f80;

/// How this CPU saves extended state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// XSAVE/XRSTOR of every component the CPU supports (`xcr0`: CPUID 0xD.0 EDX:EAX), with
    /// an area of `bytes` (CPUID 0xD.0 ECX). hv sets XCR0 to `xcr0` around each save and
    /// restore: a guest's own XCR0 does not cover all it can change (SSE registers are the
    /// guest's with CR4.OSFXSR whatever XCR0 says), and restoring every component, those
    /// the next guest never enabled in their initial state, leaves nothing of another
    /// domain in any register.
    Xsave {
        /// Bytes of the area.
        bytes: u64,
        /// Every user component the CPU supports.
        xcr0: u64,
    },
    /// FXSAVE/FXRSTOR (512 bytes).
    Fxsave,
}

/// Sets CR4.OSXSAVE if the CPU has XSAVE (so hv may run XSAVE, XRSTOR and XSETBV) and says
/// how extended state is saved. Call once, at boot.
pub fn enable() -> Method {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 26) == 0 {
        return Method::Fxsave;
    }
    // SAFETY: the CPU has XSAVE (CPUID 1 ECX bit 26), so CR4.OSXSAVE is a valid bit; setting
    // it only enables the XSAVE instructions and XCR0 (which stays at its reset value 1).
    unsafe {
        let cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4 | CR4_OSXSAVE, options(nostack, preserves_flags));
    }
    let leaf = core::arch::x86_64::__cpuid_count(0xd, 0);
    Method::Xsave {
        bytes: u64::from(leaf.ecx.max(576)),
        xcr0: u64::from(leaf.eax) | (u64::from(leaf.edx) << 32),
    }
}

/// One vCPU's state outside the VMCB: its XSAVE area (in frames of its own), XCR0, DR0–3
/// and `TSC_AUX`.
pub struct ExtendedState {
    area: u64,
    area_bytes: u64,
    /// The guest's XCR0 (1 at reset).
    pub xcr0: u64,
    dr: [u64; 4],
}

impl ExtendedState {
    /// A fresh state (FPU and SSE at reset values, every other component in its initial
    /// state, XCR0 = 1, debug registers 0) in frames taken from `frames`.
    pub fn new(frames: &mut FrameAllocator, method: Method) -> Result<Self, FrameError> {
        let bytes = match method {
            Method::Xsave { bytes, .. } => bytes.next_multiple_of(FRAME_SIZE),
            Method::Fxsave => FRAME_SIZE,
        };
        let area = alloc_zeroed(frames, bytes, FRAME_SIZE)?;
        // SAFETY: `area` is a zeroed, page-aligned block of `bytes` (>= 4096) just taken for
        // this state; FCW at offset 0 and MXCSR at 24 lie in its legacy region.
        unsafe {
            core::ptr::write_volatile(area as *mut u16, FCW_INIT);
            core::ptr::write_volatile((area + 24) as *mut u32, MXCSR_INIT);
        }
        Ok(Self {
            area,
            area_bytes: bytes,
            xcr0: 1,
            dr: [0; 4],
        })
    }

    /// The frames of the area, to give back at teardown: `(start, bytes)`.
    pub fn frames(&self) -> (u64, u64) {
        (self.area, self.area_bytes)
    }

    /// Saves the CPU's state into this vCPU's area: the CPU holds this vCPU's state (it ran
    /// last), its XCR0 included, which is read back first (see the module docs). Leaves XCR0
    /// at every supported component (the next restore sets the next vCPU's).
    pub fn save(&mut self, method: Method) {
        if let Method::Xsave { .. } = method {
            self.xcr0 = xgetbv();
        }
        // SAFETY: the area is this vCPU's page-aligned block (64-byte alignment suffices),
        // large enough for every supported component (CPUID 0xD.0 ECX) or 512 bytes for
        // FXSAVE; XCR0 is set to exactly the supported components (CPUID 0xD.0), which is a
        // valid value, before XSAVE writes them all. Reading the debug registers has no side
        // effect.
        unsafe {
            match method {
                Method::Xsave { xcr0, .. } => {
                    super::svm::xsetbv(xcr0);
                    asm!("xsave64 [{}]", in(reg) self.area,
                        in("eax") u32::MAX, in("edx") u32::MAX, options(nostack, preserves_flags));
                }
                Method::Fxsave => asm!("fxsave64 [{}]", in(reg) self.area,
                    options(nostack, preserves_flags)),
            }
            asm!("mov {}, dr0", out(reg) self.dr[0], options(nomem, nostack, preserves_flags));
            asm!("mov {}, dr1", out(reg) self.dr[1], options(nomem, nostack, preserves_flags));
            asm!("mov {}, dr2", out(reg) self.dr[2], options(nomem, nostack, preserves_flags));
            asm!("mov {}, dr3", out(reg) self.dr[3], options(nomem, nostack, preserves_flags));
        }
    }

    /// Loads this vCPU's state into the CPU: every supported component from its area
    /// (those its area marks as initial, or never saved, are initialised), then its XCR0 and
    /// its debug registers.
    pub fn restore(&self, method: Method) {
        // SAFETY: XRSTOR runs under XCR0 = every supported component (valid, CPUID 0xD.0);
        // the area holds what XSAVE/FXSAVE wrote for this vCPU or the fresh image `new` made
        // (valid header, MXCSR without reserved bits), so XRSTOR/FXRSTOR cannot fault. The
        // guest's XCR0 is the reset value 1, a value checked when hv emulated its XSETBV
        // (`emulate::xcr0_valid`), or one the CPU held while the guest ran (read back by
        // `save`), so this CPU accepts it. The debug registers take any address; DR7 (in the VMCB) decides whether
        // they trigger, and only in the guest.
        unsafe {
            match method {
                Method::Xsave { xcr0, .. } => {
                    super::svm::xsetbv(xcr0);
                    asm!("xrstor64 [{}]", in(reg) self.area,
                        in("eax") u32::MAX, in("edx") u32::MAX, options(nostack, preserves_flags));
                    super::svm::xsetbv(self.xcr0);
                }
                Method::Fxsave => asm!("fxrstor64 [{}]", in(reg) self.area,
                    options(nostack, preserves_flags)),
            }
            asm!("mov dr0, {}", in(reg) self.dr[0], options(nomem, nostack, preserves_flags));
            asm!("mov dr1, {}", in(reg) self.dr[1], options(nomem, nostack, preserves_flags));
            asm!("mov dr2, {}", in(reg) self.dr[2], options(nomem, nostack, preserves_flags));
            asm!("mov dr3, {}", in(reg) self.dr[3], options(nomem, nostack, preserves_flags));
        }
    }
}

/// The CPU's XCR0 (`XGETBV` with ECX = 0): while a guest runs and after its exit, the
/// guest's own. Only on a CPU with XSAVE (hv set CR4.OSXSAVE at boot, [`enable`]).
pub fn xgetbv() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: called only with `Method::Xsave`, so [`enable`] set CR4.OSXSAVE (and the host
    // CR4 VMRUN restores keeps it); XGETBV of XCR0 then only reads a register.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") low, out("edx") high,
            options(nomem, nostack, preserves_flags));
    }
    u64::from(low) | (u64::from(high) << 32)
}

/// Writes the CPU's `TSC_AUX` (what the guest's `RDTSCP` reads).
pub fn set_tsc_aux(value: u32) {
    if core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 27) != 0 {
        // SAFETY: TSC_AUX exists where RDTSCP does (checked just above); any 32-bit value
        // is valid, and only RDTSCP/RDPID read it.
        unsafe { Msr::new(MSR_TSC_AUX).write(u64::from(value)) };
    }
}
