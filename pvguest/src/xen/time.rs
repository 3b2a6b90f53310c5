//! Time: the monotonic clock (vCPU 0's pvclock), the wall clock, `VIRQ_TIMER` with
//! `VCPUOP_set_singleshot_timer`, and waiting: sleeps, timeouts and idling.
//!
//! Idling: with interrupts disabled the deadline timer is armed and the wait condition is
//! checked once more, then `sti; hlt`
//! ([`crate::arch::upcall::enable_and_halt`]). Xen turns an HVM `hlt` into `SCHEDOP_block`,
//! which returns at once if an upcall is pending. `SCHEDOP_block` issued as a hypercall with
//! interrupts disabled would not do: Xen's `hvm_local_events_need_delivery` reports nothing to
//! deliver while the guest's IF is clear, and the wake-up for an event that arrived just
//! before would be lost; with interrupts enabled the upcall could run between the check and
//! the hypercall, and the vCPU would sleep until the next event. An emulator that loses the
//! `sti` shadow can still run the upcall just before the `hlt`; the upcall stub then skips
//! the `hlt` (see [`crate::arch::upcall`], counted in [`TimeStats::halts_skipped`]).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use x86_64::instructions::interrupts;

use super::events::{self, EventError};
use super::hypercall::{self, HypercallError};
use super::shared_info::{self, ClockError};
use crate::arch::upcall;
use crate::proto::evtchn::{EvtchnError, Port};
use crate::proto::pvclock::UnixTime;
use xenbus::Instant;

/// The vCPU all of this runs on.
const VCPU: u32 = 0;

/// Errors of timers and waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// The clock cannot be read.
    Clock(ClockError),
    /// Event channels are not up, so nothing can wake an idle vCPU.
    NoEvents,
    /// [`init`] has not bound `VIRQ_TIMER`.
    NoTimer,
    /// Binding `VIRQ_TIMER` failed.
    Bind(HypercallError),
    /// The handler table refused the timer port.
    Handler(EvtchnError),
    /// Arming the timer failed.
    Hypercall(HypercallError),
}

impl core::fmt::Display for TimeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Clock(e) => write!(f, "clock: {e:?}"),
            Self::NoEvents => f.write_str("event channels not initialised"),
            Self::NoTimer => f.write_str("VIRQ_TIMER not bound"),
            Self::Bind(e) => write!(f, "binding VIRQ_TIMER: {e}"),
            Self::Handler(e) => write!(f, "timer port handler: {e:?}"),
            Self::Hypercall(e) => write!(f, "singleshot timer: {e}"),
        }
    }
}

/// The `VIRQ_TIMER` port (0 until bound; bound again after a resume in a new domain).
static TIMER_PORT: AtomicU32 = AtomicU32::new(0);
static TIMER_EVENTS: AtomicU64 = AtomicU64::new(0);
static HALTS: AtomicU64 = AtomicU64::new(0);
static LATE_WAKES: AtomicU64 = AtomicU64::new(0);
/// The deadline (Xen system time, ns) the singleshot timer was last armed for by a wait: for
/// a post-mortem of a silent guest (`xl dump-core`, or hv's gdb stub), to compare with Xen's
/// `NOW()` and the vCPU's timer in `xl debug-keys a`.
static LAST_ARMED_NS: AtomicU64 = AtomicU64::new(0);

/// Counters since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeStats {
    /// `VIRQ_TIMER` events delivered.
    pub timer_events: u64,
    /// Times the vCPU idled (`sti; hlt`).
    pub halts: u64,
    /// Waits whose condition held only at the deadline check: the wake-up came from the
    /// timer, not from the awaited event (a lost notification, or a host too slow to tell).
    pub late_wakes: u64,
    /// Halts skipped because the upcall came between `sti` and `hlt`
    /// ([`upcall::halts_skipped`]: an emulator that drops the `sti` shadow).
    pub halts_skipped: u64,
}

