//! A clock that moves only when the test says so.

use crate::platform::Clock;
use crate::time::Instant;
use std::cell::Cell;

/// Simulated time, shared by reference with the code under test.
#[derive(Debug, Default)]
pub struct FakeClock {
    now: Cell<Instant>,
}

impl FakeClock {
    /// A clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `nanos`.
    pub fn advance(&self, nanos: u64) {
        self.now.set(self.now.get().add_nanos(nanos));
    }

    /// Sets the time (never backwards: an earlier instant is ignored).
    pub fn set(&self, at: Instant) {
        self.now.set(self.now.get().max(at));
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
}

impl Clock for &FakeClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
}
