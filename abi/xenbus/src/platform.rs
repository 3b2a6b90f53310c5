//! The small platform traits a driver sees besides pages and grants: a clock and a notifier.
//!
//! The kernel implements them over pvclock and `EVTCHNOP_send`; tests use
//! `testing`'s fakes. Pages are in [`crate::page`], grants in
//! [`crate::grant::GrantAccess`], the xenstore transport in [`crate::xenstore::XsTransport`].

use crate::time::Instant;
use crate::types::Port;

/// The current time, for logic that must keep a deadline.
pub trait Clock {
    /// Now.
    fn now(&self) -> Instant;
}

/// The platform refused to notify a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifyError {
    /// The port.
    pub port: Port,
    /// Xen's (negative) errno.
    pub errno: i32,
}

/// Sends an event on a port (`EVTCHNOP_send`).
pub trait Notify {
    /// Notifies the other end of `port`.
    fn notify(&mut self, port: Port) -> Result<(), NotifyError>;
}
