//! Points in time for protocol logic: Xen system time in nanoseconds, always passed in.

/// A point in Xen system time (nanoseconds since the domain's time base).
///
/// Protocol logic never reads a clock: callers pass `now` or a deadline, so host tests are
/// deterministic. The kernel makes these from pvclock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `nanos` nanoseconds after the time base.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the time base.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// This instant plus `nanos` nanoseconds, saturating at the far future.
    pub const fn add_nanos(self, nanos: u64) -> Self {
        Self(self.0.saturating_add(nanos))
    }

    /// This instant plus `millis` milliseconds, saturating at the far future.
    pub const fn add_millis(self, millis: u64) -> Self {
        self.add_nanos(millis.saturating_mul(1_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(u64::MAX - 5);
        assert_eq!(t.add_nanos(10).as_nanos(), u64::MAX);
        assert_eq!(Instant::from_nanos(1).add_millis(2).as_nanos(), 2_000_001);
        assert!(Instant::from_nanos(1) < Instant::from_nanos(2));
    }
}
