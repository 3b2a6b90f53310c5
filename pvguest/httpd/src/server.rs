//! The connection slots and the event-loop step.
//!
//! # What holds a slot, in smoltcp 0.14
//! smoltcp has no accept queue: a listening socket turns into the connection itself when a SYN
//! arrives, and a SYN that finds no socket in LISTEN is answered with a reset (the client sees
//! "connection refused" and does not retry). So each socket is one slot, and a slot serves
//! nobody new until it is back in LISTEN. What kept slots away from LISTEN for tens of seconds,
//! read in `smoltcp::socket::tcp` 0.14:
//!
//! - **The service never saw the connection.** A client that opens and closes at once sends
//!   its ACK and FIN together: within one `Interface::poll` the socket went SYN-RECEIVED →
//!   ESTABLISHED → CLOSE-WAIT with nothing to read, and the service only gave a socket a
//!   connection once it `may_recv()`, which is false in CLOSE-WAIT with an empty buffer. Nobody
//!   closed it: CLOSE-WAIT has no timer in smoltcp, and it sat there until the socket's
//!   `set_timeout` (60 s, measured from the last segment received: `timed_out` compares
//!   `remote_last_ts + timeout` in every state but LISTEN) aborted it. A burst of a few
//!   hundred such connections filled every slot this way, and every later SYN got a reset
//!   for 60 s; that is the 45-90 s users measured. Now every slot that leaves the handshake
//!   gets a connection at once; one whose peer already finished is closed the same turn
//!   (LAST-ACK, freed by the peer's ACK one round trip later).
//! - **SYN-RECEIVED** (half-open: a SYN, then nothing, a peer that vanished or a SYN flood):
//!   smoltcp resends the SYN-ACK at RTO 1 s, 2 s, 4 s ... and gives up only at the 60 s timeout;
//!   Linux keeps such entries in a SYN queue apart from the accept queue, smoltcp in the slot.
//!   Now dropped after [`Deadlines::handshake`].
//! - **SYN-RECEIVED back to LISTEN**: smoltcp itself turns a half-open socket back to LISTEN
//!   when the peer resets it (a client that gave up before the SYN-ACK came: its stack
//!   answers it with a reset). The slot kept the handshake's start, so the next connection
//!   the socket took met that handshake's deadline in its first turn and was reset before
//!   its SYN-ACK went out: the client saw "connection refused" (`ab` in `cargo xtask bench
//!   --features-only`, "Total of 1 requests completed"). A slot found listening now forgets
//!   the connection it had.
//! - **LAST-ACK, FIN-WAIT-1, FIN-WAIT-2, CLOSING** (the service closed, the peer vanished
//!   without a FIN or an ACK): FIN retransmitted, or nothing at all in FIN-WAIT-2 (no timer
//!   either), until the same 60 s timeout. Linux orphans these (`tcp_fin_timeout`) and the
//!   application gets its descriptor back at once. Now reset after [`Deadlines::close`].
//! - **TIME-WAIT**: smoltcp holds it 10 s (`CLOSE_DELAY`); the service lets such a socket go
//!   and listens again one turn later, once that turn's egress has acknowledged the peer's
//!   FIN (letting go in the same turn lost that ACK: every client that closed after the
//!   service sent its FIN again a second later and met a reset). A later retransmission then
//!   meets a listening socket and gets a reset, which is harmless: both sides were done.
//! - **ESTABLISHED with a client that stops reading**: zero-window probes are answered, so the
//!   60 s timeout never fires and the slot was held for good. Now reset after
//!   [`Deadlines::send`] without progress.
//! - **Keep-alive**: smoltcp sends none unless asked, and the service does not ask: an idle
//!   connection is closed by [`Deadlines::idle`], a vanished one is found by the deadlines
//!   above.
//!
//! smoltcp's own timeout stays (60 s) as a backstop under all of these.
//!
//! # Accepting under pressure
//! [`Server::step`] hands the interface one frame at a time and looks at each first. A SYN
//! that would find no slot in LISTEN (and is not a retransmission for a slot that took it)
//! makes the service reclaim the least useful slot before the SYN is read: a slot the service already closed, else a
//! half-open one (or one established but not served yet), else the connection idle longest,
//! else the one whose head has been arriving longest, even within its deadline; the oldest
//! first in each class, and none younger than [`crate::slot::RECLAIM_GRACE`] but the closed
//! ones ([`Slot::reclaim_rank`]). The reclaimed connection is reset (its peer
//! learns at once) and the slot listens again before the frame is read. A connection
//! receiving a body or being answered is never reclaimed, nor a handshake begun in the same
//! turn (its SYN-ACK has not gone out: a reset would refuse the client's connect, and a burst
//! of SYNs would take and reset one slot over and over); when every slot is one of those, a
//! new SYN is dropped (as a full listen queue drops it: the client sends it again after 1 s,
//! 2 s, ...), not refused. Reclaims are counted in [`ServerStats::reclaimed`], dropped SYNs in
//! [`ServerStats::syns_dropped`].
//!
//! # Free slots wait aside
//! smoltcp walks every socket of the set for each segment that arrives and on every poll, so
//! a pool of a few hundred listening sockets would cost every frame. Only
//! [`SPARE_LISTENERS`] free sockets listen in the set; the others wait outside it with their
//! buffers, and one comes in (listening) when a SYN would find none, before any slot is
//! reclaimed. The set's table is sized for the whole pool once, in [`Server::new`], so
//! moving sockets in and out never allocates.
//!
//! The pool's large slots ([`Pool::large`], its rule 2) listen first: while one is free, only
//! large ones listen (smoltcp gives a SYN to the first listening socket of the set), and the
//! socket brought in for a SYN is a large one if one is aside; so a bulk transfer gets a
//! large window whenever one is free, and the small slots serve the rest.

