//! Xen's pvclock: consistent reads of `vcpu_time_info` and the shared wall clock, and the
//! TSC → nanoseconds scaling of Xen and Linux (`pvclock_scale_delta`).
//!
//! Xen updates a record by making `version` odd, writing the fields, then making it even
//! again. A reader reads the version, the fields, and the version again, and retries when the
//! version was odd or changed. The raw reads go through [`VcpuTimeSource`] and
//! [`WallClockSource`]: the kernel implements them with volatile reads of the shared pages.
#![warn(clippy::arithmetic_side_effects)]

use core::sync::atomic::{Ordering, fence};

/// The fields of one `vcpu_time_info` record, copied out of the shared page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VcpuTimeFields {
    /// TSC value at the moment `system_time` was taken.
    pub tsc_timestamp: u64,
    /// System time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC → ns multiplier, a 32.32 fixed-point fraction applied after `tsc_shift`.
    pub tsc_to_system_mul: u32,
    /// Pre-shift of the TSC delta: left if positive, right if negative.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
}

/// Raw access to one vCPU's `vcpu_time_info` (implemented by the kernel with volatile reads).
pub trait VcpuTimeSource {
    /// Reads `version`.
    fn version(&self) -> u32;
    /// Reads every other field (each a single volatile read; no consistency required here).
    fn fields(&self) -> VcpuTimeFields;
    /// Orders the reads before it before the reads after it (Linux's `virt_rmb`).
    fn read_barrier(&self) {
        fence(Ordering::Acquire);
    }
}

/// The wall-clock fields of `shared_info`, copied out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WallClockFields {
    /// `wc_sec`: low 32 bits of the seconds of the wall time at system time 0.
    pub wc_sec: u32,
    /// `wc_nsec`: nanoseconds part of that wall time.
    pub wc_nsec: u32,
    /// `wc_sec_hi`: high 32 bits of the seconds (x86_64 layout).
    pub wc_sec_hi: u32,
}

/// Raw access to the wall clock in `shared_info` (implemented by the kernel with volatile reads).
pub trait WallClockSource {
    /// Reads `wc_version`.
    fn wc_version(&self) -> u32;
    /// Reads `wc_sec`, `wc_nsec` and `wc_sec_hi`.
    fn wc_fields(&self) -> WallClockFields;
    /// Orders the reads before it before the reads after it (Linux's `rmb`).
    fn read_barrier(&self) {
        fence(Ordering::Acquire);
    }
}

/// Errors of the pvclock readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvclockError {
    /// The record was being updated (odd or changing version) on every one of the allowed
    /// attempts.
    Unstable,
}

/// Default number of read attempts before giving up with [`PvclockError::Unstable`].
pub const DEFAULT_READ_ATTEMPTS: u32 = 1000;

/// A consistent copy of `vcpu_time_info`, good for converting TSC values to system time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSnapshot {
    /// The (even) version the fields were read under.
    pub version: u32,
    /// The fields.
    pub fields: VcpuTimeFields,
}

/// Reads a consistent snapshot of `src`, retrying at most `max_attempts` times.
pub fn read_time_info<S: VcpuTimeSource + ?Sized>(
    src: &S,
    max_attempts: u32,
) -> Result<TimeSnapshot, PvclockError> {
    for _ in 0..max_attempts {
        let before = src.version();
        src.read_barrier();
        if before & 1 != 0 {
            continue;
        }
        let fields = src.fields();
        src.read_barrier();
        if src.version() == before {
            return Ok(TimeSnapshot {
                version: before,
                fields,
            });
        }
    }
    Err(PvclockError::Unstable)
}

/// Scales a TSC delta to nanoseconds as Xen and Linux do: shift by `shift` (left if positive,
/// right if negative; a shift of 64 or more yields 0), then `(delta * mul) >> 32` with the full
/// 96-bit product.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let magnitude = u32::from(shift.unsigned_abs());
    let shifted = if shift >= 0 {
        delta.checked_shl(magnitude).unwrap_or(0)
    } else {
        delta.checked_shr(magnitude).unwrap_or(0)
    };
    // A u64 times a u32 fits in a u128: the multiplication cannot saturate.
    let product = u128::from(shifted).saturating_mul(u128::from(mul));
    // (2^64 - 1) * (2^32 - 1) >> 32 < 2^64: the conversion cannot fail.
    u64::try_from(product >> 32).unwrap_or(u64::MAX)
}

impl TimeSnapshot {
    /// System time in nanoseconds at TSC value `tsc`.
    ///
    /// A `tsc` earlier than the snapshot's timestamp counts as no time elapsed, so the result
    /// never goes below `system_time`; the sum saturates instead of wrapping.
    pub fn system_time_ns(&self, tsc: u64) -> u64 {
        let f = &self.fields;
        let delta = tsc.saturating_sub(f.tsc_timestamp);
        f.system_time
            .saturating_add(scale_delta(delta, f.tsc_to_system_mul, f.tsc_shift))
    }
}

/// The wall time at system time 0, read consistently from `shared_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// Seconds since the Unix epoch (`wc_sec_hi << 32 | wc_sec`).
    pub sec: u64,
    /// Nanoseconds as Xen wrote them (normally below 10^9; [`WallClock::at`] copes if not).
    pub nsec: u32,
}

/// A wall-clock time: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixTime {
    /// Whole seconds.
    pub secs: u64,
    /// Nanoseconds, always below 10^9.
    pub nanos: u32,
}

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Reads a consistent wall clock from `src`, retrying at most `max_attempts` times.
pub fn read_wall_clock<S: WallClockSource + ?Sized>(
    src: &S,
    max_attempts: u32,
) -> Result<WallClock, PvclockError> {
    for _ in 0..max_attempts {
        let before = src.wc_version();
        src.read_barrier();
        if before & 1 != 0 {
            continue;
        }
        let f = src.wc_fields();
        src.read_barrier();
        if src.wc_version() == before {
            let sec = (u64::from(f.wc_sec_hi) << 32) | u64::from(f.wc_sec);
            return Ok(WallClock {
                sec,
                nsec: f.wc_nsec,
            });
        }
    }
    Err(PvclockError::Unstable)
}

impl WallClock {
    /// The wall time at system time `system_time_ns`.
    pub fn at(&self, system_time_ns: u64) -> UnixTime {
        // Both terms are below 2^32 + 10^9: no overflow.
        let total = u64::from(self.nsec).saturating_add(system_time_ns % NANOS_PER_SEC);
        let secs = self
            .sec
            .saturating_add(system_time_ns / NANOS_PER_SEC)
            .saturating_add(total / NANOS_PER_SEC);
        // `total % 10^9` is below 10^9, which fits in u32.
        UnixTime {
            secs,
            nanos: (total % NANOS_PER_SEC) as u32,
        }
    }
}

#[cfg(test)]
mod tests;
