//! A front on the host for QEMU's `hostfwd`: it listens where the clients connect and hands
//! QEMU one connection at a time, so that no burst of clients fills QEMU's listen queue.
//!
//! QEMU's user network listens for a forward with a backlog of 1 (`ss -ltn` shows it) and
//! takes one connection per turn of its loop. When more clients connect at once, the host's
//! kernel completes their handshakes anyway, then finds the accept queue full and drops the
//! clients' next segments (`TcpExtListenOverflows`): the client believes it is connected and
//! its request waits for its retransmissions, 0.2 s, 0.4 s, ... 12.8 s apart. `ab -c 16`
//! then saw a request answered after 29 s (its timeout is 30 s), and `ab -c 128` gave up.
//!
//! The front accepts every client at once (its own listen queue is the kernel's default)
//! and opens the client's connection to QEMU's forward only when QEMU has taken the one
//! before: the listener's line in `/proc/net/tcp` counts the connections waiting in its
//! accept queue (`rx_queue`) until QEMU's `accept` takes them. Bytes are copied both
//! ways; an end that closes is closed on the other side, and one that resets resets the
//! other, so clients see what the guest does.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long a connection to QEMU may wait in its listen queue before the next one is opened
/// anyway (QEMU takes one within a turn of its loop: milliseconds).
const TAKEN_WITHIN: Duration = Duration::from_secs(2);

/// How long opening a connection to QEMU's forward may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Clients served at once (two threads each); more wait in the front's listen queue.
const MAX_CLIENTS: u64 = 1024;

/// How long a client may keep its side open (sending nothing) once the guest ended its own.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Stack of each copying thread (the buffer is on the heap).
const STACK: usize = 64 << 10;

/// How often `/proc/net/tcp` is read while a connection waits to be taken.
const POLL: Duration = Duration::from_millis(1);

/// What the front did, for its closing line.
#[derive(Default)]
pub struct FrontStats {
    /// Clients accepted.
    pub clients: AtomicU64,
    /// Connections QEMU's forward was seen to take.
    pub taken: AtomicU64,
    /// Connections still waiting after [`TAKEN_WITHIN`] (the next was opened anyway).
    pub slow: AtomicU64,
    /// Connections to QEMU's forward that could not be opened (the client was reset).
    pub refused: AtomicU64,
}

/// A running front; it stops accepting when dropped (copies in progress run to their end).
pub struct Front {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// QEMU's forward, where the front connects.
    pub upstream: SocketAddr,
    stats: Arc<FrontStats>,
    stop: Arc<AtomicBool>,
}

impl Front {
    /// Listens on `addr` (port 0: a free one) for QEMU's forward at `upstream`.
    pub fn start(addr: SocketAddr, upstream: SocketAddr) -> Result<Front> {
        let listener = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(FrontStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Mutex::new(()));
        let (st, sp) = (stats.clone(), stop.clone());
        let active = Arc::new(AtomicU64::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else {
                    // Out of descriptors, say: not a busy loop.
                    std::thread::sleep(POLL);
                    continue;
                };
                st.clients.fetch_add(1, Ordering::Relaxed);
                // At most MAX_CLIENTS at once: the next waits in the front's listen queue
                // (a flood costs threads and buffers, not the front).
                while active.load(Ordering::SeqCst) >= MAX_CLIENTS {
                    std::thread::sleep(POLL);
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (st, gate, done) = (st.clone(), gate.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .stack_size(STACK)
                    .spawn(move || {
                        serve(client, upstream, &gate, &st);
                        done.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    // No thread to be had: this client is turned away (a reset), the next
                    // is tried.
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            }
        });
        Ok(Front {
            addr,
            upstream,
            stats,
            stop,
        })
    }

    /// One line of what the front did.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let clients = s.clients.load(Ordering::Relaxed);
        let taken = s.taken.load(Ordering::Relaxed);
        let slow = s.slow.load(Ordering::Relaxed);
        let refused = s.refused.load(Ordering::Relaxed);
        format!(
            "front {} -> QEMU's forward {}: {clients} clients, {taken} taken by QEMU, {slow} \
             waited over {TAKEN_WITHIN:?}, {refused} could not reach it, {} not yet passed on",
            self.addr,
            self.upstream,
            clients.saturating_sub(taken + slow + refused),
        )
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// A free port on the host's loopback (bound and released: QEMU takes it right after).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One client: its connection to QEMU's forward opened in turn, then the copies.
fn serve(client: TcpStream, upstream: SocketAddr, gate: &Mutex<()>, stats: &FrontStats) {
    let up = {
        // A poisoned gate only means another client's thread panicked: go on.
        let _turn = gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) {
            Ok(up) => {
                if wait_taken(upstream.port(), TAKEN_WITHIN) {
                    stats.taken.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.slow.fetch_add(1, Ordering::Relaxed);
                }
                up
            }
            Err(_) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                reset(&client);
                return;
            }
        }
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (Ok(client2), Ok(up2)) = (client.try_clone(), up.try_clone()) else {
        reset(&client);
        reset(&up);
        return;
    };
    let inbound_done = Arc::new(AtomicBool::new(false));
    let done = inbound_done.clone();
    let inbound = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            copy(&client2, &up2);
            done.store(true, Ordering::SeqCst);
        });
    match inbound {
        Ok(inbound) => {
            copy(&up, &client);
            // The guest ended its side: a client that keeps its own open (and sends nothing)
            // would hold this pair for good, so after a grace its side is read no more.
            let until = Instant::now() + HALF_CLOSE_GRACE;
            while !inbound_done.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = client.shutdown(Shutdown::Read);
            let _ = inbound.join();
        }
        Err(_) => {
            reset(&client);
            reset(&up);
        }
    }
}

