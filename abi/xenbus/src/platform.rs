//! The small platform traits a driver sees besides pages and grants: a clock and a notifier.
//!
//! The kernel implements them over pvclock and `EVTCHNOP_send`; tests use
//! `testing`'s fakes. Pages are in [`crate::page`], grants in
//! [`crate::grant::GrantAccess`], the xenstore transport in [`crate::xenstore::XsTransport`].

use crate::time::Instant;
use crate::types::{DomId, Port};

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

/// What a front end does with its own event channel: allocate it for the backend, wait on
/// it, close it (`EVTCHNOP_alloc_unbound`, the guest's event wait, `EVTCHNOP_close`).
pub trait EventChannel: Notify {
    /// Allocates an unbound port that domain `remote` may bind to.
    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, NotifyError>;
    /// Waits until `port` fires or `deadline` passes; returns whether it fired. An event that
    /// fired since the previous wait on the port counts (no wake-up is lost); spurious `true`
    /// is allowed.
    fn wait(&mut self, port: Port, deadline: Instant) -> bool;
    /// Closes `port`.
    fn close(&mut self, port: Port);
}

/// What the platform gives a split-device front end: pages, grants and its event channels.
/// One type for every driver (`blkfront`, `netfront`), generic over the platform's
/// implementations of [`crate::PageProvider`], [`crate::grant::GrantAccess`] and
/// [`EventChannel`].
#[derive(Debug)]
pub struct Platform<P, G, E> {
    /// Where ring and data pages come from.
    pub pages: P,
    /// The grant table.
    pub grants: G,
    /// Event channels.
    pub events: E,
}
