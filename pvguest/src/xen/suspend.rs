//! Suspending the domain for `xl save` / `xl migrate` (`control/shutdown` = `suspend`), and
//! re-establishing the platform afterwards, as Linux's `drivers/xen/manage.c` (`do_suspend`,
//! `xen_hvm_post_suspend`) and Mini-OS's `kernel_suspend` do for an HVM/PVH guest.
//!
//! [`suspend`] flushes the console and issues `SCHEDOP_shutdown(SHUTDOWN_suspend)` with
//! interrupts disabled. The toolstack saves the domain's memory and vCPU state meanwhile.
//! The hypercall returns:
//! - **1, cancelled** (`xl save -c`, or a failed save): the same domain continues; everything
//!   is in place. Only the upcall vector is given to Xen again (as Linux does).
//! - **0, resumed in a new domain** (`xl restore`, the receiving end of `xl migrate`): Xen
//!   carried over the memory and the vCPU, nothing else. Re-established here, in this order:
//!   the shared-info page (its frame is plain memory now, so vCPU 0's `vcpu_info` inside it
//!   too), the clock (it continues from where it stood: [`shared_info::note_suspended`]), the
//!   upcall vector and an empty event-channel table, `VIRQ_TIMER`, the grant-table frames (the
//!   new table is empty: every old grant reads as ended), the console and xenstore rings from
//!   the new HVM parameters (the toolstack cleared both pages, and gave new ports).
//!
//! What belongs to the devices (their rings, grants and ports, the `backend` they talk to) is
//! re-made by their owners afterwards: `netfront`'s and `blkfront`'s `resume`.

use x86_64::instructions::interrupts;

use super::hypercall::{self, HypercallError};
use super::{console, events, grant_table, shared_info, time, xenstore};

/// How a suspend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The suspend was cancelled: the same domain continues (return 1).
    Cancelled,
    /// The domain runs again as a new domain (restored or migrated; return 0).
    Resumed,
}

/// Why the platform could not be suspended or brought back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendError {
    /// Xen refused `SCHEDOP_shutdown(SHUTDOWN_suspend)` (or answered something unknown).
    Refused(HypercallError),
    /// Which part of the platform could not be re-established after the resume.
    Resume(&'static str),
}

impl core::fmt::Display for SuspendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Refused(e) => write!(f, "SCHEDOP_shutdown(SHUTDOWN_suspend): {e}"),
            Self::Resume(what) => write!(f, "after the resume: {what}"),
        }
    }
}

/// Suspends the domain (the caller has quiesced its devices) and brings the platform back
/// when it runs again; see the module docs.
pub fn suspend() -> Result<Outcome, SuspendError> {
    // The console page is cleared on a restore: what is still in the ring would be lost.
    let _ = console::flush();
    let before = time::now().map_err(|_| SuspendError::Resume("no clock before suspending"))?;
    interrupts::disable();
    let answer = hypercall::sched_suspend();
    let outcome = match answer {
        Ok(0) => Outcome::Resumed,
        Ok(1) => Outcome::Cancelled,
        Ok(other) => {
            interrupts::enable();
            return Err(SuspendError::Refused(HypercallError::Xen(other)));
        }
        Err(e) => {
            interrupts::enable();
            return Err(SuspendError::Refused(e));
        }
    };
    let resumed = outcome == Outcome::Resumed;
    let platform = if resumed {
        shared_info::map()
            .map_err(|_| SuspendError::Resume("shared info"))
            .and_then(|()| {
                shared_info::note_suspended(before).map_err(|_| SuspendError::Resume("clock"))
            })
    } else {
        // A cancelled suspend: the domain was paused while it was saved; its clock skips that.
        shared_info::note_suspended(before).map_err(|_| SuspendError::Resume("clock"))
    };
    let platform = platform.and_then(|()| {
        events::resume(!resumed).map_err(|_| SuspendError::Resume("the upcall vector"))
    });
    if let Err(e) = platform {
        interrupts::enable();
        return Err(e);
    }
    if !resumed {
        interrupts::enable();
        return Ok(outcome);
    }
    let timer = time::init();
    interrupts::enable();
    timer.map_err(|_| SuspendError::Resume("VIRQ_TIMER"))?;
    // The console first, so that what follows can be reported.
    if console::init().is_ok() {
        let _ = console::use_events();
    }
    grant_table::resume().map_err(|_| SuspendError::Resume("the grant table"))?;
    xenstore::init().map_err(|_| SuspendError::Resume("xenstore"))?;
    Ok(outcome)
}
