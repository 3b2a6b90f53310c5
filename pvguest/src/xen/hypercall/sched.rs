//! `HYPERVISOR_sched_op`: yield, poll, shutdown and suspend.

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

/// `SCHEDOP_shutdown(SHUTDOWN_suspend)`: the domain stops here while the toolstack saves it.
/// Returns Xen's answer once it runs again: 0 in a new domain (restored or migrated), 1 when
/// the toolstack cancelled the suspend and the same domain continues (`xl save -c`); a
/// negative errno if Xen refused.
pub fn sched_suspend() -> Result<i64, HypercallError> {
    let arg = abi::sched::SchedShutdown {
        reason: abi::sched::SHUTDOWN_SUSPEND,
    };
    // SAFETY: `arg` is a live sched_shutdown that Xen only reads; the domain's memory is saved
    // with this frame on the stack, so the call returns into the same state.
    unsafe {
        hypercall2(
            x::HYPERVISOR_SCHED_OP,
            abi::sched::SCHEDOP_SHUTDOWN.into(),
            ptr(&arg),
        )
    }
}
