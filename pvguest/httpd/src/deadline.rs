//! The service's deadlines, and which one a connection meets next.
//!
//! Every deadline is measured from something the client cannot push back by trickling bytes:
//!
//! | deadline | measured from | on expiry | default, and why |
//! |---|---|---|---|
//! | [`Deadlines::handshake`] | the SYN (the slot leaves LISTEN) | reset, slot listens again | 5 s: the SYN-ACK goes out again after 1 s and 3 s (smoltcp's RTO starts at 1 s and doubles), so a lost SYN-ACK or ACK still completes twice over |
//! | [`Deadlines::idle`] | the last byte either way, with nothing in progress | FIN | 30 s, as before |
//! | [`Deadlines::head`] | the request head's **first** byte | `408`, FIN | 10 s: a head is at most 8 KiB and every real client writes it at once, so it arrives within a round trip, or a few retransmissions (7 s with three); nginx's `client_header_timeout` is 60 s, but here a slot is one of a few dozen, so a client trickling a head byte by byte holds it 10 s at most (and less under pressure, see [`crate::server`]) |
//! | [`Deadlines::body_grace`] + received / [`Deadlines::body_rate`] | the body's first byte | `408`, FIN | 20 s + 1 s per 500 bytes: Apache's `mod_reqtimeout` (`body=20,MinRate=500`) |
//! | [`Deadlines::send`] | the last time the client took answer bytes (the socket's send queue shrank) | reset | 20 s: a client reading at all acknowledges within round trips; one whose window stays shut this long has stopped reading |
//! | [`Deadlines::storage`] | the first time the storage answered [`crate::BackendError::Pending`] for the request (or for the file bytes being sent) | `503` (keep-alive kept), or an answer already under way cut short and closed | 10 s: a disk answers within milliseconds, or a few seconds under a burst of flushes; one that has not answered in 10 s has stalled (its backend hangs), and its clients hear so instead of waiting for their own timeouts |
//! | [`Deadlines::close`] | the service's FIN, or the last answer byte acknowledged after it | reset, slot listens again | 5 s: the peer acknowledges the FIN within a round trip (retransmitted after 1 s and 3 s); smoltcp alone would wait 60 s in LAST-ACK or FIN-WAIT for a peer that vanished |
//!
//! A harness sets them short through [`crate::Config::deadlines`].

use smoltcp::time::{Duration, Instant};

/// The deadlines (the module docs give their defaults and reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// A half-open connection (SYN received, no ACK) is dropped after this long.
    pub handshake: Duration,
    /// An open connection with nothing in progress is closed after this long.
    pub idle: Duration,
    /// A request head must be complete this long after its first byte.
    pub head: Duration,
    /// A body has this long, plus one second per [`Deadlines::body_rate`] bytes received.
    pub body_grace: Duration,
    /// The body rate every body must keep on average after [`Deadlines::body_grace`], bytes
    /// per second (at least 1).
    pub body_rate: u64,
    /// A client that takes no answer bytes for this long is dropped.
    pub send: Duration,
    /// After the service closed, the peer has this long to finish (acknowledge the last
    /// bytes and the FIN, send its own FIN).
    pub close: Duration,
    /// A request (or a file's next bytes) waits this long at most for the storage.
    pub storage: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(5),
            idle: Duration::from_secs(30),
            head: Duration::from_secs(10),
            body_grace: Duration::from_secs(20),
            body_rate: 500,
            send: Duration::from_secs(20),
            close: Duration::from_secs(5),
            storage: Duration::from_secs(10),
        }
    }
}

impl Deadlines {
    /// When a body that began at `start` and has `received` bytes so far must have
    /// arrived.
    pub fn body_due(&self, start: Instant, received: u64) -> Instant {
        let rate = self.body_rate.max(1);
        // At most `MAX_BODY` bytes arrive, so the sum stays far from overflowing.
        let received = received.min(crate::MAX_BODY);
        let allowance = Duration::from_millis(received * 1000 / rate);
        start + self.body_grace + allowance
    }
}

/// Which deadline a connection meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing in progress for [`Deadlines::idle`].
    Idle,
    /// The head did not complete within [`Deadlines::head`].
    Head,
    /// The body fell below the minimum rate.
    Body,
    /// The client took no answer bytes for [`Deadlines::send`].
    Send,
    /// The storage did not answer within [`Deadlines::storage`].
    Storage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_earns_time_by_the_byte() {
        let d = Deadlines::default();
        let start = Instant::from_secs(100);
        assert_eq!(d.body_due(start, 0), Instant::from_secs(120));
        assert_eq!(d.body_due(start, 5000), Instant::from_secs(130));
        assert_eq!(d.body_due(start, 250), Instant::from_millis(120_500));
        let zero = Deadlines { body_rate: 0, ..d };
        assert_eq!(zero.body_due(start, 1), Instant::from_millis(121_000));
        assert!(d.body_due(start, u64::MAX) > start);
    }
}
