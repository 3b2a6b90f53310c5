//! The whole service over smoltcp: a smoltcp client across an in-memory link.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use super::fake::Fake;
use super::link::{Port, interface};
use crate::{Config, Deadlines, Server};
use sha2::{Digest, Sha256};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, TcpPacket,
};
use std::collections::{HashMap, HashSet};

pub(super) struct Net {
    pub(super) server_port: Port,
    pub(super) client_port: Port,
    pub(super) server_iface: Interface,
    pub(super) client_iface: Interface,
    pub(super) server_sockets: SocketSet<'static>,
    pub(super) client_sockets: SocketSet<'static>,
    pub(super) server: Server,
    pub(super) backend: Fake,
    pub(super) now: Instant,
    pub(super) next_local_port: u16,
    pub(super) received: HashMap<SocketHandle, Vec<u8>>,
    /// Client ports whose peers vanished: every frame to or from them is lost.
    pub(super) vanished: HashSet<u16>,
}

impl Net {
    pub(super) fn new(config: Config) -> Self {
        let mut server_port = Port::default();
        let mut client_port = Port::default();
        let server_iface = interface(2, &mut server_port);
        let client_iface = interface(1, &mut client_port);
        let mut server_sockets = SocketSet::new(vec![]);
        let server = Server::new(config, &mut server_sockets);
        Self {
            server_port,
            client_port,
            server_iface,
            client_iface,
            server_sockets,
            client_sockets: SocketSet::new(vec![]),
            server,
            backend: Fake::default(),
            now: Instant::ZERO,
            next_local_port: 40000,
            received: HashMap::new(),
            vanished: HashSet::new(),
        }
    }

    /// One turn on both sides, `ms` milliseconds later.
    pub(super) fn step(&mut self, ms: u64) {
        self.step_server(ms);
        self.poll_client();
    }

    /// The server's half of a step: `ms` milliseconds later, the server takes what arrived
    /// and answers.
    pub(super) fn step_server(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.server.step(
            self.now,
            &mut self.server_iface,
            &mut self.server_port,
            &mut self.server_sockets,
            &mut self.backend,
        );
        self.carry();
    }

    /// The client's half of a step: the clients take what arrived, send, and read.
    pub(super) fn poll_client(&mut self) {
        self.client_iface
            .poll(self.now, &mut self.client_port, &mut self.client_sockets);
        self.carry();
        for (&handle, buf) in self.received.iter_mut() {
            let socket = self.client_sockets.get_mut::<tcp::Socket>(handle);
            while socket.can_recv() {
                socket
                    .recv(|data| {
                        buf.extend_from_slice(data);
                        (data.len(), ())
                    })
                    .unwrap();
            }
        }
    }

    fn carry(&mut self) {
        let vanished = &self.vanished;
        carry_lossy(&mut self.server_port, &mut self.client_port, |frame| {
            tcp_ports(frame)
                .is_some_and(|(src, dst)| vanished.contains(&src) || vanished.contains(&dst))
        });
    }

    /// Starts connecting (the SYN goes out with the next step); returns the socket and its
    /// local port.
    pub(super) fn start_connect(&mut self, buffer: usize) -> (SocketHandle, u16) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer]),
            tcp::SocketBuffer::new(vec![0; buffer]),
        );
        self.next_local_port += 1;
        socket
            .connect(
                self.client_iface.context(),
                (IpAddress::v4(10, 0, 0, 2), 80),
                self.next_local_port,
            )
            .unwrap();
        let handle = self.client_sockets.add(socket);
        self.received.insert(handle, Vec::new());
        (handle, self.next_local_port)
    }

    /// The client `handle` (local port `port`) vanishes: nothing more from it or to it.
    pub(super) fn vanish(&mut self, handle: SocketHandle, port: u16) {
        self.vanished.insert(port);
        self.client_sockets.remove(handle);
        self.received.remove(&handle);
    }

    pub(super) fn connect(&mut self) -> SocketHandle {
        let (handle, _) = self.start_connect(64 * 1024);
        for _ in 0..100 {
            self.step(1);
            if self.client(handle).state() == tcp::State::Established {
                return handle;
            }
        }
        panic!("no connection: {}", self.client(handle).state());
    }

    pub(super) fn client(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.client_sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Sends `request` and waits for one whole response: (status, head, body).
    pub(super) fn exchange(
        &mut self,
        handle: SocketHandle,
        request: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut sent = 0;
        for _ in 0..100_000 {
            if sent < request.len() && self.client(handle).can_send() {
                sent += self.client(handle).send_slice(&request[sent..]).unwrap();
            }
            self.step(1);
            if let Some(response) = take_response(self.received.get_mut(&handle).unwrap()) {
                return response;
            }
        }
        panic!("no response");
    }

    /// Whether the server closed the connection (the client saw its FIN).
    pub(super) fn closed_by_server(&mut self, handle: SocketHandle) -> bool {
        for _ in 0..50 {
            self.step(1);
            if !self.client(handle).may_recv() {
                return true;
            }
        }
        false
    }
}

