//! TSC frequency calibration against the PIT (channel 2, gated through port 0x61), for
//! CPUID leaf 0x40000003 ECX (and later pvclock).

use x86_64::instructions::port::Port;

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms.
const WINDOW_MS: u64 = 10;

/// Measures the TSC frequency in kHz over 10 ms of PIT channel 2; 0 if the PIT never
/// counted down (no PIT).
pub fn calibrate_khz() -> u32 {
    let ticks = (PIT_HZ * WINDOW_MS / 1000) as u16;
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x61 (speaker gate, speaker output off) and 0x42/0x43 (PIT channel 2,
    // which only drives the speaker) belong to no device hv or a guest uses.
    let (start, end) = unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        cmd.write(0xb0); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count)
        ch2.write(ticks as u8);
        ch2.write((ticks >> 8) as u8);
        let start = core::arch::x86_64::_rdtsc();
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
        (start, end)
    };
    u32::try_from(end.wrapping_sub(start) / WINDOW_MS).unwrap_or(u32::MAX)
}

/// The TSC now.
pub fn now() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter (not intercepted, never faults at
    // CPL 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}
