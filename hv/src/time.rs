//! Time arithmetic: Xen's TSC-to-nanosecond scale (`set_time_scale`, `scale_delta`), the
//! `vcpu_time_info` the guest reads with Xen's version protocol, and the singleshot timer
//! of a vCPU (`set_timer_op`, `VCPUOP_set_singleshot_timer`), which never fires early.
//!
//! Time is passed in: "now" is a TSC value read by the kernel.

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// A TSC-to-ns scale as Xen's `struct time_scale`: `ns = ((tsc << shift) * mul_frac) >> 32`
/// (a negative shift shifts right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    /// `tsc_to_system_mul`.
    pub mul_frac: u32,
    /// `tsc_shift`.
    pub shift: i8,
}

impl TimeScale {
    /// Xen's `set_time_scale` for a counter of `ticks_per_sec` Hz: the counter is shifted
    /// into (1e9, 2e9] ticks per second, and `mul_frac` = 1e9 / that, as a 0.32 fraction.
    /// `None` for 0 Hz (Xen asserts it never is).
    pub fn new(ticks_per_sec: u64) -> Option<Self> {
        if ticks_per_sec == 0 {
            return None;
        }
        let mut tps = ticks_per_sec;
        let mut shift: i8 = 0;
        while tps > 2 * NS_PER_SEC {
            tps >>= 1;
            shift -= 1;
        }
        while tps <= NS_PER_SEC {
            tps <<= 1;
            shift += 1;
        }
        // div_frac(1e9, tps): (1e9 << 32) / tps, below 2^32 since 1e9 < tps.
        let mul_frac = u32::try_from((NS_PER_SEC << 32) / tps).ok()?;
        Some(Self { mul_frac, shift })
    }

    /// Xen's `scale_delta`: `delta` ticks in ns (128-bit product, no overflow).
    pub fn scale(&self, delta: u64) -> u64 {
        let d = if self.shift < 0 {
            delta >> self.shift.unsigned_abs()
        } else {
            delta << self.shift
        };
        // mul_frac < 2^32, so the product shifted by 32 is below d: it fits u64.
        #[allow(clippy::cast_possible_truncation, reason = "below d, a u64")]
        let scaled = ((u128::from(d) * u128::from(self.mul_frac)) >> 32) as u64;
        scaled
    }

    /// The fewest ticks whose [`Self::scale`] reaches `ns` (saturating at `u64::MAX`):
    /// waiting this long from a stamp never ends early.
    pub fn ticks_for(&self, ns: u64) -> u64 {
        if ns == 0 {
            return 0;
        }
        // Approximate with the inverse, then correct by stepping (scale is monotonic).
        let mut lo: u64 = 0;
        let mut hi: u64 = u64::MAX;
        if self.scale(hi) < ns {
            return u64::MAX;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.scale(mid) >= ns {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }
}

/// hv's system clock: ns since `boot_tsc`, at the scale of the calibrated TSC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// The TSC when system time was 0.
    pub boot_tsc: u64,
    /// The TSC's scale.
    pub scale: TimeScale,
}

impl Clock {
    /// System time (ns) at TSC value `tsc` (0 before boot).
    pub fn ns(&self, tsc: u64) -> u64 {
        self.scale.scale(tsc.saturating_sub(self.boot_tsc))
    }

    /// The `vcpu_time_info` fields stamped at `tsc` (version left to [`version_update`]).
    pub fn time_info(&self, tsc: u64) -> abi::xen::VcpuTimeInfo {
        abi::xen::VcpuTimeInfo {
            tsc_timestamp: tsc,
            system_time: self.ns(tsc),
            tsc_to_system_mul: self.scale.mul_frac,
            tsc_shift: self.scale.shift,
            ..Default::default()
        }
    }
}

/// Xen's `vcpu_time_info` version protocol (`version_update_begin`/`_end`): the version
/// the update starts with (odd, from whatever the guest left there) and the one it ends
/// with (even). The kernel stores the first, then the fields, then the second, with write
/// barriers between.
pub fn version_update(old: u32) -> (u32, u32) {
    let odd = old.wrapping_add(1) | 1;
    (odd, odd.wrapping_add(1))
}

/// A vCPU's singleshot timer: one deadline in system time (ns), or none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Singleshot {
    deadline: Option<u64>,
}

