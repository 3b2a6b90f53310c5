//! The listening sockets and the event-loop step.

use crate::backend::Backend;
use crate::conn::{ConnStats, Connection};
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

/// How the service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The TCP port.
    pub port: u16,
    /// Listening sockets (at least 20).
    pub listeners: usize,
    /// Receive and send buffer of each socket, bytes.
    pub buffer: usize,
    /// An open connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Config {
    /// Port 80, 24 sockets of 16 KiB + 16 KiB, 30 s idle timeout.
    fn default() -> Self {
        Self {
            port: 80,
            listeners: 24,
            buffer: 16 * 1024,
            idle_timeout: Duration::from_secs(30),
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
    /// Connections closed for idling.
    pub idle_closed: u64,
    /// Connections closed mid-answer because a file read failed (the client saw a short
    /// body).
    pub aborted: u64,
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

/// The fewest listening sockets the service runs (a smaller [`Config::listeners`] is raised).
pub const MIN_LISTENERS: usize = 20;

struct Slot {
    handle: SocketHandle,
    conn: Option<Connection>,
    /// Counted into the totals so far.
    counted: ConnStats,
    /// `close` was called for this connection.
    closed: bool,
}

/// The HTTP service: its sockets and connections.
pub struct Server {
    config: Config,
    slots: Vec<Slot>,
    stats: ServerStats,
}

impl Server {
    /// Adds `config.listeners` (at least [`MIN_LISTENERS`]) listening sockets to `sockets`.
    pub fn new(config: Config, sockets: &mut SocketSet<'static>) -> Self {
        let count = config.listeners.max(MIN_LISTENERS);
        let slots = (0..count)
            .map(|_| {
                let mut socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; config.buffer]),
                    tcp::SocketBuffer::new(vec![0; config.buffer]),
                );
                // A peer that vanishes mid-connection frees the socket eventually.
                socket.set_timeout(Some(Duration::from_secs(60)));
                let _ = socket.listen(config.port);
                Slot {
                    handle: sockets.add(socket),
                    conn: None,
                    counted: ConnStats::default(),
                    closed: false,
                }
            })
            .collect();
        Self {
            config,
            slots,
            stats: ServerStats::default(),
        }
    }

    /// Counters (connections still open included).
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Sockets listening now.
    pub fn listening(&self, sockets: &SocketSet<'_>) -> usize {
        self.slots
            .iter()
            .filter(|s| sockets.get::<tcp::Socket>(s.handle).state() == tcp::State::Listen)
            .count()
    }

    /// One turn of the event loop: the interface takes what arrived, every connection reads
    /// and answers, the interface sends. Returns how long the caller may sleep before the
    /// next turn if nothing arrives (smoltcp's timers and the idle timeout). `backend` gives
    /// the status page and the storage routes their data.
    pub fn step<D: Device + ?Sized>(
        &mut self,
        now: Instant,
        iface: &mut Interface,
        device: &mut D,
        sockets: &mut SocketSet<'_>,
        backend: &mut dyn Backend,
    ) -> Option<Duration> {
        iface.poll(now, device, sockets);
        self.serve(now, sockets, backend);
        iface.poll(now, device, sockets);
        let idle = self.config.idle_timeout;
        let timers = iface.poll_delay(now, sockets);
        let next_idle = self
            .slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| (c.last_activity() + idle) - now.min(c.last_activity() + idle))
            .min();
        match (timers, next_idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Services every socket once (without polling the interface).
    pub fn serve(&mut self, now: Instant, sockets: &mut SocketSet<'_>, backend: &mut dyn Backend) {
        let port = self.config.port;
        let idle = self.config.idle_timeout;
        for i in 0..self.slots.len() {
            let snapshot = self.stats;
            let slot = &mut self.slots[i];
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            if socket.state() == tcp::State::Closed {
                if let Some(conn) = slot.conn.take() {
                    Self::settle(&mut self.stats, &mut slot.counted, conn.stats());
                    slot.counted = ConnStats::default();
                }
                slot.closed = false;
                let _ = socket.listen(port);
                continue;
            }
            if socket.state() == tcp::State::TimeWait {
                // Both sides are done and every byte, our FIN included, is acknowledged.
                // smoltcp would keep the socket in TIME-WAIT for 10 s, and with it the slot:
                // a client that makes more than `listeners` server-closed connections in that
                // time (HTTP/1.0, `Connection: close`) would be refused. The slot listens again
                // at once instead (the socket is reset without sending anything); a late
                // retransmitted FIN from the peer meets a listening socket and gets a reset.
                if let Some(conn) = slot.conn.take() {
                    Self::settle(&mut self.stats, &mut slot.counted, conn.stats());
                    slot.counted = ConnStats::default();
                }
                socket.abort();
                slot.closed = false;
                let _ = socket.listen(port);
                continue;
            }
            if slot.conn.is_none() && socket.may_recv() {
                self.stats.connections += 1;
                slot.conn = Some(Connection::new(now));
            }
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            if socket.can_recv() {
                let _ = socket.recv(|data| (conn.receive(data, now, backend, &snapshot), ()));
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
            let peer_done = !socket.may_recv() && !conn.has_output();
            if slot.closed {
                // Closing: smoltcp finishes the handshake (or its timeout does).
            } else if conn.wants_close() || peer_done {
                socket.close();
                slot.closed = true;
            } else if now >= conn.last_activity() + idle {
                self.stats.idle_closed += 1;
                socket.close();
                slot.closed = true;
            }
            let current = conn.stats();
            Self::settle(&mut self.stats, &mut slot.counted, current);
        }
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
