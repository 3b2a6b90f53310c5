//! One connection slot, and how little it is worth keeping when a new connection needs it
//! (the reclaim rule of [`crate::server`]).

use crate::conn::{ConnStats, Connection, Phase};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

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
    /// The socket was seen in TIME-WAIT by a turn (whose egress then acknowledged the
    /// peer's FIN): the next turn may let it go.
    pub time_wait_seen: bool,
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
            time_wait_seen: false,
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
    /// over and over within the turn. Nor is a handshake, an idle connection or a head
    /// younger than [`RECLAIM_GRACE`]: a client that connected a moment ago is sending its
    /// request (a round trip away), and resetting it fails a request that was on its way,
    /// where dropping the newcomer's SYN only delays it (`ab -c 128` against 83 slots gave
    /// up on `Connection reset by peer` when young connections were taken). The newcomer
    /// waits instead (its SYN is dropped and sent again, see [`crate::server`]).
    pub fn reclaim_rank(&self, state: tcp::State, now: Instant) -> Option<(u8, Instant)> {
        let old_enough =
            |rank: u8, since: Instant| (now - since >= RECLAIM_GRACE).then_some((rank, since));
        match state {
            tcp::State::Listen => None,
            tcp::State::Closed | tcp::State::TimeWait => Some((0, now)),
            _ if let Some(closed) = self.closed => Some((0, closed)),
            tcp::State::SynReceived | tcp::State::SynSent => {
                self.opened.and_then(|opened| old_enough(1, opened))
            }
            // The end of an answer still on its way: busy.
            _ => match self.conn.as_ref().map(Connection::phase) {
                None => self.opened.and_then(|opened| old_enough(1, opened)),
                Some(Phase::Idle(since)) => old_enough(2, since),
                Some(Phase::Head(since)) => old_enough(3, since),
                Some(Phase::Busy) => None,
            },
        }
    }
}

/// How old a handshake, an idle connection or a head must be before a new connection may
/// take its slot ([`Slot::reclaim_rank`]): a second, about a client's first SYN
/// retransmission, many round trips even under emulation.
pub const RECLAIM_GRACE: Duration = Duration::from_secs(1);