/// The TCP ports of a frame (source, destination), if it carries TCP over IPv4.
pub fn tcp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((tcp.src_port(), tcp.dst_port()))
}

/// Moves every frame across the link, both ways, except those `lost` says are lost.
pub fn carry_lossy(a: &mut Port, b: &mut Port, lost: impl Fn(&[u8]) -> bool) {
    b.inbound.extend(a.outbound.drain(..).filter(|f| !lost(f)));
    a.inbound.extend(b.outbound.drain(..).filter(|f| !lost(f)));
}

/// Takes one complete response off the front of `buf`: (status, head, body).
pub(super) fn take_response(buf: &mut Vec<u8>) -> Option<(u16, String, Vec<u8>)> {
    let (code, head, len, length) = super::conn::response_head(buf)?;
    if buf.len() < len + length {
        return None;
    }
    let body = buf[len..len + length].to_vec();
    buf.drain(..len + length);
    Some((code, head, body))
}

#[test]
fn status_blob_and_sink_on_one_keep_alive_connection() {
    let mut net = Net::new(Config::default());
    assert_eq!(net.server.free(&net.server_sockets), 24);
    let c = net.connect();
    let (code, head, body) = net.exchange(c, b"GET / HTTP/1.1\r\nHost: guest\r\n\r\n");
    assert_eq!(code, 200);
    assert!(head.contains("Content-Type: application/json"));
    let json = String::from_utf8(body).unwrap();
    assert!(
        json.starts_with(
            "{\"uptime_ms\":1234,\"heap_bytes_in_use\":5678,\"grants_in_use\":194,\"driver\":{\"tx_packets\":5,\"rx_packets\":7},\"storage\":{\"keys\":0,\"files\":0},\"loop\":{\"turns\":3},\"stack\":{},\"http\":{\"connections\":1,"
        ),
        "{json}"
    );

    let (code, _, body) = net.exchange(c, b"GET /blob/300000 HTTP/1.1\r\n\r\n");
    assert_eq!((code, body.len()), (200, 300_000));
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, &b)| b == crate::blob::byte(i as u64))
    );

    let upload: Vec<u8> = (0..1_000_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let mut request = format!(
        "POST /sink HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        upload.len()
    )
    .into_bytes();
    request.extend_from_slice(&upload);
    let (code, _, body) = net.exchange(c, &request);
    let hex: String = Sha256::digest(&upload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(code, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("{{\"sha256\":\"{hex}\",\"length\":1000000}}")
    );
    assert!(!net.closed_by_server(c), "keep-alive");
    let stats = net.server.stats();
    assert_eq!(
        (stats.connections, stats.requests, stats.client_errors),
        (1, 3, 0)
    );
}

#[test]
fn bad_requests_get_4xx_and_the_service_keeps_serving() {
    let mut net = Net::new(Config::default());
    let cases: [(&[u8], u16, bool); 5] = [
        (b"NONSENSE\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n", 400, true),
        (b"GET /missing HTTP/1.1\r\n\r\n", 404, false),
        (
            b"PUT /sink HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            405,
            false,
        ),
        (
            b"POST /sink HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            413,
            true,
        ),
    ];
    for (request, expected, closes) in cases {
        let c = net.connect();
        let (code, _, _) = net.exchange(c, request);
        assert_eq!(code, expected, "{}", String::from_utf8_lossy(request));
        assert_eq!(net.closed_by_server(c), closes, "{expected}");
        let (code, _, _) = if closes {
            let again = net.connect();
            net.exchange(again, b"GET / HTTP/1.1\r\n\r\n")
        } else {
            net.exchange(c, b"GET / HTTP/1.1\r\n\r\n")
        };
        assert_eq!(code, 200, "served after {expected}");
    }
    // An oversized head.
    let c = net.connect();
    let mut huge = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 10_000));
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(net.exchange(c, &huge).0, 413);
    assert!(net.closed_by_server(c));
}