/// The counters.
pub fn stats() -> TimeStats {
    TimeStats {
        timer_events: TIMER_EVENTS.load(Ordering::Relaxed),
        halts: HALTS.load(Ordering::Relaxed),
        late_wakes: LATE_WAKES.load(Ordering::Relaxed),
        halts_skipped: upcall::halts_skipped(),
    }
}

/// The current Xen system time.
pub fn now() -> Result<Instant, ClockError> {
    shared_info::now()
}

/// The current wall-clock time.
pub fn wall_clock() -> Result<UnixTime, ClockError> {
    shared_info::wall_clock()
}

fn from_event(e: EventError) -> TimeError {
    match e {
        EventError::Hypercall(h) => TimeError::Bind(h),
        EventError::Table(t) => TimeError::Handler(t),
        EventError::Wait(w) => w,
        EventError::NoSharedInfo | EventError::NotReady => TimeError::NoEvents,
    }
}

/// Binds `VIRQ_TIMER` on vCPU 0 (after [`events::init`]; again after a resume in a new
/// domain, which has no event channels).
pub fn init() -> Result<Port, TimeError> {
    let port = events::bind_virq(abi::event_channel::VIRQ_TIMER).map_err(from_event)?;
    events::bind(
        port,
        alloc::boxed::Box::new(|_| {
            TIMER_EVENTS.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .map_err(from_event)?;
    TIMER_PORT.store(port.get(), Ordering::Release);
    Ok(port)
}

/// The deadline the last wait armed the singleshot timer for (0 before any wait idled).
pub fn last_armed() -> Instant {
    Instant::from_nanos(LAST_ARMED_NS.load(Ordering::Relaxed))
}

/// The `VIRQ_TIMER` port, once bound.
pub fn timer_port() -> Option<Port> {
    match TIMER_PORT.load(Ordering::Acquire) {
        0 => None,
        raw => Port::try_new(raw).ok(),
    }
}

/// Waits until `done()` holds (returns `true`) or the clock reaches `deadline` (returns
/// `false` after a last check). Idles between checks; the timer wakes it at the deadline.
///
/// `done` runs with interrupts enabled and once more with them disabled.
pub fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> Result<bool, TimeError> {
    if !events::ready() {
        return Err(TimeError::NoEvents);
    }
    if timer_port().is_none() {
        return Err(TimeError::NoTimer);
    }
    loop {
        if done() {
            return Ok(true);
        }
        if now().map_err(TimeError::Clock)? >= deadline {
            let held = done();
            if held {
                LATE_WAKES.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(held);
        }
        interrupts::disable();
        // Re-armed on every round: another wait may have moved the one singleshot timer.
        // Armed with interrupts disabled: armed before `cli`, a timer that fired in between
        // (the deadline passing on a slow or preempted vCPU) would run its upcall there and
        // leave nothing to end the `hlt`, which would then sleep for good. Armed here, its
        // upcall stays pending until `sti; hlt`, which then returns at once.
        if let Err(e) = hypercall::set_singleshot_timer(VCPU, shared_info::to_xen(deadline)) {
            interrupts::enable();
            return Err(TimeError::Hypercall(e));
        }
        LAST_ARMED_NS.store(deadline.as_nanos(), Ordering::Relaxed);
        if done() {
            interrupts::enable();
            return Ok(true);
        }
        HALTS.fetch_add(1, Ordering::Relaxed);
        upcall::enable_and_halt();
    }
}

/// Sleeps until the clock reaches `deadline`; never returns early by the clock.
pub fn sleep_until(deadline: Instant) -> Result<(), TimeError> {
    wait_until(deadline, || false).map(|_| ())
}

/// Sleeps `millis` milliseconds.
pub fn sleep_ms(millis: u64) -> Result<(), TimeError> {
    let start = now().map_err(TimeError::Clock)?;
    sleep_until(start.add_millis(millis))
}

/// A deadline `millis` from now.
pub fn deadline_ms(millis: u64) -> Result<Instant, ClockError> {
    Ok(now()?.add_millis(millis))
}
