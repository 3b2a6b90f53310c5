//! `HYPERVISOR_sched_op`: yield, poll and shutdown.

use super::*;

/// `SCHEDOP_yield`.
pub fn sched_yield() -> Result<(), HypercallError> {
    // SAFETY: SCHEDOP_yield takes a NULL argument.
    check(unsafe { hypercall2(x::HYPERVISOR_SCHED_OP, abi::sched::SCHEDOP_YIELD.into(), 0) }?)?;
    Ok(())
}

/// `SCHEDOP_poll` on one port: blocks until `port` is pending or system time reaches
/// `deadline`. Returns at once if the port is already pending.
pub fn sched_poll(port: Port, deadline: Instant) -> Result<(), HypercallError> {
    let ports = [port.get()];
    // A deadline of 0 means "no timeout" to Xen: use 1 ns instead (already expired).
    let timeout = deadline.as_nanos().max(1);
    let poll = abi::sched::SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: 1,
        timeout,
    };
    // SAFETY: `poll` and the one-element `ports` array it points to are live for the call;
    // Xen only reads them.
    check(unsafe {
        hypercall2(
            x::HYPERVISOR_SCHED_OP,
            abi::sched::SCHEDOP_POLL.into(),
            ptr(&poll),
        )
    }?)?;
    Ok(())
}

/// Why the domain shuts down (`SHUTDOWN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Clean power-off.
    Poweroff,
    /// Restart.
    Reboot,
    /// The guest crashed.
    Crash,
}

/// `SCHEDOP_shutdown`: returns only if Xen refused.
pub fn sched_shutdown(reason: ShutdownReason) -> HypercallError {
    let reason = match reason {
        ShutdownReason::Poweroff => abi::sched::SHUTDOWN_POWEROFF,
        ShutdownReason::Reboot => abi::sched::SHUTDOWN_REBOOT,
        ShutdownReason::Crash => abi::sched::SHUTDOWN_CRASH,
    };
    let arg = abi::sched::SchedShutdown { reason };
    // SAFETY: `arg` is a live sched_shutdown that Xen only reads.
    match unsafe {
        hypercall2(
            x::HYPERVISOR_SCHED_OP,
            abi::sched::SCHEDOP_SHUTDOWN.into(),
            ptr(&arg),
        )
    } {
        Ok(ret) => HypercallError::Xen(ret),
        Err(e) => e,
    }
}