/// Copies `from` to `to` until `from` ends (then `to` is shut for writing) or fails (then
/// both are reset, which also ends the copy the other way).
fn copy(from: &TcpStream, to: &TcpStream) {
    let (mut reader, mut writer) = (from, to);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if writer.write_all(&buf[..n]).is_err() {
                    reset(from);
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                reset(to);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Resets `s` (a linger of 0, then both directions shut): its peer sees a reset, as it
/// would from the guest.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    let _ = s.shutdown(Shutdown::Both);
}

/// Whether the listener on `listen_port` took (accepted) every connection waiting for it
/// within `within`, looked at no sooner than [`SETTLE`] after the caller's connect (the
/// handshake's last ACK is taken by the kernel on its own time).
fn wait_taken(listen_port: u16, within: Duration) -> bool {
    let start = Instant::now();
    std::thread::sleep(SETTLE);
    loop {
        match accept_queue(listen_port) {
            Some(0) | None => return true,
            Some(_) => {}
        }
        if start.elapsed() >= within {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// How long after a connect the listener's queue is first looked at.
const SETTLE: Duration = Duration::from_micros(500);

/// The connections waiting in the accept queue of the listener on 127.0.0.1:`port`, from
/// `/proc/net/tcp` (its `rx_queue` column, for a listening socket); `None` if it cannot be
/// read or the listener is not there. The kernel lists listening sockets first and makes the
/// file as it is read, so only its first lines are read: the whole file, with thousands of
/// connections in TIME-WAIT after a load, took 10 ms to read.
fn accept_queue(port: u16) -> Option<u32> {
    let mut file = std::fs::File::open("/proc/net/tcp").ok()?;
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            return listen_queue(&text, port).ok().flatten();
        }
        text.push_str(std::str::from_utf8(&buf[..n]).ok()?);
        match listen_queue(&text, port) {
            Ok(found) => return found,
            Err(()) => continue,
        }
    }
}

/// In the first lines of `/proc/net/tcp` (`text`): the accept queue of the listener on
/// 127.0.0.1:`port` (`Ok(Some)`), `Ok(None)` once the listening sockets are past without it,
/// `Err(())` if `text` ends before either is known (read more).
fn listen_queue(text: &str, port: u16) -> Result<Option<u32>, ()> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    for line in complete.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(queues)) = (f.get(1), f.get(3), f.get(4)) else {
            continue;
        };
        if *state != "0A" {
            return Ok(None);
        }
        let Some((ip, p)) = local.split_once(':') else {
            continue;
        };
        if u16::from_str_radix(p, 16) == Ok(port) && matches!(ip, "0100007F" | "00000000") {
            let rx = queues.split_once(':').map(|(_, rx)| rx).unwrap_or_default();
            return Ok(u32::from_str_radix(rx, 16).ok());
        }
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_queue_is_read_from_the_listeners_line() {
        let head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                    retrnsmt   uid  timeout inode\n";
        let listeners = "   0: 0100007F:ACBF 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1750138 1\n\
           1: 0100007F:ACC0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1750139 1\n";
        let conn = "   2: 0100007F:ACBF 0100007F:B920 01 00000000:00000000 00:00000000 00000000     0        0 0 1\n";
        let text = format!("{head}{listeners}{conn}");
        assert_eq!(listen_queue(&text, 0xACBF), Ok(Some(2)));
        assert_eq!(listen_queue(&text, 0xACC0), Ok(Some(0)));
        assert_eq!(listen_queue(&text, 0xB920), Ok(None));
        // Cut before the listening sockets end: read more.
        assert_eq!(listen_queue(&format!("{head}{listeners}"), 0xB920), Err(()));
        assert_eq!(listen_queue(&text[..text.len() - 20], 0xACC1), Err(()));
    }

    /// A listener with a backlog of 1 that accepts only when told: the front opens the
    /// second connection only once the first is accepted, and bytes and ends pass through.
    #[test]
    fn the_front_waits_for_each_connection_to_be_taken() {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up_addr = upstream.local_addr().unwrap();
        let front = Front::start("127.0.0.1:0".parse().unwrap(), up_addr).unwrap();
        let mut a = TcpStream::connect(front.addr).unwrap();
        let mut b = TcpStream::connect(front.addr).unwrap();
        a.write_all(b"a").unwrap();
        b.write_all(b"b").unwrap();
        // The first waits in the queue; the second is not opened while it does.
        std::thread::sleep(Duration::from_millis(300));
        let queued = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let waiting = queued
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1).and_then(|x| x.split_once(':')).map(|(_, p)| p)
                    == Some(&format!("{:04X}", up_addr.port()))
                    && f.get(3) != Some(&"0A")
            })
            .count();
        assert_eq!(waiting, 1, "one connection opened to the slow listener");
        for _ in 0..2 {
            let (mut s, _) = upstream.accept().unwrap();
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).unwrap();
            s.write_all(&[byte[0].to_ascii_uppercase()]).unwrap();
        }
        let mut got = [0u8; 1];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"A");
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"B");
        assert!(front.summary().contains("2 clients, 2 taken by QEMU"));
    }
}
