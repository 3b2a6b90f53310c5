//! Heap use returns exactly to its warm-up value: after a warm-up over 16 keep-alive
//! connections, ten times as many requests over the same connections leave the process's
//! heap bytes where the warm-up left them (the issue's `net-load` criterion, on the host).
//!
//! Its own test binary, so that no other test allocates meanwhile.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]
#![allow(clippy::unwrap_used)] // A test: a failed unwrap is a failed test.

// The in-memory Ethernet link of the crate's own tests (one file, two test binaries).
#[path = "../src/tests/link.rs"]
mod link;

use httpd::{Config, Server, Status, StatusOnly};
use link::{Port, carry, interface};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Heap bytes in use, counted around the system allocator.
static IN_USE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to `System` with the caller's own arguments, so `System`'s
// guarantees are this allocator's; the counter only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above with `layout` (the caller's
        // contract), i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Client {
    handle: SocketHandle,
    inbox: Vec<u8>,
    answered: usize,
}

/// Counts complete responses at the front of `inbox` and drops them (bodies are checked by
/// the crate's own tests; here only their number matters).
fn take_responses(inbox: &mut Vec<u8>) -> usize {
    let mut n = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = r.parse(inbox) else {
            return n;
        };
        assert_eq!(r.code, Some(200));
        let length: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        if inbox.len() < len + length {
            return n;
        }
        inbox.drain(..len + length);
        n += 1;
    }
}

#[test]
fn heap_returns_to_its_warm_up_value() {
    let mut server_port = Port::default();
    let mut client_port = Port::default();
    let mut server_iface = interface(2, &mut server_port);
    let mut client_iface = interface(1, &mut client_port);
    let mut server_sockets = SocketSet::new(vec![]);
    let mut client_sockets = SocketSet::new(vec![]);
    let mut server = Server::new(Config::default(), &mut server_sockets);
    let mut clients: Vec<Client> = (0..16u16)
        .map(|i| {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            );
            s.connect(
                client_iface.context(),
                (IpAddress::v4(10, 0, 0, 2), 80),
                41000 + i,
            )
            .unwrap();
            Client {
                handle: client_sockets.add(s),
                inbox: Vec::with_capacity(256 * 1024),
                answered: 0,
            }
        })
        .collect();
    let requests: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET /blob/20000 HTTP/1.1\r\n\r\n",
        b"POST /sink HTTP/1.1\r\nContent-Length: 3000\r\n\r\n",
        b"GET /blob/7 HTTP/1.1\r\n\r\n",
    ];
    let body = vec![7u8; 3000];
    let mut now = Instant::ZERO;
    let mut status = StatusOnly(|| Status {
        uptime_ms: 1,
        heap_bytes_in_use: IN_USE.load(Ordering::Relaxed) as u64,
        grants_in_use: 0,
        driver: vec![("tx_packets", 1)],
        storage: vec![("keys", 0)],
        event_loop: vec![("turns", 0)],
        stack: vec![],
    });

    // Each round: every connection sends one request (round-robin over the four kinds) and
    // waits for its answer; returns after `rounds` rounds with the link idle.
    let mut run = |rounds: usize,
                   clients: &mut Vec<Client>,
                   server: &mut Server,
                   status: &mut dyn httpd::Backend| {
        for round in 0..rounds {
            let mut pending: Vec<bool> = vec![true; clients.len()];
            let mut sent = vec![false; clients.len()];
            for _ in 0..10_000 {
                now += Duration::from_millis(1);
                server.step(
                    now,
                    &mut server_iface,
                    &mut server_port,
                    &mut server_sockets,
                    status,
                );
                carry(&mut server_port, &mut client_port);
                client_iface.poll(now, &mut client_port, &mut client_sockets);
                carry(&mut server_port, &mut client_port);
                for (i, c) in clients.iter_mut().enumerate() {
                    let s = client_sockets.get_mut::<tcp::Socket>(c.handle);
                    if !sent[i] && s.can_send() {
                        let kind = (round + i) % requests.len();
                        s.send_slice(requests[kind]).unwrap();
                        if kind == 2 {
                            s.send_slice(&body).unwrap();
                        }
                        sent[i] = true;
                    }
                    while s.can_recv() {
                        s.recv(|d| {
                            c.inbox.extend_from_slice(d);
                            (d.len(), ())
                        })
                        .unwrap();
                    }
                    let n = take_responses(&mut c.inbox);
                    c.answered += n;
                    if n > 0 {
                        pending[i] = false;
                    }
                }
                if pending.iter().all(|p| !p)
                    && server_port.outbound.is_empty()
                    && client_port.outbound.is_empty()
                {
                    break;
                }
            }
            assert!(pending.iter().all(|p| !p), "round {round} unanswered");
        }
        // Let the last ACKs settle.
        for _ in 0..50 {
            now += Duration::from_millis(1);
            server.step(
                now,
                &mut server_iface,
                &mut server_port,
                &mut server_sockets,
                status,
            );
            carry(&mut server_port, &mut client_port);
            client_iface.poll(now, &mut client_port, &mut client_sockets);
            carry(&mut server_port, &mut client_port);
        }
    };

    // Warm-up: 200 requests.
    run(200 / 16 + 1, &mut clients, &mut server, &mut status);
    let warm = IN_USE.load(Ordering::Relaxed);
    let warm_requests = server.stats().requests;
    // 2,000 more over the same connections.
    run(2000 / 16 + 1, &mut clients, &mut server, &mut status);
    let after = IN_USE.load(Ordering::Relaxed);
    let requests_done = server.stats().requests - warm_requests;
    eprintln!("heap: {warm} bytes after warm-up, {after} after {requests_done} more requests");
    assert!(requests_done >= 2000);
    assert_eq!(server.stats().connections, 16, "the same 16 connections");
    assert_eq!(after, warm, "heap bytes in use moved");
}