#[test]
fn twenty_connections_at_once_and_sockets_listen_again() {
    let mut net = Net::new(Config::default());
    for round in 0..3 {
        let clients: Vec<SocketHandle> = (0..20).map(|_| net.connect()).collect();
        for &c in &clients {
            net.client(c)
                .send_slice(b"GET /blob/5000 HTTP/1.1\r\n\r\n")
                .unwrap();
        }
        for &c in &clients {
            let mut response = None;
            for _ in 0..1000 {
                net.step(1);
                response = take_response(net.received.get_mut(&c).unwrap());
                if response.is_some() {
                    break;
                }
            }
            let (code, _, body) = response.expect("answered");
            assert_eq!((code, body.len()), (200, 5000), "round {round}");
        }
        // The clients close first: the server's sockets pass through LAST-ACK, not
        // TIME-WAIT, and listen again.
        for &c in &clients {
            net.client(c).close();
        }
        for _ in 0..100 {
            net.step(10);
        }
        assert_eq!(net.server.free(&net.server_sockets), 24, "round {round}");
        for c in clients {
            net.client_sockets.remove(c);
            net.received.remove(&c);
        }
    }
    assert_eq!(net.server.stats().connections, 60);
}

#[test]
fn idle_connections_are_closed() {
    let mut net = Net::new(Config {
        deadlines: Deadlines {
            idle: Duration::from_secs(5),
            ..Deadlines::default()
        },
        ..Config::default()
    });
    let c = net.connect();
    assert_eq!(net.exchange(c, b"GET / HTTP/1.1\r\n\r\n").0, 200);
    net.step(4000);
    assert!(net.client(c).may_recv(), "not idle long enough yet");
    net.step(1500);
    assert!(net.closed_by_server(c));
    assert_eq!(net.server.stats().idle_closed, 1);
}

#[test]
fn files_and_keys_over_tcp_with_100_continue() {
    let mut net = Net::new(Config::default());
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i ^ (i >> 11)) as u8).collect();
    net.backend
        .files
        .insert("site/index.html".into(), b"<p>hi</p>".to_vec());
    net.backend.files.insert("big.bin".into(), big.clone());
    let c = net.connect();
    let (code, head, body) = net.exchange(c, b"GET /files/site/ HTTP/1.1\r\n\r\n");
    assert_eq!((code, body.as_slice()), (200, &b"<p>hi</p>"[..]));
    assert!(head.contains("Content-Type: text/html; charset=utf-8\r\n"));
    let (code, _, body) = net.exchange(c, b"GET /files/big.bin HTTP/1.1\r\n\r\n");
    assert_eq!(code, 200);
    assert!(body == big, "the file's bytes differ");
    // Read as the socket had room: never more than its buffer at once.
    assert!(net.backend.largest_read <= Config::default().pool.buffer);

    // curl's way with a body over 1 KiB: the head, then the body once told to go on.
    let value = vec![b'v'; 5000];
    let (code, _, _) = net.exchange(
        c,
        b"PUT /kv/big-value HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(code, 100);
    assert!(net.backend.log.iter().all(|l| !l.starts_with("put")));
    let (code, _, body) = net.exchange(c, &value);
    assert_eq!(
        (code, String::from_utf8(body).unwrap().as_str()),
        (200, "{\"key\":\"big-value\",\"length\":5000}")
    );
    let (code, _, body) = net.exchange(c, b"GET /kv/big-value HTTP/1.1\r\n\r\n");
    assert_eq!((code, body), (200, value));
    let (code, _, body) = net.exchange(c, b"GET /kv/ HTTP/1.1\r\n\r\n");
    assert_eq!(
        (code, body.as_slice()),
        (200, &b"{\"keys\":[\"big-value\"]}"[..])
    );
    let (_, _, body) = net.exchange(c, b"GET / HTTP/1.1\r\n\r\n");
    let json = String::from_utf8(body).unwrap();
    assert!(
        json.contains(
            ",\"storage\":{\"keys\":1,\"files\":2},\"loop\":{\"turns\":3},\"stack\":{},\"http\":{"
        ),
        "{json}"
    );
    assert!(!net.closed_by_server(c), "keep-alive");
    assert_eq!(
        net.server.stats().requests,
        6,
        "six answers; 100 Continue is not one"
    );
}