/// Xen's answer to a huge or negative `set_timer_op` timeout: an event in 100 ms.
pub const HUGE_TIMEOUT_NS: u64 = 100_000_000;

/// `-ETIME` (62).
pub const ETIME: i64 = -62;

impl Singleshot {
    /// The deadline, if armed.
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// `set_timer_op(timeout)` at system time `now`: 0 stops the timer; a negative timeout
    /// or one more than 2^50 ns ahead fires in 100 ms (Xen's Linux workaround); otherwise
    /// the timer is set to `timeout` (a past timeout fires at once).
    pub fn set_timer_op(&mut self, timeout: u64, now: u64) {
        let t = timeout.cast_signed();
        if timeout == 0 {
            self.deadline = None;
        } else if t < 0
            || (t.wrapping_sub(now.cast_signed()) > 0
                && (t.wrapping_sub(now.cast_signed()) >> 50) != 0)
        {
            self.deadline = Some(now.saturating_add(HUGE_TIMEOUT_NS));
        } else {
            self.deadline = Some(timeout);
        }
    }

    /// `VCPUOP_set_singleshot_timer(timeout_abs_ns, flags)` at `now`: with
    /// `VCPU_SSHOTTMR_future` a past timeout answers `-ETIME` and leaves the timer alone.
    pub fn set_singleshot(&mut self, timeout: u64, flags: u32, now: u64) -> Result<(), i64> {
        if flags & abi::vcpu::VCPU_SSHOTTMR_FUTURE != 0 && timeout < now {
            return Err(ETIME);
        }
        self.deadline = Some(timeout);
        Ok(())
    }

    /// `VCPUOP_stop_singleshot_timer`.
    pub fn stop(&mut self) {
        self.deadline = None;
    }

    /// Whether the timer fires at `now`: true once (it disarms), never before its deadline.
    pub fn expire(&mut self, now: u64) -> bool {
        match self.deadline {
            Some(d) if now >= d => {
                self.deadline = None;
                true
            }
            _ => false,
        }
    }
}

/// A vCPU's runstate accounting (`VCPUOP_get_runstate_info`): it is running except while
/// it waits (blocked); time in ns of system time since the domain was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runstate {
    /// When the vCPU last entered the running state (the end of its last wait).
    pub entry_ns: u64,
    /// Time spent blocked so far.
    pub blocked_ns: u64,
}

impl Runstate {
    /// Records a wait from `start` to `end`.
    pub fn blocked(&mut self, start: u64, end: u64) {
        self.blocked_ns = self.blocked_ns.saturating_add(end.saturating_sub(start));
        self.entry_ns = self.entry_ns.max(end);
    }

    /// `struct vcpu_runstate_info` at `now`, as Xen's `vcpu_runstate_get` fills it for the
    /// running vCPU: state running, time in each state (running, runnable, blocked,
    /// offline) up to `now`.
    pub fn info(&self, now: u64) -> abi::vcpu::VcpuRunstateInfo {
        abi::vcpu::VcpuRunstateInfo {
            state: abi::vcpu::RUNSTATE_RUNNING,
            state_entry_time: self.entry_ns,
            time: [now.saturating_sub(self.blocked_ns), 0, self.blocked_ns, 0],
        }
    }
}

/// The Unix time of a CMOS RTC reading (Gregorian, UTC), or `None` if a field is out of
/// range. `year` is the full year.
pub fn unix_time(year: u32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> Option<u64> {
    if !(1970..=2199).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    u64::try_from(secs).ok()
}

/// A BCD byte as binary (`None` if not BCD).
pub fn from_bcd(b: u8) -> Option<u32> {
    let (hi, lo) = (b >> 4, b & 0xf);
    (hi < 10 && lo < 10).then_some(u32::from(hi) * 10 + u32::from(lo))
}

#[cfg(test)]
mod tests;
