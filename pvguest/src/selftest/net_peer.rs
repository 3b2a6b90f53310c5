//! Self-test group `net-peer` (not part of `platform`): a small HTTP client in the guest that
//! fetches `GET /blob/<n>` from another domain's service through whatever joins their vifs
//! (hv's switch, or dom0's bridge on stock Xen): `peer-ip=` names the server, `peer-blob=`
//! the size (default 1 MiB); the address of this guest comes from `ip=` as for `net`. The
//! server may still be booting, so connections are retried until `TIMEOUT_MS`.
//!
//! `TEST net-peer-fetch` passes when the answer is `200` with exactly the generator's bytes
//! (`httpd::blob`), checked as they arrive; `FACT net-peer.bytes <n>` and
//! `FACT net-peer.status <code>` record what came back.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, Ipv4Address};

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::cmdline::option;
use crate::service::{Net, now_ns};

/// The whole fetch's deadline, connection retries included.
const TIMEOUT_MS: u64 = 60_000;
/// Between connection attempts.
const RETRY_MS: u64 = 500;
/// The default size fetched.
const DEFAULT_BLOB: u64 = 1 << 20;
/// The largest head taken.
const MAX_HEAD: usize = 4096;

/// Runs the group.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    crate::kernel::ensure_platform();
    let cmdline = crate::kernel::boot_state().map_or("", |b| b.cmdline());
    let result = fetch(cmdline).map(|(status, bytes)| {
        let _ = rep.fact("net-peer", "status", status);
        let _ = rep.fact("net-peer", "bytes", bytes);
    });
    let _ = rep.record("net-peer-fetch", result);
}

/// Connects, waits for an address, fetches; `(status, body bytes)` if the body was right.
fn fetch(cmdline: &str) -> Result<(u16, u64), String> {
    let peer: Ipv4Address = option(cmdline, "peer-ip")
        .ok_or("no peer-ip= (the harness passes the server's address)")?
        .parse()
        .map_err(|_| "peer-ip= is not an IPv4 address".to_string())?;
    let size = match option(cmdline, "peer-blob") {
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| format!("peer-blob={v} is not a number"))?,
        None => DEFAULT_BLOB,
    };
    let until = now_ns().saturating_add(TIMEOUT_MS * 1_000_000);
    let mut net = Net::connect(cmdline, TIMEOUT_MS)?;
    net.wait_address(until).ok_or("no address")?;
    let mut port = 49152u16;
    let mut last = String::from("never connected");
    while now_ns() < until {
        port = port.wrapping_add(1).max(49152);
        match attempt(&mut net, peer, port, size, until) {
            Ok(done) => return Ok(done),
            Err(Attempt::Refused(why)) => {
                last = why;
                let next = now_ns().saturating_add(RETRY_MS * 1_000_000);
                while now_ns() < next.min(until) {
                    net.turn(next.min(until));
                }
            }
            Err(Attempt::Failed(why)) => return Err(why),
        }
    }
    Err(format!("no answer from {peer} in {TIMEOUT_MS} ms: {last}"))
}

/// How one connection ended without an answer.
enum Attempt {
    /// Not connected (the server may not be up yet): retry.
    Refused(String),
    /// Connected, but the answer was wrong: give up.
    Failed(String),
}

fn attempt(
    net: &mut Net,
    peer: Ipv4Address,
    local_port: u16,
    size: u64,
    until: u64,
) -> Result<(u16, u64), Attempt> {
    let rx = tcp::SocketBuffer::new(vec![0; 64 << 10]);
    let tx = tcp::SocketBuffer::new(vec![0; 4096]);
    let handle = net.sockets.add(tcp::Socket::new(rx, tx));
    let result = (|| {
        let socket = net.sockets.get_mut::<tcp::Socket>(handle);
        socket
            .connect(net.iface.context(), (IpAddress::Ipv4(peer), 80), local_port)
            .map_err(|e| Attempt::Failed(format!("connect: {e:?}")))?;
        let request =
            format!("GET /blob/{size} HTTP/1.1\r\nHost: {peer}\r\nConnection: close\r\n\r\n");
        let mut sent = 0usize;
        let mut head = vec![];
        let mut body: Option<(u16, u64, u64)> = None; // status, length, received
        let mut ever_open = false;
        loop {
            if now_ns() >= until {
                return Err(Attempt::Failed("deadline passed mid-answer".to_string()));
            }
            let socket = net.sockets.get_mut::<tcp::Socket>(handle);
            if socket.may_send() {
                ever_open = true;
                if sent < request.len() {
                    sent += socket
                        .send_slice(&request.as_bytes()[sent..])
                        .map_err(|e| Attempt::Failed(format!("send: {e:?}")))?;
                }
            }
            while socket.can_recv() {
                let mut chunk = [0u8; 2048];
                let n = socket
                    .recv_slice(&mut chunk)
                    .map_err(|e| Attempt::Failed(format!("recv: {e:?}")))?;
                let mut data = &chunk[..n];
                if body.is_none() {
                    head.extend_from_slice(data);
                    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if head.len() > MAX_HEAD {
                            return Err(Attempt::Failed("an answer head over 4 KiB".into()));
                        }
                        continue;
                    };
                    let (status, length) = parse_head(&head[..end]).map_err(Attempt::Failed)?;
                    if status != 200 || length != size {
                        return Err(Attempt::Failed(format!(
                            "status {status}, length {length} for GET /blob/{size}"
                        )));
                    }
                    let rest = head.split_off(end + 4);
                    body = Some((status, length, 0));
                    check_body(&rest, 0).map_err(Attempt::Failed)?;
                    if let Some((_, _, got)) = body.as_mut() {
                        *got = rest.len() as u64;
                    }
                    data = &[];
                }
                if let Some((_, _, got)) = body.as_mut() {
                    check_body(data, *got).map_err(Attempt::Failed)?;
                    *got = got.saturating_add(data.len() as u64);
                }
            }
            if let Some((status, length, got)) = body {
                if got > length {
                    return Err(Attempt::Failed(format!(
                        "{got} bytes of a {length}-byte body"
                    )));
                }
                if got == length {
                    return Ok((status, got));
                }
            }
            if !socket.is_open() {
                let why = format!("connection closed ({:?})", socket.state());
                return Err(if ever_open {
                    Attempt::Failed(why)
                } else {
                    Attempt::Refused(why)
                });
            }
            net.turn(until);
        }
    })();
    let socket = net.sockets.get_mut::<tcp::Socket>(handle);
    socket.abort();
    net.turn(now_ns());
    net.sockets.remove(handle);
    result
}

/// The status and `Content-Length` of an answer's head.
fn parse_head(head: &[u8]) -> Result<(u16, u64), String> {
    let text = core::str::from_utf8(head).map_err(|_| "a head that is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("not a status line: {:?}", text.lines().next()))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .ok_or("no Content-Length")?;
    Ok((status, length))
}

/// Checks `data` against the generator from byte `start`.
fn check_body(data: &[u8], start: u64) -> Result<(), String> {
    for (i, &b) in data.iter().enumerate() {
        let at = start.saturating_add(i as u64);
        if b != httpd::blob::byte(at) {
            return Err(format!(
                "byte {at} is {b:#04x}, the generator's {:#04x}",
                httpd::blob::byte(at)
            ));
        }
    }
    Ok(())
}
