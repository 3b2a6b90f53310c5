//! TSC frequency calibration against the PIT (channel 2, gated through port 0x61), for
//! CPUID leaf 0x40000003 ECX (and later pvclock).

use x86_64::instructions::port::Port;

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms.
const WINDOW_MS: u64 = 10;

/// Windows measured; the shortest counts.
const WINDOWS: usize = 5;

/// Measures the TSC frequency in kHz as the fewest TSC ticks of `WINDOWS` windows of
/// 10 ms of PIT channel 2; 0 if the PIT never counted down (no PIT).
///
/// Under emulation the CPU that polls the PIT may be descheduled by the host for tens of
/// milliseconds, so that it sees the PIT's terminal count late: a window can only come out
/// too long, never too short, so the shortest is the truest (one disturbed window of a
/// single-window calibration once gave 10.2 GHz for a 2.6 GHz TSC, and the guests' clocks ran
/// at a quarter of real speed).
pub fn calibrate_khz() -> u32 {
    (0..WINDOWS)
        .map(|_| window_ticks())
        .filter(|&t| t != 0)
        .min()
        .map_or(0, |t| u32::try_from(t / WINDOW_MS).unwrap_or(u32::MAX))
}

/// TSC ticks over one window of [`WINDOW_MS`] of PIT channel 2; 0 if the PIT never counted
/// down or the window's start was disturbed.
fn window_ticks() -> u64 {
    let ticks = (PIT_HZ * WINDOW_MS / 1000) as u16;
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x61 (speaker gate, speaker output off) and 0x42/0x43 (PIT channel 2,
    // which only drives the speaker) belong to no device hv or a guest uses.
    let (start, started, end) = unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        cmd.write(0xb0); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count)
        ch2.write(ticks as u8);
        // The count starts with its high byte: bracket that write, so that a window whose
        // start was disturbed (and so would come out short) can be told apart.
        let start = core::arch::x86_64::_rdtsc();
        ch2.write((ticks >> 8) as u8);
        let started = core::arch::x86_64::_rdtsc();
        let mut done = false;
        for _ in 0..10_000_000u32 {
            if gate.read() & 0x20 != 0 {
                done = true;
                break;
            }
        }
        let end = core::arch::x86_64::_rdtsc();
        gate.write(g);
        if !done {
            return 0;
        }
        (start, started, end)
    };
    let window = end.wrapping_sub(start);
    // The write took over 1 % of the window: not a window to trust.
    if started.wrapping_sub(start).saturating_mul(100) > window {
        return 0;
    }
    window
}

/// The TSC now.
pub fn now() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter (not intercepted, never faults at
    // CPL 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}
