//! The byte transport the xenstore client runs over, and how it waits.

use super::error::TransportError;
use crate::time::Instant;

/// Why [`XsTransport::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Something may have changed (an event arrived, or the wait was spurious): poll again.
    Ready,
    /// The deadline passed.
    TimedOut,
}

/// A bidirectional byte stream to xenstored.
///
/// The kernel implements it with [`super::ring::RingTransport`] over the shared xenstore page
/// and its event channel; tests use a fake daemon.
pub trait XsTransport {
    /// Writes as many bytes of `data` as fit now (possibly 0) and tells the daemon; returns
    /// the count.
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError>;
    /// Reads up to `buf.len()` bytes available now (possibly 0); returns the count.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;
    /// The current time. The client compares it with its deadline on every round, so a daemon
    /// that never stops sending cannot keep a wait alive past its deadline.
    fn now(&mut self) -> Instant;
    /// Blocks until the daemon may have produced or consumed bytes, or until `deadline`.
    ///
    /// Must not lose a wake-up: an event that arrived since the previous call makes this
    /// return [`Wake::Ready`] at once. Spurious [`Wake::Ready`] returns are allowed.
    fn wait(&mut self, deadline: Instant) -> Result<Wake, TransportError>;
    /// Told when request `req_id` of type `type_` got no reply by its deadline, with the
    /// number of received bytes still short of a complete message (`inbox`): a hook for
    /// diagnostics, which does nothing by default.
    fn request_timed_out(&mut self, type_: u32, req_id: u32, inbox: usize) {
        let _ = (type_, req_id, inbox);
    }
}