use crate::backend::Backend;
use crate::conn::{ConnStats, Connection};
use crate::deadline::{Deadlines, Expiry};
use crate::ingress::{self, OneFrame};
use crate::pool::Pool;
use crate::slot::Slot;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Interface, PollResult, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{Socket, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;

/// How the service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The TCP port (80 by default).
    pub port: u16,
    /// The connection slots and their buffers ([`Pool::default`]: 24 of 64 KiB + 64 KiB).
    pub pool: Pool,
    /// The deadlines.
    pub deadlines: Deadlines,
    /// How long a socket may hold back an acknowledgement (smoltcp's delayed ACK), or `None`
    /// to acknowledge in the turn that received the data ([`ACK_DELAY`] by default).
    pub ack_delay: Option<Duration>,
}

/// The sockets' delayed ACK by default ([`Config::ack_delay`]): none. [`Server::step`] reads
/// every frame that arrived before any socket answers, so one acknowledgement a turn already
/// covers all the data of the turn, as Linux acknowledges a GRO packet once; smoltcp's own
/// delay (10 ms) decides by packets, not bytes: a lone packet, however large (a GSO packet
/// of 64 KiB from netback), waited out the timer before it was acknowledged, while the
/// sender, its window full, waited for the acknowledgement.
pub const ACK_DELAY: Option<Duration> = None;

impl Default for Config {
    /// [`Config::for_memory`]`(`[`DEFAULT_BUDGET`]`)`: port 80, 24 slots of 64 KiB + 64 KiB,
    /// the default deadlines.
    ///
    /// [`DEFAULT_BUDGET`]: crate::pool::DEFAULT_BUDGET
    fn default() -> Self {
        Self::for_memory(crate::pool::DEFAULT_BUDGET)
    }
}

impl Config {
    /// Port 80, the pool [`Pool::for_memory`]`(budget)`, the default deadlines.
    pub fn for_memory(budget: usize) -> Self {
        Self {
            port: 80,
            pool: Pool::for_memory(budget),
            deadlines: Deadlines::default(),
            ack_delay: ACK_DELAY,
        }
    }
}

