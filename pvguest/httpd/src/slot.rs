//! One connection slot, and how little it is worth keeping when a new connection needs it
//! (the reclaim rule of [`crate::server`]).

use crate::conn::{ConnStats, Connection, Phase};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

/// One connection slot in the socket set: its socket, its connection, and what the
/// deadlines and the reclaim rule need to know.
pub struct Slot {
    /// Its socket in the socket set.
    pub handle: SocketHandle,
    /// The connection on it, once the handshake is done.
    pub conn: Option<Connection>,
    /// Counted into the totals so far.
    pub counted: ConnStats,
    /// When the slot left LISTEN (first seen so).
    pub opened: Option<Instant>,
    /// When the service closed the connection (its FIN queued).
    pub closed: Option<Instant>,
    /// Bytes in the socket's send queue after the last turn.
    pub queued: usize,
    /// When the client last took answer bytes (or owed none).
    pub progress: Instant,
}

impl Slot {
    /// A slot for the socket at `handle`, with no connection yet.
    pub fn new(handle: SocketHandle) -> Self {
        Self {
            handle,
            conn: None,
            counted: ConnStats::default(),
            opened: None,
            closed: None,
            queued: 0,
            progress: Instant::ZERO,
        }
    }

    /// How little the slot is worth keeping when another connection needs it: the lower the
    /// sooner it goes, the oldest first within a rank; None if it is listening, busy, or a
    /// handshake begun this turn.
    ///
    /// 0. done: closed, or closed by the service and waiting for the peer's last segments;
    /// 1. a handshake (half-open: a SYN-ACK on its way, lost, or to a peer that vanished; or
    ///    established and not yet served);
    /// 2. idle (a keep-alive connection between requests, or one that has sent nothing yet),
    ///    idle longest first;
    /// 3. a head arriving, arriving longest first.
    ///
    /// A handshake begun this turn (the slot took a SYN of the frames being read, and the
    /// service has not seen it yet: no [`Slot::opened`]) is never taken: its SYN-ACK has not
    /// gone out, so a reset would refuse the client's connect (`ab` gives up after ten
    /// refusals), and a burst of SYNs beyond the free slots would take and reset one slot
    /// over and over within the turn. The newcomer waits instead (its SYN is dropped and sent
    /// again, see [`crate::server`]).
    pub fn reclaim_rank(&self, state: tcp::State, now: Instant) -> Option<(u8, Instant)> {
        match state {
            tcp::State::Listen => None,
            tcp::State::Closed | tcp::State::TimeWait => Some((0, now)),
            _ if let Some(closed) = self.closed => Some((0, closed)),
            tcp::State::SynReceived | tcp::State::SynSent => self.handshake(),
            // The end of an answer still on its way: busy.
            _ => match self.conn.as_ref().map(Connection::phase) {
                None => self.handshake(),
                Some(Phase::Idle(since)) => Some((2, since)),
                Some(Phase::Head(since)) => Some((3, since)),
                Some(Phase::Busy) => None,
            },
        }
    }

    /// Rank 1 for a handshake the service has seen in an earlier turn; None for one begun
    /// this turn.
    fn handshake(&self) -> Option<(u8, Instant)> {
        self.opened.map(|opened| (1, opened))
    }
}
