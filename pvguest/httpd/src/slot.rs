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
    /// sooner it goes (see the module docs); None if it is listening or busy.
    pub fn reclaim_rank(&self, state: tcp::State, now: Instant) -> Option<(u8, Instant)> {
        match state {
            tcp::State::Listen => None,
            tcp::State::Closed | tcp::State::TimeWait => Some((0, now)),
            _ if let Some(closed) = self.closed => Some((0, closed)),
            tcp::State::SynReceived | tcp::State::SynSent => Some((1, self.opened.unwrap_or(now))),
            // The end of an answer still on its way: busy.
            _ => match self.conn.as_ref().map(Connection::phase) {
                None => Some((1, self.opened.unwrap_or(now))),
                Some(Phase::Idle(since)) => Some((2, since)),
                Some(Phase::Head(since)) => Some((3, since)),
                Some(Phase::Busy) => None,
            },
        }
    }
}