/// The service's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered.
    pub requests: u64,
    /// Answers with a 4xx status.
    pub client_errors: u64,
    /// Request bytes read.
    pub bytes_in: u64,
    /// Response bytes sent.
    pub bytes_out: u64,
    /// Connections closed for idling ([`Deadlines::idle`]).
    pub idle_closed: u64,
    /// Connections closed mid-answer because a file read failed (the client saw a short
    /// body).
    pub aborted: u64,
    /// Heads that did not arrive within [`Deadlines::head`] (answered `408`, closed).
    pub head_timeouts: u64,
    /// Bodies slower than [`Deadlines::body_rate`] (answered `408`, closed).
    pub body_timeouts: u64,
    /// Connections reset because the client took no answer bytes for [`Deadlines::send`].
    pub send_timeouts: u64,
    /// Half-open connections dropped after [`Deadlines::handshake`].
    pub handshake_timeouts: u64,
    /// Closed connections reset because the peer did not finish within [`Deadlines::close`].
    pub close_timeouts: u64,
    /// Requests answered `503`, or answers cut short, because the storage kept them pending
    /// past [`Deadlines::storage`].
    pub storage_timeouts: u64,
    /// Connections reset to free a slot for a new one.
    pub reclaimed: u64,
    /// SYNs dropped because every slot was busy answering or began its handshake in the same
    /// turn (the client sends them again).
    pub syns_dropped: u64,
    /// Slots not listening now (connections open, half-open or closing).
    pub open: u64,
    /// Slots in all.
    pub max: u64,
    /// Each socket's receive, and transmit, buffer in bytes, the large slots' apart.
    pub buffer: u64,
    /// Large slots among them ([`crate::pool::Pool::large`]).
    pub large: u64,
    /// Each large slot's receive, and transmit, buffer in bytes.
    pub large_buffer: u64,
}

impl ServerStats {
    fn add(&mut self, c: ConnStats) {
        self.requests += c.requests;
        self.client_errors += c.client_errors;
        self.bytes_in += c.bytes_in;
        self.bytes_out += c.bytes_out;
        self.aborted += c.aborted;
    }
}

/// Sockets kept listening; the other free ones wait aside, out of the socket set, so that
/// smoltcp's work per frame and per turn follows the connections open, not the pool's size.
pub const SPARE_LISTENERS: usize = 2;

/// The HTTP service: its sockets and connections.
pub struct Server {
    config: Config,
    /// The sockets in the socket set.
    slots: Vec<Slot>,
    /// Free sockets kept out of the set.
    parked: Vec<tcp::Socket<'static>>,
    stats: ServerStats,
    /// The earliest deadline found by the last [`Server::serve`].
    wake: Option<Instant>,
    /// The frame being read, and an answer the device had no room for (kept to be reused).
    frame: Vec<u8>,
    scratch: Vec<u8>,
}

