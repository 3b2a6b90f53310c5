//! The guest's HTTP service (`httpd`) over smoltcp over netfront, against the fake netback,
//! with smoltcp clients on the backend's side: keep-alive load, a download and an upload,
//! and the counters the issue asks for (requests per notification, grants constant).

use super::e2e::{Wire, interface};
use super::*;
use httpd::backend::StatusOnly;
use httpd::{Config as HttpConfig, Server, Status};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant as NetInstant};
use smoltcp::wire::IpAddress;

/// Takes one complete response off the front of `buf`: (status, body).
fn take_response(buf: &mut Vec<u8>) -> Option<(u16, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = r.parse(buf).ok()? else {
        return None;
    };
    let length: usize = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())?;
    if buf.len() < len + length {
        return None;
    }
    let code = r.code?;
    let body = buf[len..len + length].to_vec();
    buf.drain(..len + length);
    Some((code, body))
}

struct Client {
    handle: SocketHandle,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    answered: Vec<(u16, Vec<u8>)>,
}

#[test]
fn the_http_service_over_netfront_under_keep_alive_load() {
    let mut rig = Rig::new();
    let mac = rig.dev.config().mac.0;
    let mut guest = interface(mac, [10, 0, 0, 2], &mut rig.dev);
    let mut guest_sockets = SocketSet::new(vec![]);
    let mut server = Server::new(HttpConfig::default(), &mut guest_sockets);

    let mut wire = Wire::default();
    let mut peer = interface([2, 0, 0, 0, 0, 1], [10, 0, 0, 1], &mut wire);
    let mut peer_sockets = SocketSet::new(vec![]);
    const CONNECTIONS: usize = 16;
    const REQUESTS: usize = 25;
    let mut clients: Vec<Client> = (0..CONNECTIONS)
        .map(|i| {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 256 * 1024]),
                tcp::SocketBuffer::new(vec![0; 256 * 1024]),
            );
            socket
                .connect(
                    peer.context(),
                    (IpAddress::v4(10, 0, 0, 2), 80),
                    50000 + i as u16,
                )
                .unwrap();
            Client {
                handle: peer_sockets.add(socket),
                inbox: Vec::new(),
                outbox: Vec::new(),
                answered: Vec::new(),
            }
        })
        .collect();
    // Every connection asks REQUESTS times: status, small blobs, and one of them downloads
    // 1 MiB and uploads 1 MiB.
    let upload: Vec<u8> = (0..1u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        for r in 0..REQUESTS {
            let request = match (i, r) {
                (0, 0) => "GET /blob/1048576 HTTP/1.1\r\n\r\n".to_string(),
                (0, 1) => format!("POST /sink HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 1 << 20),
                (_, r) if r % 2 == 0 => "GET / HTTP/1.1\r\n\r\n".to_string(),
                (_, r) => format!("GET /blob/{} HTTP/1.1\r\n\r\n", 100 * r),
            };
            c.outbox.extend_from_slice(request.as_bytes());
            if (i, r) == (0, 1) {
                c.outbox.extend_from_slice(&upload);
            }
        }
    }

    let grants = rig.dev.stats().grants_in_use;
    let mut now = NetInstant::ZERO;
    let mut steps = 0;
    while clients.iter().any(|c| c.answered.len() < REQUESTS) && steps < 100_000 {
        steps += 1;
        now += Duration::from_millis(1);
        let stats = rig.dev.stats();
        let mut status = StatusOnly(|| Status {
            uptime_ms: now.total_millis() as u64,
            heap_bytes_in_use: 0,
            grants_in_use: stats.grants_in_use,
            driver: vec![
                ("tx_packets", stats.tx_packets),
                ("rx_packets", stats.rx_packets),
            ],
            storage: vec![],
            event_loop: vec![],
            stack: vec![],
        });
        server.step(
            now,
            &mut guest,
            &mut rig.dev,
            &mut guest_sockets,
            &mut status,
        );
        rig.dev.flush().unwrap();
        rig.backend();
        wire.inbound.extend(rig.back.from_guest.drain(..));
        peer.poll(now, &mut wire, &mut peer_sockets);
        rig.back.to_guest.extend(wire.outbound.drain(..));
        rig.backend();
        for c in &mut clients {
            let socket = peer_sockets.get_mut::<tcp::Socket>(c.handle);
            if socket.can_send() && !c.outbox.is_empty() {
                let n = socket.send_slice(&c.outbox).unwrap();
                c.outbox.drain(..n);
            }
            while socket.can_recv() {
                socket
                    .recv(|data| {
                        c.inbox.extend_from_slice(data);
                        (data.len(), ())
                    })
                    .unwrap();
            }
            while let Some(response) = take_response(&mut c.inbox) {
                c.answered.push(response);
            }
        }
    }
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(
            c.answered.len(),
            REQUESTS,
            "connection {i} after {steps} steps"
        );
        assert!(
            c.answered.iter().all(|(code, _)| *code == 200),
            "connection {i}"
        );
    }
    let download = &clients[0].answered[0].1;
    assert_eq!(download.len(), 1 << 20);
    assert!(
        download
            .iter()
            .enumerate()
            .all(|(i, &b)| b == httpd::blob::byte(i as u64))
    );
    let sink = String::from_utf8(clients[0].answered[1].1.clone()).unwrap();
    assert!(
        sink.ends_with(&format!(",\"length\":{}}}", 1 << 20)),
        "{sink}"
    );
    let status = String::from_utf8(clients[3].answered[0].1.clone()).unwrap();
    assert!(status.contains("\"grants_in_use\":194"), "{status}");

    let stats = rig.dev.stats();
    let http = server.stats();
    eprintln!(
        "http over netfront: {} requests on {CONNECTIONS} connections in {steps} steps; \
         tx {} requests / {} notifications = {:.1}; rx {} requests / {} notifications = {:.1}; \
         {} events received; {} bad responses; grants {}",
        http.requests,
        stats.tx_requests,
        stats.tx_notifications,
        stats.tx_requests_per_notification(),
        stats.rx_requests,
        stats.rx_notifications,
        stats.rx_requests_per_notification(),
        stats.notifications_received,
        stats.bad_responses,
        stats.grants_in_use
    );
    assert_eq!(http.requests, (CONNECTIONS * REQUESTS) as u64);
    assert_eq!(
        (http.client_errors, stats.bad_responses, stats.rx_dropped),
        (0, 0, 0)
    );
    assert_eq!(
        stats.grants_in_use, grants,
        "grants back to their warm-up value"
    );
    assert!(stats.tx_requests_per_notification() > 2.0);
}
