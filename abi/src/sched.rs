//! Scheduler operations: `xen/sched.h` (`HYPERVISOR_sched_op`).

use core::mem::{align_of, offset_of, size_of};

use crate::xen::Domid;

// ---------------------------------------------------------------------------------------------
// SCHEDOP_* (first argument of HYPERVISOR_sched_op)
// ---------------------------------------------------------------------------------------------

/// Voluntarily yield the CPU; argument NULL.
pub const SCHEDOP_YIELD: u32 = 0;
/// Block this vCPU until an event arrives (re-enabling event delivery atomically); argument NULL.
pub const SCHEDOP_BLOCK: u32 = 1;
/// Halt the whole domain with a reason; argument [`SchedShutdown`].
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// Wait until one of a set of ports is pending, or a timeout; argument [`SchedPoll`].
pub const SCHEDOP_POLL: u32 = 3;
/// Declare a shutdown of another domain; argument [`SchedRemoteShutdown`].
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// Latch a shutdown code reported at the domain's later shutdown; argument [`SchedShutdown`].
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// Set up, poke or destroy a domain watchdog; argument [`SchedWatchdog`].
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// Pin the current vCPU to a physical CPU (hardware domain only); argument [`SchedPinOverride`].
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

// ---------------------------------------------------------------------------------------------
// SHUTDOWN_* (sched_shutdown.reason)
// ---------------------------------------------------------------------------------------------

/// The domain exited normally: clean up and kill.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Clean up, kill, and restart.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Clean up, save suspend info, kill.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// The domain crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Restart because the watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Soft reset: the domain is reset but keeps its memory.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// The largest valid shutdown reason.
pub const SHUTDOWN_MAX: u32 = 5;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// `struct sched_shutdown`: argument of `SCHEDOP_shutdown` and `SCHEDOP_shutdown_code`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*` reason.
    pub reason: u32,
}
const _: () = {
    assert!(size_of::<SchedShutdown>() == 4 && align_of::<SchedShutdown>() == 4);
    assert!(offset_of!(SchedShutdown, reason) == 0);
};

/// `struct sched_poll`: argument of `SCHEDOP_poll`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// Guest handle: address of an array of `evtchn_port_t` (u32) ports.
    pub ports: u64,
    /// Number of ports in the array.
    pub nr_ports: u32,
    /// Absolute system time (ns since boot) to give up at; 0 = no timeout.
    pub timeout: u64,
}
const _: () = {
    assert!(size_of::<SchedPoll>() == 24 && align_of::<SchedPoll>() == 8);
    assert!(offset_of!(SchedPoll, ports) == 0);
    assert!(offset_of!(SchedPoll, nr_ports) == 8);
    assert!(offset_of!(SchedPoll, timeout) == 16);
};

/// `struct sched_remote_shutdown`: argument of `SCHEDOP_remote_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    /// The domain to shut down.
    pub domain_id: Domid,
    /// `SHUTDOWN_*` reason.
    pub reason: u32,
}
const _: () = {
    assert!(size_of::<SchedRemoteShutdown>() == 8 && align_of::<SchedRemoteShutdown>() == 4);
    assert!(offset_of!(SchedRemoteShutdown, domain_id) == 0);
    assert!(offset_of!(SchedRemoteShutdown, reason) == 4);
};

/// `struct sched_watchdog`: argument of `SCHEDOP_watchdog`.
///
/// `id == 0` creates a watchdog (returns its id); `id != 0` with `timeout == 0` destroys it,
/// with `timeout != 0` pokes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedWatchdog {
    /// Watchdog id (0 = create a new one).
    pub id: u32,
    /// Timeout in seconds.
    pub timeout: u32,
}
const _: () = {
    assert!(size_of::<SchedWatchdog>() == 8 && align_of::<SchedWatchdog>() == 4);
    assert!(offset_of!(SchedWatchdog, id) == 0);
    assert!(offset_of!(SchedWatchdog, timeout) == 4);
};

/// `struct sched_pin_override`: argument of `SCHEDOP_pin_override`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPinOverride {
    /// Physical CPU to pin to; negative undoes a previous override.
    pub pcpu: i32,
}
const _: () = {
    assert!(size_of::<SchedPinOverride>() == 4 && align_of::<SchedPinOverride>() == 4);
    assert!(offset_of!(SchedPinOverride, pcpu) == 0);
};
