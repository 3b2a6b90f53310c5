//! hv's own timer: the local APIC timer in xAPIC mode, through its MMIO page at 0xFEE00000
//! (mapped uncached by `boot`; QEMU's TCG has no x2APIC and no TSC-deadline mode), one-shot,
//! calibrated against the TSC. Its interrupt only ends a `hlt` of hv or exits the guest
//! (`INTR`); the stub in `irq` acknowledges it.

use super::tsc;

/// The local APIC's MMIO base (xAPIC default).
const BASE: u64 = 0xfee0_0000;
/// Registers.
const TPR: u64 = 0x80;
const SVR: u64 = 0xf0;
const LVT_TIMER: u64 = 0x320;
const INITIAL_COUNT: u64 = 0x380;
const CURRENT_COUNT: u64 = 0x390;
const DIVIDE: u64 = 0x3e0;
/// LVT mask bit.
const MASKED: u32 = 1 << 16;

/// hv's timer vector (above the remapped PIC's 32..47).
pub const TIMER_VECTOR: u8 = 0x40;
/// The spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// `IA32_APIC_BASE`.
const MSR_APIC_BASE: u32 = 0x1b;

fn read(reg: u64) -> u32 {
    // SAFETY: `BASE + reg` is a register of the local APIC (identity mapped, uncached);
    // reading it has no side effect.
    unsafe { core::ptr::read_volatile((BASE + reg) as *const u32) }
}

fn write(reg: u64, value: u32) {
    // SAFETY: as in `read`; hv owns the local APIC, and the registers written here only
    // configure its timer and enable it.
    unsafe { core::ptr::write_volatile((BASE + reg) as *mut u32, value) }
}

/// The calibrated timer: its ticks per second.
#[derive(Clone, Copy, Debug)]
pub struct Lapic {
    hz: u64,
}

impl Lapic {
    /// Enables the local APIC (xAPIC mode at 0xFEE00000), masks its timer and measures the
    /// timer's rate against the TSC (`tsc_khz`, from the PIT), the slowest of five 2 ms windows. `None` if there is
    /// no APIC, it is not at the default base, or the timer does not count.
    pub fn init(tsc_khz: u32) -> Option<Self> {
        let cpuid = core::arch::x86_64::__cpuid(1);
        if cpuid.edx & (1 << 9) == 0 || tsc_khz == 0 {
            return None;
        }
        let mut msr = x86_64::registers::model_specific::Msr::new(MSR_APIC_BASE);
        // SAFETY: IA32_APIC_BASE exists when CPUID says there is an APIC; setting the global
        // enable bit (11) keeps the default base and leaves x2APIC mode off.
        let base = unsafe { msr.read() };
        if base & 0xffff_f000 != BASE {
            return None;
        }
        // SAFETY: as above.
        unsafe { msr.write(base | (1 << 11)) };
        write(SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
        write(TPR, 0);
        write(DIVIDE, 0xb); // divide by 1
        write(LVT_TIMER, MASKED | u32::from(TIMER_VECTOR));
        // Five 2 ms windows, the slowest rate kept: under QEMU's TCG the host may
        // deschedule the vCPU between the end of a window and the count's read, which only
        // ever inflates a measurement (a tick rate twice too high would make every slice and
        // timer twice too long).
        let hz = (0..5)
            .map(|_| measure(tsc_khz))
            .filter(|&hz| hz > 0)
            .min()
            .unwrap_or(0);
        write(INITIAL_COUNT, 0);
        (hz > 0).then_some(Self { hz })
    }

    /// The timer's rate.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// Arms the one-shot timer to interrupt in `ns` nanoseconds (at least one tick, at
    /// most the counter's range: a longer wait is re-armed when it fires).
    pub fn arm(&self, ns: u64) {
        let ticks =
            (u128::from(ns) * u128::from(self.hz) / 1_000_000_000).clamp(1, u128::from(u32::MAX));
        write(LVT_TIMER, u32::from(TIMER_VECTOR));
        write(INITIAL_COUNT, ticks as u32);
    }

    /// Stops the timer.
    pub fn disarm(&self) {
        write(INITIAL_COUNT, 0);
        write(LVT_TIMER, MASKED | u32::from(TIMER_VECTOR));
    }
}

/// One measurement of the timer's rate against the TSC (`tsc_khz`) over 2 ms: 0 if the
/// window was disturbed (a count was read more than 20 µs away from its TSC reading).
fn measure(tsc_khz: u32) -> u64 {
    let khz = u64::from(tsc_khz);
    write(INITIAL_COUNT, u32::MAX);
    let ta = tsc::now();
    let c0 = read(CURRENT_COUNT);
    let t0 = tsc::now();
    if t0.wrapping_sub(ta) > khz / 50 {
        return 0;
    }
    let window = khz * 2;
    while tsc::now().wrapping_sub(t0) < window {
        core::hint::spin_loop();
    }
    let t1 = tsc::now();
    let c1 = read(CURRENT_COUNT);
    let t2 = tsc::now();
    if t2.wrapping_sub(t1) > khz / 50 {
        return 0;
    }
    let ticks = u64::from(c0.wrapping_sub(c1));
    let tsc_ticks = t1.wrapping_sub(t0).max(1);
    // ticks per second = ticks * TSC Hz / TSC ticks.
    u64::try_from(u128::from(ticks) * u128::from(khz) * 1000 / u128::from(tsc_ticks)).unwrap_or(0)
}

/// Halts until an interrupt (the timer's, armed by the caller) arrives, then returns with
/// interrupts disabled again.
pub fn halt() {
    // SAFETY: `sti; hlt` waits for an interrupt; the only ones unmasked are hv's timer and
    // the spurious vector, whose stubs acknowledge and return. `cli` restores hv's IF=0.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}