impl Server {
    /// Makes `config.pool.slots` sockets, the pool's large ones with buffers of
    /// `config.pool.large_buffer` bytes, the others of `config.pool.buffer`;
    /// [`SPARE_LISTENERS`] of them listen in `sockets` (large ones first), the others wait
    /// aside (see the module docs).
    pub fn new(config: Config, sockets: &mut SocketSet<'static>) -> Self {
        let count = config.pool.slots.max(1);
        let large = config.pool.large.min(count);
        let mut slots = Vec::with_capacity(count);
        let parked = Vec::with_capacity(count);
        // Every socket enters the set once, so that its table has room for all of them and
        // never grows (nor allocates) while serving; then all are put aside, and the
        // largest come back to listen.
        for i in 0..count {
            let buffer = if i < large {
                config.pool.large_buffer
            } else {
                config.pool.buffer
            };
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; buffer]),
                tcp::SocketBuffer::new(vec![0; buffer]),
            );
            // A backstop: the service's deadlines come first.
            socket.set_timeout(Some(Duration::from_secs(60)));
            socket.set_ack_delay(config.ack_delay);
            slots.push(Slot::new(sockets.add(socket)));
        }
        let mut server = Self {
            config,
            slots,
            parked,
            stats: ServerStats {
                max: count as u64,
                buffer: config.pool.buffer as u64,
                large: large as u64,
                large_buffer: config.pool.large_buffer as u64,
                ..ServerStats::default()
            },
            wake: None,
            frame: Vec::new(),
            scratch: Vec::new(),
        };
        while let Some(slot) = server.slots.pop() {
            if let Socket::Tcp(socket) = sockets.remove(slot.handle) {
                server.park(socket);
            }
        }
        server.balance(sockets);
        server
    }

    /// Whether `socket` is one of the pool's large ones.
    fn is_large(&self, socket: &tcp::Socket<'_>) -> bool {
        socket.recv_capacity() > self.config.pool.buffer
    }

    /// Puts a free (closed) socket aside: a large one at the end, taken back first, the
    /// others at the start (the vector's capacity is the pool's: this never allocates).
    fn park(&mut self, socket: tcp::Socket<'static>) {
        if self.is_large(&socket) {
            self.parked.push(socket);
        } else {
            self.parked.insert(0, socket);
        }
    }

    /// Takes a socket from aside into `sockets`, listening, a large one if one is aside;
    /// false if none is left.
    fn unpark(&mut self, sockets: &mut SocketSet<'static>) -> bool {
        let Some(mut socket) = self.parked.pop() else {
            return false;
        };
        let _ = socket.listen(self.config.port);
        self.slots.push(Slot::new(sockets.add(socket)));
        true
    }

    /// Makes the listening sockets the largest free ones: while a large socket is free,
    /// only large ones listen (smoltcp gives a SYN to the first listening socket of the
    /// set, so a small one beside would take it as often), at most [`SPARE_LISTENERS`] of
    /// them; else [`SPARE_LISTENERS`] small ones. The rest wait aside.
    fn balance(&mut self, sockets: &mut SocketSet<'static>) {
        let large_aside = self.parked.last().is_some_and(|s| self.is_large(s));
        let listening_large = self
            .slots
            .iter()
            .map(|s| sockets.get::<tcp::Socket>(s.handle))
            .filter(|s| s.state() == tcp::State::Listen && self.is_large(s))
            .count();
        let only_large = large_aside || listening_large > 0;
        let mut listening = 0;
        let mut i = self.slots.len();
        // From the end of the set: the large ones listening stay, as many as may.
        let mut keep_large = listening_large.min(SPARE_LISTENERS);
        while i > 0 {
            i -= 1;
            let handle = self.slots[i].handle;
            let socket = sockets.get::<tcp::Socket>(handle);
            if socket.state() != tcp::State::Listen {
                continue;
            }
            let large = self.is_large(socket);
            let stays = if large {
                keep_large > 0
            } else {
                !only_large && listening < SPARE_LISTENERS
            };
            if stays {
                listening += 1;
                keep_large -= usize::from(large);
                continue;
            }
            self.slots.swap_remove(i);
            if let Socket::Tcp(mut socket) = sockets.remove(handle) {
                // LISTEN to CLOSED: nothing is sent.
                socket.abort();
                self.park(socket);
            }
        }
        while listening < SPARE_LISTENERS
            && self
                .parked
                .last()
                .is_some_and(|s| !only_large || self.is_large(s))
            && self.unpark(sockets)
        {
            listening += 1;
        }
    }

    /// Slots ready for a new connection: listening, or aside.
    pub fn free(&self, sockets: &SocketSet<'_>) -> usize {
        self.listening(sockets) + self.parked.len()
    }

    /// Counters (connections still open included).
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sockets listening now (at most [`SPARE_LISTENERS`] after a turn: see [`Server::free`]).
    pub fn listening(&self, sockets: &SocketSet<'_>) -> usize {
        self.slots
            .iter()
            .filter(|s| sockets.get::<tcp::Socket>(s.handle).state() == tcp::State::Listen)
            .count()
    }

    /// One turn of the event loop: the interface takes what arrived, frame by frame; a SYN
    /// that would find no slot listening first has one reclaimed for it (see the module
    /// docs); every connection reads, answers and meets its deadlines; the interface sends.
    /// Returns how long the caller may sleep before the next turn if nothing arrives
    /// (smoltcp's timers and the deadlines). `backend` gives the status page and the storage
    /// routes their data.
    pub fn step<D: Device + ?Sized>(
        &mut self,
        now: Instant,
        iface: &mut Interface,
        device: &mut D,
        sockets: &mut SocketSet<'static>,
        backend: &mut dyn Backend,
    ) -> Option<Duration> {
        iface.poll_maintenance(now);
        let medium = device.capabilities().medium;
        let mut frame = core::mem::take(&mut self.frame);
        let mut scratch = core::mem::take(&mut self.scratch);
        while ingress::take(device, now, &mut frame) {
            if let Some(peer) = ingress::syn_to(&frame, medium, self.config.port)
                && !self.make_room(now, peer, iface, device, sockets)
            {
                // Every slot is busy answering or took its SYN this turn: the SYN is
                // dropped, as a full listen queue drops it, and the client sends it again
                // (after 1 s, 2 s, ...) rather than hearing a reset ("connection refused").
                self.stats.syns_dropped += 1;
                continue;
            }
            let mut one = OneFrame {
                frame: Some(&frame),
                inner: &mut *device,
                scratch: &mut scratch,
            };
            iface.poll_ingress_single(now, &mut one, sockets);
        }
        self.frame = frame;
        self.scratch = scratch;
        self.serve(now, sockets, backend);
        while iface.poll_egress(now, device, sockets) != PollResult::None {}
        let timers = iface.poll_delay(now, sockets);
        let deadline = self.wake.map(|w| w - now.min(w));
        match (timers, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Before a SYN from `peer` is read: unless a slot listens (or the SYN is a retransmission
    /// for a slot that already took it), a closed slot listens again, else the least useful
    /// one is reset (the reset sent at once) and listens. False if no slot can take it (every
    /// one is busy answering or took its SYN this turn).
    fn make_room<D: Device + ?Sized>(
        &mut self,
        now: Instant,
        peer: IpEndpoint,
        iface: &mut Interface,
        device: &mut D,
        sockets: &mut SocketSet<'static>,
    ) -> bool {
        let mut victim: Option<(usize, (u8, Instant))> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            let socket = sockets.get::<tcp::Socket>(slot.handle);
            let state = socket.state();
            if state == tcp::State::Listen || socket.remote_endpoint() == Some(peer) {
                return true;
            }
            if let Some(rank) = slot.reclaim_rank(state, now)
                && victim.is_none_or(|(_, best)| rank < best)
            {
                victim = Some((i, rank));
            }
        }
        if self.unpark(sockets) {
            return true;
        }
        let Some((i, _)) = victim else {
            return false;
        };
        let socket = sockets.get_mut::<tcp::Socket>(self.slots[i].handle);
        if !matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait) {
            self.stats.reclaimed += 1;
            socket.abort();
        }
        // A reset goes out before the socket forgets its peer.
        iface.poll_egress(now, device, sockets);
        self.release(i, sockets);
        true
    }

    /// Settles the slot's connection, and listens again.
    fn release(&mut self, i: usize, sockets: &mut SocketSet<'static>) {
        let slot = &mut self.slots[i];
        if let Some(conn) = slot.conn.take() {
            Self::settle(&mut self.stats, &mut slot.counted, conn.stats());
        }
        slot.counted = ConnStats::default();
        slot.opened = None;
        slot.closed = None;
        slot.queued = 0;
        slot.time_wait_seen = false;
        let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
        if socket.state() != tcp::State::Closed {
            socket.abort();
        }
        let _ = socket.listen(self.config.port);
    }

    /// Services every socket once (without polling the interface): reads, answers, deadlines.
    pub fn serve(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'static>,
        backend: &mut dyn Backend,
    ) {
        let deadlines = self.config.deadlines;
        self.wake = None;
        let mut open = 0;
        for i in 0..self.slots.len() {
            let state = sockets.get::<tcp::Socket>(self.slots[i].handle).state();
            match state {
                // Listening, or listening again: smoltcp turns a half-open socket back to
                // LISTEN when the peer resets it, and the handshake's bookkeeping goes
                // (see the module docs).
                tcp::State::Listen => {
                    if self.slots[i].opened.is_some() {
                        self.release(i, sockets);
                    }
                    continue;
                }
                // TIME-WAIT just now: the peer's FIN that brought it is acknowledged by this
                // turn's egress, which a socket listening again would never send (the peer
                // would send its FIN again and meet a reset instead). Let go next turn.
                tcp::State::TimeWait if !self.slots[i].time_wait_seen => {
                    self.slots[i].time_wait_seen = true;
                    self.wake = Some(now);
                    continue;
                }
                // Done (or reset); TIME-WAIT: both sides are done and every byte, our FIN
                // included, is acknowledged (see the module docs).
                tcp::State::Closed | tcp::State::TimeWait => {
                    self.release(i, sockets);
                    continue;
                }
                _ => {}
            }
            open += 1;
            let snapshot = self.stats;
            let slot = &mut self.slots[i];
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            let opened = *slot.opened.get_or_insert(now);
            if matches!(state, tcp::State::SynReceived | tcp::State::SynSent) {
                let due = opened + deadlines.handshake;
                if now >= due {
                    self.stats.handshake_timeouts += 1;
                    socket.abort();
                } else {
                    self.wake = Some(self.wake.map_or(due, |w| w.min(due)));
                }
                continue;
            }
            if slot.conn.is_none() {
                self.stats.connections += 1;
                slot.conn = Some(Connection::new(now));
                slot.progress = now;
                slot.queued = 0;
            }
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            // A request the storage kept pending is asked again.
            conn.resume(now, backend);
            // Everything the connection takes, both parts where the ring buffer wraps: the
            // acknowledgement this turn sends then opens the whole window again.
            while socket.can_recv() {
                let took = socket.recv(|data| {
                    let n = conn.receive(data, now, backend, &snapshot);
                    (n, n)
                });
                if !matches!(took, Ok(n) if n > 0) {
                    break;
                }
            }
            // The client took answer bytes (or owes none).
            let queued = socket.send_queue();
            let owes_nothing = queued == 0 && !conn.has_output() && slot.closed.is_none();
            if queued < slot.queued || owes_nothing {
                slot.progress = now;
            }
            // Deadlines.
            let sending = conn.has_output() || queued > 0;
            let mut due = conn
                .due(&deadlines)
                .filter(|&(_, kind)| !(sending && kind == Expiry::Idle));
            if sending {
                let send = (slot.progress + deadlines.send, Expiry::Send);
                due = Some(due.map_or(send, |d| if d.0 <= send.0 { d } else { send }));
            }
            if let Some(closed) = slot.closed {
                // Closing: the peer acknowledges the rest and finishes, or is reset.
                let (limit, kind) = if queued > 0 {
                    (slot.progress + deadlines.send, Expiry::Send)
                } else {
                    (slot.progress.max(closed) + deadlines.close, Expiry::Idle)
                };
                due = Some((limit, kind));
            }
            let mut idle_expired = false;
            match due {
                Some((at, kind)) if now >= at => match (kind, slot.closed.is_some()) {
                    (Expiry::Send, _) => {
                        self.stats.send_timeouts += 1;
                        socket.abort();
                    }
                    (_, true) => {
                        self.stats.close_timeouts += 1;
                        socket.abort();
                    }
                    (Expiry::Idle, false) => idle_expired = true,
                    (Expiry::Head, false) => {
                        self.stats.head_timeouts += 1;
                        conn.time_out();
                    }
                    (Expiry::Body, false) => {
                        self.stats.body_timeouts += 1;
                        conn.time_out();
                    }
                    (Expiry::Storage, false) => {
                        self.stats.storage_timeouts += 1;
                        conn.storage_timed_out(backend);
                    }
                },
                Some((at, _)) => self.wake = Some(self.wake.map_or(at, |w| w.min(at))),
                None => {}
            }
            if socket.state() == tcp::State::Closed {
                // Reset just now: the reset goes out with the next egress, the slot listens
                // again next turn.
                let current = conn.stats();
                Self::settle(&mut self.stats, &mut slot.counted, current);
                self.wake = Some(now);
                continue;
            }
            while socket.can_send() && conn.has_output() {
                let Ok(n) = socket.send(|buf| {
                    let n = conn.fill(buf, now, backend);
                    (n, n)
                }) else {
                    break;
                };
                if n == 0 {
                    break;
                }
                // The receive side may have waited for this answer to go out.
                if socket.can_recv() && !conn.has_output() {
                    let _ = socket.recv(|data| (conn.receive(data, now, backend, &snapshot), ()));
                }
            }
            slot.queued = socket.send_queue();
            let peer_done = !socket.may_recv() && !conn.has_output() && !conn.is_waiting();
            if slot.closed.is_none() && (conn.wants_close() || peer_done || idle_expired) {
                if idle_expired && !conn.wants_close() && !peer_done {
                    self.stats.idle_closed += 1;
                }
                socket.close();
                slot.closed = Some(now);
                let due = now + deadlines.close;
                self.wake = Some(self.wake.map_or(due, |w| w.min(due)));
            }
            let current = conn.stats();
            Self::settle(&mut self.stats, &mut slot.counted, current);
        }
        self.stats.open = open;
        self.balance(sockets);
    }

    /// Adds what a connection did since last counted.
    fn settle(stats: &mut ServerStats, counted: &mut ConnStats, current: ConnStats) {
        stats.add(ConnStats {
            requests: current.requests - counted.requests,
            client_errors: current.client_errors - counted.client_errors,
            bytes_in: current.bytes_in - counted.bytes_in,
            bytes_out: current.bytes_out - counted.bytes_out,
            aborted: current.aborted - counted.aborted,
        });
        *counted = current;
    }
}