#[test]
fn a_failed_read_closes_the_connection_mid_body() {
    let mut net = Net::new(Config::default());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    net.backend.files.insert("f.bin".into(), data.clone());
    net.backend.fail_read_at = Some(100_000);
    let c = net.connect();
    net.client(c)
        .send_slice(b"GET /files/f.bin HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut closed = false;
    for _ in 0..2000 {
        net.step(1);
        if !net.client(c).may_recv() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the server closed the connection");
    let received = net.received.get_mut(&c).unwrap();
    assert!(take_response(received).is_none(), "a short body");
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8(received[..head_end].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("Content-Length: 300000\r\n"));
    let body = &received[head_end..];
    assert!(body.len() < 100_000 && body == &data[..body.len()]);
    assert_eq!(net.server.stats().aborted, 1);
    // The service goes on.
    net.backend.fail_read_at = None;
    let again = net.connect();
    let (code, _, body) = net.exchange(again, b"GET /files/f.bin HTTP/1.1\r\n\r\n");
    assert_eq!((code, body == data), (200, true));
    let (_, _, status) = net.exchange(again, b"GET / HTTP/1.1\r\n\r\n");
    assert!(
        String::from_utf8(status)
            .unwrap()
            .contains("\"aborted\":1,")
    );
}

#[test]
fn more_server_closed_connections_than_sockets_within_time_wait_are_all_answered() {
    // `Connection: close`: the service closes first, so each of its sockets would sit in
    // TIME-WAIT (10 s in smoltcp) before it could listen again. 60 connections in well under
    // 10 s on 24 sockets must all be answered (an HTTP/1.0 client or busybox's wget does this).
    let mut net = Net::new(Config::default());
    let start = net.now;
    for i in 0..60 {
        let c = net.connect();
        let (code, _, _) = net.exchange(c, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_eq!(code, 200, "connection {i}");
        assert!(net.closed_by_server(c), "connection {i} stays open");
        net.client(c).close();
        net.step(1);
    }
    assert!(
        net.now - start < Duration::from_secs(10),
        "took {}",
        net.now - start
    );
    assert_eq!(net.server.stats().connections, 60);
    assert!(net.server.free(&net.server_sockets) > 0);
}

#[test]
fn body_data_is_acknowledged_in_the_turn_it_arrives() {
    let mut net = Net::new(Config::default());
    let c = net.connect();
    let head = b"POST /sink HTTP/1.1\r\nHost: guest\r\nContent-Length: 100000\r\n\r\n";
    net.client(c).send_slice(head).unwrap();
    for _ in 0..50 {
        net.step(20);
    }
    assert_eq!(net.client(c).send_queue(), 0, "the head was acknowledged");
    // One segment of the body: the client sends it, the server's next turn (no time
    // passing) takes it and must acknowledge it at once, not after a delayed-ACK timer
    // (the client, its window full, would wait as long).
    net.client(c).send_slice(&[7u8; 1400]).unwrap();
    net.poll_client();
    assert_eq!(net.client(c).send_queue(), 1400);
    net.step_server(0);
    net.poll_client();
    assert_eq!(
        net.client(c).send_queue(),
        0,
        "acknowledged in the same turn"
    );
}

/// The receive buffer of the server's socket for the client `handle`.
fn server_buffer_of(net: &mut Net, handle: SocketHandle) -> usize {
    let port = net.client(handle).local_endpoint().unwrap().port;
    net.server_sockets
        .iter()
        .filter_map(|(_, s)| match s {
            smoltcp::socket::Socket::Tcp(t) => Some(t),
            _ => None,
        })
        .find(|t| t.remote_endpoint().is_some_and(|e| e.port == port))
        .map(|t| t.recv_capacity())
        .expect("a server socket for the client")
}

#[test]
fn a_new_connection_takes_a_large_slot_while_one_is_free() {
    let large = 64 * 1024;
    let config = Config {
        pool: crate::Pool {
            slots: 6,
            buffer: 4096,
            large: 2,
            large_buffer: large,
        },
        ..Config::default()
    };
    let mut net = Net::new(config);
    // While a large socket is free, only large ones listen.
    let listening = |net: &Net| {
        let mut caps: Vec<usize> = net
            .server_sockets
            .iter()
            .filter_map(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) if t.state() == tcp::State::Listen => {
                    Some(t.recv_capacity())
                }
                _ => None,
            })
            .collect();
        caps.sort_unstable();
        caps
    };
    assert_eq!(listening(&net), [large, large]);
    let a = net.connect();
    assert_eq!(server_buffer_of(&mut net, a), large);
    assert_eq!(listening(&net), [large]);
    let b = net.connect();
    assert_eq!(server_buffer_of(&mut net, b), large);
    // The large ones are taken: the others listen.
    assert_eq!(listening(&net), [4096, 4096]);
    let c = net.connect();
    assert_eq!(server_buffer_of(&mut net, c), 4096);
    // A large one freed listens again, alone, and the next connection takes it.
    net.client(a).close();
    for _ in 0..100 {
        net.step(10);
    }
    assert_eq!(listening(&net), [large]);
    let d = net.connect();
    assert_eq!(server_buffer_of(&mut net, d), large);
    // Every slot still serves: three more connect (small ones) and the pool is full.
    let more: Vec<SocketHandle> = (0..3).map(|_| net.connect()).collect();
    for &m in &more {
        assert_eq!(server_buffer_of(&mut net, m), 4096);
    }
    assert_eq!(net.server.free(&net.server_sockets), 0);
    let (code, _, body) = net.exchange(d, b"GET /blob/100000 HTTP/1.1\r\n\r\n");
    assert_eq!((code, body.len()), (200, 100_000));
}

#[test]
fn a_handshake_the_peer_reset_leaves_its_slot_fresh_for_the_next() {
    // Two slots, both listening in the set (none aside to trade places with).
    let mut net = Net::new(Config {
        pool: crate::Pool::uniform(2, 16 * 1024),
        ..Config::default()
    });
    // A client whose SYN reaches the service and which is gone when the SYN-ACK comes back:
    // its stack answers with a reset, and smoltcp turns the socket back to LISTEN.
    let (gone, _) = net.start_connect(4096);
    let half_open = |net: &Net| {
        net.server_sockets.iter().any(|(_, s)| {
            matches!(s, smoltcp::socket::Socket::Tcp(t) if t.state() == tcp::State::SynReceived)
        })
    };
    for _ in 0..20 {
        net.poll_client();
        net.step_server(1);
        if half_open(&net) {
            break;
        }
    }
    assert!(half_open(&net));
    net.client_sockets.remove(gone);
    net.received.remove(&gone);
    for _ in 0..10 {
        net.step(1);
    }
    assert_eq!(net.server.stats().handshake_timeouts, 0);
    // Past the handshake deadline of that first SYN, new clients connect (not refused).
    for _ in 0..10 {
        net.step(1000);
    }
    // Both slots at once: the one the reset turned back is among them.
    let both = [net.connect(), net.connect()];
    for c in both {
        let (code, _, _) = net.exchange(c, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(code, 200);
    }
    assert_eq!(net.server.stats().handshake_timeouts, 0);
}
