//! The host's clients of the guest's HTTP service on hv (`HOST hv-net-*`), through QEMU's
//! `hostfwd` into hv's switch: the same checks dom0's clients make on stock Xen
//! (`xtask/dom0/net-checks.sh`, judged by the same verdicts in [`crate::xen::blk`]), written in
//! Rust over [`crate::http`] because here the client is the host.
//!
//! Each check returns the result line in `net-checks.sh`'s words, so the stock-Xen verdicts
//! judge both platforms alike; the rates are printed beside them, never judged.
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::http::{self, Conn};
use crate::xen::blk::{
    NET_HEAD_RANGE_ETAG_EXPECTED, NET_KV_EXPECTED, files_verdict, harness_pattern, hex,
    load_verdict, timed_verdict,
};

/// Bytes of the download and upload checks.
pub const BULK_BYTES: usize = 16 << 20;
/// Connections of the load check.
pub const LOAD_CONNECTIONS: u64 = 16;
/// Requests of the load check's warm-up.
const WARM_UP: u64 = 200;
/// How long the load check waits after closing its connections before it reads the service's
/// figures.
const SETTLE: Duration = Duration::from_secs(1);
/// How long one connection of the churn burst may take to open.
const CHURN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client's deadline for each read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One check's verdict and what it measured.
pub struct Outcome {
    /// `net-<name>` (hv's harness prints it as `HOST hv-net-<name>`).
    pub name: &'static str,
    /// The verdict.
    pub verdict: Result<(), String>,
    /// A line of figures for the log (rates), if any.
    pub figures: Option<String>,
}

fn outcome(name: &'static str, verdict: Result<(), String>) -> Outcome {
    Outcome {
        name,
        verdict,
        figures: None,
    }
}

/// A field of the status document (`GET /`), as a number.
fn status_field(json: &str, name: &str) -> Option<u64> {
    let at = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `GET /` on a fresh connection.
fn status(addr: &str) -> Result<String> {
    let r = http::once(addr, "GET", "/", None)?;
    if r.status != 200 {
        anyhow::bail!("GET / answered {}", r.status);
    }
    Ok(r.text())
}

/// `net-stack`: the boot stack's high-water mark (`GET /`'s `stack`) after every other check,
/// at most [`STACK_LIMIT_PERCENT`](crate::xen::blk::STACK_LIMIT_PERCENT) of its size.
pub fn stack(addr: &str) -> Outcome {
    let line = status(addr).map(|doc| {
        [
            "size",
            "peak",
            "serve_peak",
            "serve_base",
            "rsp0_size",
            "rsp0_peak",
        ]
        .iter()
        .map(|k| {
            let v = status_field(&doc, k).map_or("-".to_owned(), |n| n.to_string());
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
    });
    match line {
        Ok(line) => Outcome {
            name: "net-stack",
            verdict: crate::xen::blk::stack_line_verdict(&line),
            figures: Some(line),
        },
        Err(e) => outcome("net-stack", Err(format!("GET /: {e:#}"))),
    }
}

/// `net-files`: every archive file by `GET /files/<path>` with its source's digest, the
/// `Content-Type` of `index.html`, 404 for a missing file.
pub fn files(addr: &str, files: &[(String, String)]) -> Outcome {
    let line = (|| -> Result<String> {
        let mut conn = Conn::connect(addr, IO_TIMEOUT)?;
        let mut ok = 0;
        let mut bad = Vec::new();
        for (path, digest) in files {
            let r = conn.request("GET", &format!("/files/{path}"), None)?;
            if r.status == 200 && hex(&Sha256::digest(&r.body)) == *digest {
                ok += 1;
            } else {
                bad.push(path.clone());
            }
        }
        let index = conn.request("GET", "/files/index.html", None)?;
        let missing = conn.request("GET", "/files/no/such/file", None)?;
        Ok(format!(
            "files={} ok={ok} missing={} bad={}; type={}",
            files.len(),
            missing.status,
            bad.join(" "),
            index.header("content-type").unwrap_or("")
        ))
    })();
    outcome(
        "net-files",
        line.map_err(|e| format!("{e:#}"))
            .and_then(|l| files_verdict(&l, files.len())),
    )
}

/// The letters `net-checks.sh` writes for a value of `n` bytes.
fn letters(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 26) % 26])
        .collect()
}

/// `net-kv`: `net-checks.sh kv`'s sequence, one connection per request as its `nc` does.
pub fn kv(addr: &str) -> Outcome {
    let line = (|| -> Result<String> {
        let req = |method: &str, path: &str, body: Option<&[u8]>| -> Result<http::Response> {
            http::once(addr, method, path, body)
        };
        let put = req("PUT", "/kv/alpha", Some(b"one"))?.status;
        let get = req("GET", "/kv/alpha", None)?.text();
        let put2 = req("PUT", "/kv/alpha", Some(b"two"))?.status;
        let get2 = req("GET", "/kv/alpha", None)?.text();
        let big_value = letters(16384);
        let big = req("PUT", "/kv/big", Some(&big_value))?.status;
        let same = req("GET", "/kv/big", None)?.body == big_value;
        let toolarge = req("PUT", "/kv/toobig", Some(&letters(16385)))?.status;
        let persist = req("PUT", "/kv/persist", Some(b"kept-across-boots"))?.status;
        let list = req("GET", "/kv/", None)?.text();
        let del = req("DELETE", "/kv/alpha", None)?.status;
        let after = req("GET", "/kv/alpha", None)?.status;
        let del2 = req("DELETE", "/kv/alpha", None)?.status;
        Ok(format!(
            "put={put} get={get} put2={put2} get2={get2} big={big} bigsame={} \
             toolarge={toolarge} persist={persist} list={list} del={del} after={after} \
             del2={del2}",
            if same { "yes" } else { "no" }
        ))
    })();
    outcome(
        "net-kv",
        match line {
            Ok(l) if l == NET_KV_EXPECTED => Ok(()),
            Ok(l) => Err(format!("got `{l}`, expected `{NET_KV_EXPECTED}`")),
            Err(e) => Err(format!("{e:#}")),
        },
    )
}

/// `raw` (a whole request) on a fresh connection; `head_only` for an answer to `HEAD`.
fn raw_request(addr: &str, raw: &str, head_only: bool) -> Result<http::Response> {
    let mut c = Conn::connect(addr, IO_TIMEOUT)?;
    c.send_raw(raw.as_bytes())?;
    c.read_response(head_only)
}

/// `net-head-range-etag`: `net-checks.sh head-range-etag`'s requests on `/files/index.html`
/// (HTTP/1.0, a connection each), its line judged by [`NET_HEAD_RANGE_ETAG_EXPECTED`].
pub fn head_range_etag(addr: &str) -> Outcome {
    let line = (|| -> Result<String> {
        let f = "/files/index.html";
        let req = |method: &str, header: &str, head_only: bool| {
            raw_request(
                addr,
                &format!("{method} {f} HTTP/1.0\r\n{header}\r\n"),
                head_only,
            )
        };
        let head = req("HEAD", "", true)?;
        let get = req("GET", "", false)?;
        let len = head.header("content-length").unwrap_or("").to_owned();
        let etag = head.header("etag").unwrap_or("").to_owned();
        let range = req("GET", "Range: bytes=0-9\r\n", false)?;
        let unsat = req("GET", &format!("Range: bytes={len}-\r\n"), false)?;
        let not_modified = req("GET", &format!("If-None-Match: {etag}\r\n"), false)?;
        let other = req("GET", "If-None-Match: \"not-this-one\"\r\n", false)?;
        let same = if !len.is_empty() && get.header("content-length") == Some(len.as_str()) {
            "same".to_owned()
        } else {
            format!("{len}/{}", get.header("content-length").unwrap_or(""))
        };
        let tag = !etag.is_empty() && get.header("etag") == Some(etag.as_str());
        let content_range = range.header("content-range").unwrap_or("");
        Ok(format!(
            "head={} head_body={} length={same} etag={} range={} range_body={} \
             content_range={} unsatisfiable={} not_modified={} other_tag={}",
            head.status,
            head.body.len(),
            if tag { "yes" } else { "no" },
            range.status,
            range.body.len(),
            if content_range == format!("bytes 0-9/{len}") {
                "ok".to_owned()
            } else {
                content_range.replace(' ', "_")
            },
            unsat.status,
            not_modified.status,
            other.status
        ))
    })();
    outcome(
        "net-head-range-etag",
        match line {
            Ok(l) if l == NET_HEAD_RANGE_ETAG_EXPECTED => Ok(()),
            Ok(l) => Err(format!(
                "got `{l}`, expected `{NET_HEAD_RANGE_ETAG_EXPECTED}`"
            )),
            Err(e) => Err(format!("{e:#}")),
        },
    )
}

/// MB/s of `bytes` in `elapsed`.
fn rate(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// `net-download`: `GET /blob/16777216`, its digest against the generator's.
pub fn download(addr: &str) -> Outcome {
    let want = hex(&Sha256::digest(
        (0..BULK_BYTES).map(harness_pattern).collect::<Vec<u8>>(),
    ));
    let started = Instant::now();
    let got = http::once(addr, "GET", &format!("/blob/{BULK_BYTES}"), None);
    let elapsed = started.elapsed();
    let verdict = match got {
        Ok(r) if r.status == 200 && hex(&Sha256::digest(&r.body)) == want => Ok(()),
        Ok(r) => Err(format!(
            "GET /blob/{BULK_BYTES}: status {}, {} bytes, sha256 {}; the generator's {want}",
            r.status,
            r.body.len(),
            hex(&Sha256::digest(&r.body))
        )),
        Err(e) => Err(format!("{e:#}")),
    };
    Outcome {
        name: "net-download",
        figures: verdict.is_ok().then(|| {
            format!(
                "16 MiB down in {elapsed:.2?}: {:.2} MB/s",
                rate(BULK_BYTES, elapsed)
            )
        }),
        verdict,
    }
}

/// 16 MiB of a seeded xorshift, so a failure can be reproduced.
fn upload_bytes() -> Vec<u8> {
    let mut x: u64 = 0x243f_6a88_85a3_08d3;
    (0..BULK_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[4]
        })
        .collect()
}

/// `net-upload`: 16 MiB `POST /sink`; the service's digest and length must be ours.
pub fn upload(addr: &str) -> Outcome {
    let body = upload_bytes();
    let local = hex(&Sha256::digest(&body));
    let started = Instant::now();
    let got = http::once(addr, "POST", "/sink", Some(&body));
    let elapsed = started.elapsed();
    let verdict = match got {
        Ok(r)
            if r.status == 200
                && r.text().contains(&format!("\"sha256\":\"{local}\""))
                && r.text().contains(&format!("\"length\":{BULK_BYTES}")) =>
        {
            Ok(())
        }
        Ok(r) => Err(format!(
            "sent sha256 {local}, the service answered {} {:?}",
            r.status,
            r.text()
        )),
        Err(e) => Err(format!("{e:#}")),
    };
    Outcome {
        name: "net-upload",
        figures: verdict.is_ok().then(|| {
            format!(
                "16 MiB up in {elapsed:.2?}: {:.2} MB/s",
                rate(BULK_BYTES, elapsed)
            )
        }),
        verdict,
    }
}

/// The status of a raw request's answer, on a fresh connection.
fn raw_status(addr: &str, bytes: &[u8]) -> Result<u16> {
    let mut c = Conn::connect(addr, IO_TIMEOUT)?;
    c.send_raw(bytes)?;
    Ok(c.read_response(false)?.status)
}

/// `net-malformed`: a garbage request line, an oversize head, a bad `Content-Length`
/// (each `400`, `413`, `400`), then `GET /` still answered.
pub fn malformed(addr: &str) -> Outcome {
    let line = (|| -> Result<String> {
        let bad_line = raw_status(addr, b"GARBAGE\r\n\r\n")?;
        let oversize = raw_status(
            addr,
            format!(
                "GET / HTTP/1.1\r\nHost: g\r\nX-Big: {}\r\n\r\n",
                "x".repeat(9000)
            )
            .as_bytes(),
        )?;
        let bad_length = raw_status(
            addr,
            b"POST /sink HTTP/1.1\r\nHost: g\r\nContent-Length: abc\r\n\r\n",
        )?;
        let after = status(addr)?;
        Ok(format!(
            "{bad_line} {oversize} {bad_length} {}",
            after.get(..14).unwrap_or(&after)
        ))
    })();
    outcome(
        "net-malformed",
        match line {
            Ok(v) if v.starts_with("400 413 400 {\"uptime_ms\"") => Ok(()),
            Ok(v) => Err(format!(
                "bad line, oversize head, bad length, then GET /: {v:?}"
            )),
            Err(e) => Err(format!("{e:#}")),
        },
    )
}

/// `requests` `GET /blob/1024` over [`LOAD_CONNECTIONS`] keep-alive connections:
/// `(complete, failed, non-2xx, requests per second)`.
fn hammer(addr: &str, requests: u64) -> (u64, u64, u64, f64) {
    let next = Arc::new(AtomicU64::new(0));
    let counts = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let started = Instant::now();
    let workers: Vec<_> = (0..LOAD_CONNECTIONS)
        .map(|_| {
            let (next, counts, addr) = (next.clone(), counts.clone(), addr.to_owned());
            std::thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    if conn.is_none() {
                        conn = Conn::connect(&addr, IO_TIMEOUT).ok();
                    }
                    let result = match conn.as_mut() {
                        Some(c) => c.request("GET", "/blob/1024", None),
                        None => Err(anyhow::anyhow!("cannot connect")),
                    };
                    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(r) if (200..300).contains(&r.status) && r.body.len() == 1024 => {
                            c.0 += 1;
                            if r.closes {
                                conn = None;
                            }
                        }
                        Ok(r) => {
                            c.0 += 1;
                            c.2 += 1;
                            if r.closes {
                                conn = None;
                            }
                        }
                        Err(_) => {
                            c.1 += 1;
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed();
    let (complete, failed, non2xx) = *counts.lock().unwrap_or_else(|p| p.into_inner());
    (
        complete,
        failed,
        non2xx,
        complete as f64 / elapsed.as_secs_f64().max(1e-9),
    )
}

/// `net-load`: `requests` over 16 keep-alive connections after a warm-up, every one 2xx,
/// the service's grants and heap bytes in use the same before and after (as `ab -k` on Xen).
pub fn load(addr: &str, requests: u64) -> Outcome {
    let line = (|| -> Result<String> {
        // The service's figures are read once the last connection's close has been handled.
        let settle = || std::thread::sleep(SETTLE);
        hammer(addr, WARM_UP);
        settle();
        let before = status(addr)?;
        let (complete, failed, non2xx, rps) = hammer(addr, requests);
        settle();
        let after = status(addr)?;
        let field = |doc: &str, name: &str| {
            status_field(doc, name).map_or_else(|| "?".to_owned(), |v| v.to_string())
        };
        Ok(format!(
            "complete={complete} failed={failed} non2xx={non2xx} rps={rps:.0} grants={}/{} \
             heap={}/{}",
            field(&before, "grants_in_use"),
            field(&after, "grants_in_use"),
            field(&before, "heap_bytes_in_use"),
            field(&after, "heap_bytes_in_use")
        ))
    })();
    let figures = line.as_ref().ok().cloned();
    Outcome {
        name: "net-load",
        verdict: line
            .map_err(|e| format!("{e:#}"))
            .and_then(|l| load_verdict(&l, requests)),
        figures,
    }
}

/// One `GET /` on a fresh connection (`Connection: close`), timed: when it was sent, how long
/// the connection took to open (through QEMU's forward: the host's side only, see [`churn`]),
/// how long until the first byte of the answer and until its end; and the status document.
#[derive(Clone)]
struct TimedStatus {
    sent: Instant,
    port: u16,
    connect: Duration,
    first_byte: Duration,
    total: Duration,
    doc: String,
}

impl TimedStatus {
    /// A field of the document (0 if missing).
    fn field(&self, name: &str) -> u64 {
        status_field(&self.doc, name).unwrap_or(0)
    }

    /// When QEMU's forward had taken the connection.
    fn taken(&self) -> Instant {
        self.sent + self.connect
    }
}

/// [`TimedStatus`] of `GET /` at `addr`, each step within `timeout`.
fn timed_status(addr: &str, timeout: Duration) -> Result<TimedStatus> {
    use std::io::{Read, Write};
    let sock: std::net::SocketAddr = addr.parse().context("address")?;
    let sent = Instant::now();
    let mut s = connect_from_timed_port(sock, timeout).context("connecting")?;
    let connect = sent.elapsed();
    let port = s.local_addr().map_or(0, |a| a.port());
    s.set_read_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n")
        .context("sending GET /")?;
    let mut answer = vec![0u8; 1];
    s.read_exact(&mut answer)
        .context("waiting for the answer's first byte")?;
    let first_byte = sent.elapsed();
    s.read_to_end(&mut answer).context("reading the answer")?;
    let total = sent.elapsed();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "GET / answered {:?}",
            head.lines().next().unwrap_or_default()
        );
    }
    Ok(TimedStatus {
        sent,
        port,
        connect,
        first_byte,
        total,
        doc: body.to_owned(),
    })
}

/// How many host ports below the ephemeral range the timed `GET /`s take turns on.
const TIMED_PORTS: u16 = 4096;

/// The next of the [`TIMED_PORTS`] (an offset), shared by every timed `GET /` of the process.
static NEXT_TIMED_PORT: AtomicU16 = AtomicU16::new(0);

/// A connection to `sock` from a host port just below the kernel's ephemeral range, a
/// different one each time (the [`TIMED_PORTS`] in turn), so that it never shares its port
/// with another client's connection through another forward.
///
/// Why: QEMU's forward hands the guest the host client's port as the connection's source
/// port (from 10.0.2.2), so two forwards to the same guest port can hand it the same
/// address and port twice. The host's kernel picks each forward's client ports on a walk of
/// its own (keyed by the destination port) and may give the timed `GET /` a port that a
/// slow head of the other forward let go a moment ago, while the guest still holds that
/// connection (closed by the service, its FIN sent, waiting for the client's). The guest's
/// socket then takes the new SYN as part of the old connection, and slirp sends the SYN
/// again only after its 6 s: a timed `GET /` made 5.7 s after its connection was taken
/// (CI, `net-slow-heads`), reproduced by binding both connections to one port (5.74 s;
/// 1.0 s when the older connection is still open). The ephemeral range is the kernel's
/// (`/proc/sys/net/ipv4/ip_local_port_range`); if it starts too low to leave room below
/// it, the kernel picks the port as usual.
fn connect_from_timed_port(
    sock: std::net::SocketAddr,
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let first = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| ephemeral_low(&t))
        .and_then(|low| low.checked_sub(TIMED_PORTS))
        .filter(|&first| first >= 1024);
    let Some(first) = first else {
        return std::net::TcpStream::connect_timeout(&sock, timeout);
    };
    let mut last = None;
    // A port another program holds is passed over; a few tries, then the kernel's choice.
    for _ in 0..16 {
        let port = first + NEXT_TIMED_PORT.fetch_add(1, Ordering::Relaxed) % TIMED_PORTS;
        let s = Socket::new(Domain::for_address(sock), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        let local = std::net::SocketAddr::new(sock.ip(), port);
        match s.bind(&local.into()) {
            Ok(()) => {}
            Err(e) => {
                last = Some(e);
                continue;
            }
        }
        match s.connect_timeout(&sock.into(), timeout) {
            Ok(()) => return Ok(s.into()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    match last {
        Some(e) if e.kind() != std::io::ErrorKind::AddrInUse => Err(e),
        _ => std::net::TcpStream::connect_timeout(&sock, timeout),
    }
}

/// The first port of the ephemeral range in the text of `ip_local_port_range` (`low high`).
fn ephemeral_low(text: &str) -> Option<u16> {
    text.split_whitespace().next()?.parse().ok()
}

/// SYNs the host's kernel dropped because a listening socket's accept queue was full
/// (`TcpExtListenDrops` of `/proc/net/netstat`: every socket of the host, so other programs'
/// too), if it can be read.
fn host_listen_drops() -> Option<u64> {
    listen_drops(&std::fs::read_to_string("/proc/net/netstat").ok()?)
}

/// `TcpExt`'s `ListenDrops` in the text of `/proc/net/netstat` (a line of names, then one
/// of values, per group).
fn listen_drops(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let at = names.split_whitespace().position(|n| n == "ListenDrops")?;
        return values.split_whitespace().nth(at)?.parse().ok();
    }
    None
}

/// The guest's counters that tell where the connections of the churn went: what grew from
/// `before` to `after`, and the pool as `after` has it.
fn churn_counters(before: &TimedStatus, after: &TimedStatus) -> String {
    let grew = |name: &str| after.field(name).saturating_sub(before.field(name));
    format!(
        "connections +{} syns_dropped +{} reclaimed +{} handshake_timeouts +{} \
         close_timeouts +{} rx_packets +{} tx_packets +{}; open {} of {}",
        grew("connections"),
        grew("syns_dropped"),
        grew("reclaimed"),
        grew("handshake_timeouts"),
        grew("close_timeouts"),
        grew("rx_packets"),
        grew("tx_packets"),
        after.field("open"),
        after.field("max"),
    )
}

/// When the guest made `after`'s document, in ms after QEMU's forward took `after`'s
/// connection, by the guest's clock (`uptime_ms`) set against the host's by `before` (taken as
/// made halfway from its connection to its first byte). Near `after`'s answer time when the
/// time went before the guest answered (a SYN or the request late or lost on the way in), near
/// 0 when it went after (the answer late on the way out).
fn guest_answered_ms(before: &TimedStatus, after: &TimedStatus) -> i128 {
    let guest = i128::from(after.field("uptime_ms")) - i128::from(before.field("uptime_ms"));
    let made_before = before.taken() + (before.first_byte - before.connect) / 2;
    let host = i128::try_from(
        after
            .taken()
            .saturating_duration_since(made_before)
            .as_millis(),
    )
    .unwrap_or(i128::MAX);
    guest - host
}

/// `net-churn`: `n` connections opened at once and then closed at once; then `GET /` must be
/// answered within [`crate::xen::blk::ANSWER_WITHIN_MS`] of QEMU's forward taking its
/// connection (a SYN of it dropped by the guest or on the way would cost slirp's 6 s).
///
/// The time the connection takes to open is the host's, not the guest's: QEMU's forward
/// listens with a backlog of 1 (`ss -ltn` shows it) and slirp accepts one connection per turn
/// of QEMU's loop, so right after a burst the host's kernel drops the next SYN
/// (`TcpExtListenDrops` grows) and the client sends it again after 1 s, or 1 s + 2 s; only
/// then does slirp open its own connection to the guest. A capture on the host's loopback
/// shows it (the first SYN unanswered, the second answered at once), and it took the
/// check's `GET /` past 2 s in CI (connected after 2041 ms locally, answered 5 ms later).
/// So the line's `ms` counts from the connection's taking, `connect_ms` and the SYNs the guest
/// dropped over the burst (`syns_dropped`: those beyond its free slots in one turn) are
/// printed beside it, and the figures give the host's listen drops and the guest's counters.
///
/// Worse, a connection the host's kernel completed while that queue was full waits there
/// with its request unread until the client's retransmissions (0.2 s, 0.4 s, ... 3.2 s
/// apart) find room: a capture on the host's loopback showed a timed `GET /` "connected" at
/// once and taken by QEMU 6.2 s later, with nothing of it in a capture of hv's NIC
/// (PVXEN_PCAP) until then. So the timed `GET /` goes to `probe`, a forward of its own to the
/// same guest port (its own listen queue, which no burst fills) when the harness has one.
pub fn churn(addr: &str, probe: &str, n: u64) -> Outcome {
    let mut figures = None;
    let line = (|| -> Result<String> {
        let before = timed_status(probe, IO_TIMEOUT).context("GET / before the burst")?;
        let drops_before = host_listen_drops();
        // All at once, as a burst of clients would: one thread each, so a connection QEMU's
        // forward is slow to take does not hold up the others.
        let sock: std::net::SocketAddr = addr.parse().context("address")?;
        let connects: Vec<_> = (0..n)
            .map(|_| {
                std::thread::spawn(move || {
                    std::net::TcpStream::connect_timeout(&sock, CHURN_CONNECT_TIMEOUT).ok()
                })
            })
            .collect();
        let open: Vec<_> = connects
            .into_iter()
            .filter_map(|t| t.join().ok().flatten())
            .collect();
        let opened = open.len();
        drop(open);
        let started = Instant::now();
        let after = timed_status(probe, IO_TIMEOUT);
        let listen_drops = match (drops_before, host_listen_drops()) {
            (Some(a), Some(b)) => format!("+{}", b.saturating_sub(a)),
            _ => "?".to_owned(),
        };
        Ok(match after {
            Ok(a) => {
                figures = Some(format!(
                    "GET / from port {} connected in {} ms (host listen drops {listen_drops}), \
                     first byte at {} ms, made by the guest {} ms after the connection was \
                     taken, done at {} ms; guest over the burst: {}",
                    a.port,
                    a.connect.as_millis(),
                    a.first_byte.as_millis(),
                    guest_answered_ms(&before, &a),
                    a.total.as_millis(),
                    churn_counters(&before, &a)
                ));
                format!(
                    "opened={opened} status=ok ms={} connect_ms={} syns_dropped={}",
                    (a.total - a.connect).as_millis(),
                    a.connect.as_millis(),
                    a.field("syns_dropped")
                        .saturating_sub(before.field("syns_dropped"))
                )
            }
            Err(e) => {
                figures = Some(format!("GET / after the burst: {e:#}"));
                format!(
                    "opened={opened} status=failed ms={} connect_ms=? syns_dropped=?",
                    started.elapsed().as_millis()
                )
            }
        })
    })();
    Outcome {
        name: "net-churn",
        figures: match (&line, figures) {
            (Ok(l), Some(f)) => Some(format!("{l}; {f}")),
            (Ok(l), None) => Some(l.clone()),
            (Err(_), _) => None,
        },
        verdict: line
            .map_err(|e| format!("{e:#}"))
            .and_then(|l| timed_verdict(&l, n)),
    }
}

/// `net-slow-heads`: `clients` connections each send a request head a line a second for
/// `secs` seconds, never ending it (a connection the service closes, at its head deadline,
/// opens again and starts over); meanwhile `GET /` is timed once a second. The result line
/// is `net-checks.sh slow-heads`'s, `opened= reopened= gets= ok= worst_ms=`, with
/// `worst_ms` counted from QEMU's forward taking the timed connection (the 64 clients reopen
/// together at each head deadline, and QEMU's listen queue of 1 makes the host's kernel drop
/// SYNs then, as in [`churn`]) and `worst_connect_ms=` beside it. The timed `GET /` goes to
/// `probe` ([`churn`] says why); the figures name the worst one and give the guest's
/// counters over the check.
pub fn slow_heads(addr: &str, probe: &str, clients: u64, secs: u64) -> Outcome {
    let line = slow_heads_line(addr, probe, clients, secs);
    let figures = line.as_ref().ok().cloned();
    Outcome {
        name: "net-slow-heads",
        verdict: line
            .map_err(|e| format!("{e:#}"))
            .and_then(|l| crate::xen::blk::slow_heads_verdict(&l, secs)),
        figures,
    }
}

/// The result line of [`slow_heads`].
fn slow_heads_line(addr: &str, probe: &str, clients: u64, secs: u64) -> Result<String> {
    use std::io::Write;
    let sock: std::net::SocketAddr = addr.parse().context("address")?;
    let open = move || -> Option<std::net::TcpStream> {
        let mut s = std::net::TcpStream::connect_timeout(&sock, CHURN_CONNECT_TIMEOUT).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\n").ok()?;
        Some(s)
    };
    let before = timed_status(probe, IO_TIMEOUT).context("GET / before the slow heads")?;
    let opened = Arc::new(AtomicU64::new(0));
    let reopened = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let trickles: Vec<_> = (0..clients)
        .map(|_| {
            let (opened, reopened) = (opened.clone(), reopened.clone());
            std::thread::spawn(move || {
                let mut conn = open();
                if conn.is_some() {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                let mut line = 0u64;
                while Instant::now() < until {
                    std::thread::sleep(Duration::from_secs(1));
                    line += 1;
                    let sent = conn.as_mut().is_some_and(|c| {
                        c.write_all(format!("X-Slow-{line}: y\r\n").as_bytes())
                            .is_ok()
                    });
                    if !sent {
                        conn = open();
                        if conn.is_some() {
                            reopened.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let (mut gets, mut ok, mut worst, mut worst_connect) = (0u64, 0u64, 0u128, 0u128);
    let mut worst_get = String::new();
    let mut last_doc: Option<TimedStatus> = None;
    while Instant::now() < until {
        let started = Instant::now();
        let got = timed_status(probe, CHURN_CONNECT_TIMEOUT);
        gets += 1;
        // The host's part (QEMU's forward taking the connection, see `churn`) apart.
        let (ms, connect) = match &got {
            Ok(t) => (t.total - t.connect, t.connect),
            Err(_) => (started.elapsed(), Duration::ZERO),
        };
        let answered = got
            .as_ref()
            .is_ok_and(|t| t.doc.starts_with("{\"uptime_ms\""));
        ok += u64::from(answered);
        worst_connect = worst_connect.max(connect.as_millis());
        if ms.as_millis() >= worst {
            worst = ms.as_millis();
            worst_get = match &got {
                Ok(t) => format!(
                    "GET / {gets} from port {}: connected in {} ms, first byte at {} ms, \
                     done at {} ms, made by the guest {} ms after it was taken",
                    t.port,
                    t.connect.as_millis(),
                    t.first_byte.as_millis(),
                    t.total.as_millis(),
                    guest_answered_ms(last_doc.as_ref().unwrap_or(&before), t)
                ),
                Err(e) => format!("GET / {gets}: {e:#} after {} ms", ms.as_millis()),
            };
        }
        if let Ok(t) = got {
            last_doc = Some(t);
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
    }
    for t in trickles {
        let _ = t.join();
    }
    let counters = match &last_doc {
        Some(b) => format!(
            "; guest from before the trickles to the last answered GET: {}",
            churn_counters(&before, b)
        ),
        None => String::new(),
    };
    Ok(format!(
        "opened={} reopened={} gets={gets} ok={ok} worst_ms={worst} \
         worst_connect_ms={worst_connect}; worst: {worst_get}{counters}",
        opened.load(Ordering::Relaxed),
        reopened.load(Ordering::Relaxed)
    ))
}

/// `net-stalled-disk`: `net-checks.sh stalled`'s sequence on hv, with hv's `stall-disk`
/// control line (`stall(true)`, then `stall(false)`) where stock Xen's dom0 suspends the
/// store's device-mapper target: a put acknowledged; the store's disk stalled; a put sent
/// (its commit goes to the stalled disk: answered `202` after the service's storage
/// deadline), half a second later a put of another key (it waits behind that commit, never
/// begun: `503` after the deadline), and half a second after that `GET /` timed at `probe`;
/// the disk served again; then what was acknowledged before the stall, the `202`'s value and
/// the `503`'s key (absent) read back. Judged by the stock-Xen verdict.
pub fn stalled_disk(addr: &str, probe: &str, stall: &mut dyn FnMut(bool)) -> Outcome {
    const DURING: &[u8] = b"put-during-the-stall";
    let put_during = |key: &'static str| {
        let addr = addr.to_owned();
        std::thread::spawn(move || -> (String, u128) {
            let started = Instant::now();
            let status = Conn::connect(&addr, Duration::from_secs(60))
                .and_then(|mut c| c.request("PUT", &format!("/kv/{key}"), Some(DURING)))
                .map_or_else(|e| format!("failed({e:#})"), |r| r.status.to_string());
            (status, started.elapsed().as_millis())
        })
    };
    let line = (|| -> Result<String> {
        let before = http::once(
            addr,
            "PUT",
            "/kv/stall-before",
            Some(b"acknowledged-before-the-stall"),
        )?
        .status;
        stall(true);
        let during = put_during("stall-during");
        std::thread::sleep(Duration::from_millis(500));
        let queued = put_during("stall-queued");
        std::thread::sleep(Duration::from_millis(500));
        let get = timed_status(probe, Duration::from_secs(5));
        let (get, get_ms) = match &get {
            Ok(t) => ("ok", (t.total - t.connect).as_millis()),
            Err(_) => ("failed", 0),
        };
        let joined = (during.join(), queued.join());
        stall(false);
        let (Ok((put, put_ms)), Ok((queued, queued_ms))) = joined else {
            anyhow::bail!("a put's thread panicked");
        };
        let after = http::once(addr, "GET", "/kv/stall-before", None)?.text();
        let after = if after == "acknowledged-before-the-stall" {
            "same"
        } else {
            "differs"
        };
        let landed = http::once(addr, "GET", "/kv/stall-during", None)?;
        let landed = if landed.status == 200 && landed.text() == "put-during-the-stall" {
            "yes"
        } else {
            "no"
        };
        let queued_after = http::once(addr, "GET", "/kv/stall-queued", None)?.status;
        let persist = http::once(addr, "GET", "/kv/persist", None)?.text();
        Ok(format!(
            "before={before} get={get} get_ms={get_ms} put={put} put_ms={put_ms} \
             queued={queued} queued_ms={queued_ms} landed={landed} queued_after={queued_after} \
             after={after} persist={persist}"
        ))
    })();
    Outcome {
        name: "net-stalled-disk",
        figures: line.as_ref().ok().cloned(),
        verdict: line
            .map_err(|e| format!("{e:#}"))
            .and_then(|l| crate::xen::blk::stalled_verdict(&l)),
    }
}

const USAGE: &str = "\
cargo xtask net-check [--addr HOST:PORT] [--probe HOST:PORT] [--load N] [--slow-secs S]
                      [--site DIR] [--only CHECK,...] [--repeat N]

Runs the host's checks of the guest's HTTP service against a running one (by default the
demo of `cargo xtask run` at 127.0.0.1:8080), as hv's harness runs them: files, kv (it
leaves the keys `big` and `persist` in the store), HEAD, Range and If-None-Match on
index.html, download and upload of 16 MiB, malformed
requests, a load of N requests (default 2000) over 16 keep-alive connections, and a churn
of 200 connections, and 64 clients trickling request heads for S seconds (default 20) while
`GET /` is timed once a second. Prints `HOST <check> ok|FAIL <why>` and the figures; exits 1
if any failed.

  --addr HOST:PORT  the service (default 127.0.0.1:8080)
  --probe HOST:PORT where the churn and slow heads time their `GET /` (default: --addr): a
                    second QEMU forward to the same guest port keeps it out of the listen
                    queue (backlog 1) that their bursts fill, where the host's kernel can
                    hold a connection for seconds before QEMU takes it
  --load N          requests of the load check (default 2000)
  --slow-secs S     how long the slow heads trickle (default 20; 0: no slow heads)
  --site DIR        the site the service's archive was built from (default pvguest/site)
  --only CHECK,...  only these checks (files, kv, head-range-etag, download, upload,
                    malformed, load, churn, slow-heads), in that order
  --repeat N        run the checks N times over (default 1), to catch what happens seldom
";

/// The checks' names (`net-<name>`), in the order [`all`] runs them.
pub const CHECKS: [&str; 9] = [
    "files",
    "kv",
    "head-range-etag",
    "download",
    "upload",
    "malformed",
    "load",
    "churn",
    "slow-heads",
];

/// Where the checks reach the service.
#[derive(Clone, Copy)]
pub struct Targets<'a> {
    /// Every check's clients (on hv, a front that hands QEMU's forward one connection at a
    /// time: see `front`).
    pub addr: &'a str,
    /// The churn's burst of connections: QEMU's forward itself, so that the guest meets the
    /// burst as QEMU passes it on.
    pub burst: &'a str,
    /// The churn's and slow heads' timed `GET /` (see [`churn`]).
    pub probe: &'a str,
}

/// Every check, in order, against the service at `to` built from `site`: `requests` in the
/// load check, `slow_secs` of slow heads (the service's head deadline should be shorter; 0:
/// none).
pub fn all(
    to: Targets<'_>,
    site: &[(String, String)],
    requests: u64,
    slow_secs: u64,
) -> Vec<Outcome> {
    some(to, site, requests, slow_secs, &CHECKS)
}

/// The checks of [`CHECKS`] named in `only`, in [`CHECKS`]' order (slow heads only with
/// `slow_secs` > 0), each with the time it took in its figures.
fn some(
    to: Targets<'_>,
    site: &[(String, String)],
    requests: u64,
    slow_secs: u64,
    only: &[&str],
) -> Vec<Outcome> {
    CHECKS
        .iter()
        .filter(|name| only.contains(name))
        .filter(|&&name| name != "slow-heads" || slow_secs > 0)
        .map(|&name| {
            let started = Instant::now();
            let addr = to.addr;
            let mut o = match name {
                "files" => files(addr, site),
                "kv" => kv(addr),
                "head-range-etag" => head_range_etag(addr),
                "download" => download(addr),
                "upload" => upload(addr),
                "malformed" => malformed(addr),
                "load" => load(addr, requests),
                "churn" => churn(to.burst, to.probe, crate::xen::blk::CHURN_CONNECTIONS),
                _ => slow_heads(to.addr, to.probe, crate::xen::blk::SLOW_HEADS, slow_secs),
            };
            let took = format!("took {:.1} s", started.elapsed().as_secs_f64());
            o.figures = Some(match o.figures.take() {
                Some(f) => format!("{f}; {took}"),
                None => took,
            });
            o
        })
        .collect()
}

/// `cargo xtask net-check`.
pub fn net_check(args: &[String]) -> Result<std::process::ExitCode> {
    let mut addr = "127.0.0.1:8080".to_owned();
    let mut probe = None;
    let mut requests = crate::xen::blk::LOAD_REQUESTS;
    let mut slow_secs = crate::xen::blk::SLOW_HEADS_SECS;
    let mut site = crate::build::workspace_root().join("pvguest").join("site");
    let mut only: Vec<String> = CHECKS.iter().map(|&c| c.to_owned()).collect();
    let mut repeat = 1u64;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        let number = |name: &str, v: String| -> Result<u64> {
            v.parse()
                .with_context(|| format!("{name} {v}: not a number\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                return Ok(std::process::ExitCode::SUCCESS);
            }
            "--addr" => addr = value("--addr")?,
            "--probe" => probe = Some(value("--probe")?),
            "--load" => requests = number("--load", value("--load")?)?,
            "--site" => site = value("--site")?.into(),
            "--slow-secs" => slow_secs = number("--slow-secs", value("--slow-secs")?)?,
            "--repeat" => repeat = number("--repeat", value("--repeat")?)?,
            "--only" => {
                only = value("--only")?.split(',').map(str::to_owned).collect();
                if let Some(bad) = only.iter().find(|c| !CHECKS.contains(&c.as_str())) {
                    anyhow::bail!("--only: no check `{bad}`\n\n{USAGE}");
                }
            }
            other => anyhow::bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    let archive = crate::xen::blk::site_archive(&site, false)?;
    let only: Vec<&str> = only.iter().map(String::as_str).collect();
    let probe = probe.unwrap_or_else(|| addr.clone());
    let mut failed = 0;
    for round in 1..=repeat {
        if repeat > 1 {
            println!("net-check: round {round} of {repeat}");
        }
        let to = Targets {
            addr: &addr,
            burst: &addr,
            probe: &probe,
        };
        for o in some(to, &archive.files, requests, slow_secs, &only) {
            match &o.verdict {
                Ok(()) => println!("HOST {} ok", o.name),
                Err(why) => {
                    failed += 1;
                    println!("HOST {} FAIL {why}", o.name);
                }
            }
            if let Some(f) = &o.figures {
                println!("net-check: {}: {f}", o.name);
            }
        }
    }
    if repeat > 1 {
        println!("net-check: {failed} failed in {repeat} rounds");
    }
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// The application's address on QEMU's user network, forwarded from the host.
const APP_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 15);
/// The line the application prints once it serves (`pvguest/src/app.rs`).
const SERVING: &str = "APP serving";
/// How long the application boot may take in all: two boots' worth of start-up, the
/// checks (two 16 MiB transfers under TCG) and the end.
const APP_BOOT_TIMEOUT: Duration = Duration::from_secs(480);

/// The application with its archive and store and a vif, beside a `net-peer` guest that
/// fetches from it through hv's switch.
const APP_DOMAINS: [super::TestDomain; 2] = [
    super::TestDomain {
        name: "net-app",
        cmdline: "ip=10.0.2.15/24 gw=10.0.2.2",
        memory_mib: 128,
        disks: "disk = [ 'format=raw, vdev=xvda, access=ro, target=xvda.img',\n\
                \x20        'format=raw, vdev=xvdb, access=rw, target=xvdb.img' ]\n\
                vif = [ 'mac=00:16:3e:00:00:03' ]\n",
    },
    super::TestDomain {
        name: "net-peer",
        cmdline: "selftest=net-peer ip=10.0.2.16/24 gw=10.0.2.2 peer-ip=10.0.2.15 \
                  peer-blob=1048576",
        memory_mib: 128,
        disks: "vif = [ 'mac=00:16:3e:00:00:04' ]\n",
    },
];

/// `HOST hv-net-app` and the `HOST hv-net-*` checks: the application on hv with its disks
/// and a vif, the host's clients against it through QEMU's forward once it serves (`requests`
/// in the load check), then `shutdown <id> poweroff` on hv's control lines; beside it the
/// `net-peer` guest (`HOST hv-domu-to-domu`: its `net-peer-fetch` test, a unit of its own).
pub fn app_boot(
    tally: &mut crate::tally::Tally,
    hv: &std::path::Path,
    guest: &std::path::Path,
    requests: u64,
    (slow_secs, head_ms): (u64, Option<u64>),
) -> Result<()> {
    use super::serial::{self, Expect, Line};
    let label = "hv-net";
    let dir = super::run_dir(label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let site =
        crate::xen::blk::site_archive(&crate::build::workspace_root().join("pvguest/site"), false)?;
    let mut xvda = site.tar;
    xvda.resize(xvda.len().div_ceil(1 << 20) * (1 << 20), 0);
    std::fs::write(dir.join("xvda.img"), &xvda)?;
    let store = std::fs::File::create(dir.join("xvdb.img"))?;
    store.set_len(16 << 20)?;
    drop(store);
    // The application's head deadline (`http-head-ms=`), shortened in `test` so that the
    // slow heads meet it within their time.
    let mut domains = APP_DOMAINS;
    if let Some(ms) = head_ms {
        let cmdline = format!("{} http-head-ms={ms}", APP_DOMAINS[0].cmdline);
        domains[0].cmdline = Box::leak(cmdline.into_boxed_str());
    }
    let (archive, boots) = super::pack_domains(guest, label, &domains)?;
    // The clients' forward, and the probe's: the churn's and slow heads' timed `GET /` (see
    // `churn`).
    let port = super::front::free_port()?;
    let probe_port = loop {
        let p = super::front::free_port()?;
        if p != port {
            break p;
        }
    };
    let fwds = [port, probe_port].map(|host_port| super::qemu::HostFwd {
        host_port,
        guest_ip: APP_IP,
        guest_port: 80,
    });
    // The clients reach the first forward through a front that hands QEMU one connection at
    // a time (see `front`: the load check's 16 connections at once could wait 30 s in the
    // host's kernel); the probe's timed GETs, one at a time, go to the second directly.
    let front = super::front::Front::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    )?;
    let addr = front.addr.to_string();
    let burst = format!("127.0.0.1:{port}");
    let probe = format!("127.0.0.1:{probe_port}");
    let (control, lines) = std::sync::mpsc::channel::<super::qemu::Control>();
    let mut checks: Option<std::thread::JoinHandle<Vec<Outcome>>> = None;
    let files = site.files.clone();
    let drives = super::config::drives(&boots);
    let module = super::Module::Archive(
        &archive,
        super::qemu::DEFAULT_MEMORY_MIB,
        &drives,
        Some(&fwds),
    );
    println!(
        "hv-net: the application forwarded from {burst} (the churn's burst; the other \
         checks through a front on {addr}) and {probe} (the timed GETs)"
    );
    let booted = super::boot_with_control(
        "hv-test",
        hv,
        module,
        label,
        APP_BOOT_TIMEOUT,
        (super::HV_OPTIONS, None),
        Some(lines),
        |line| {
            if let Line::Guest(id, text) = line
                && text.starts_with(SERVING)
                && checks.is_none()
            {
                let (addr, burst, probe, files, control, id) = (
                    addr.clone(),
                    burst.clone(),
                    probe.clone(),
                    files.clone(),
                    control.clone(),
                    *id,
                );
                checks = Some(std::thread::spawn(move || {
                    let to = Targets {
                        addr: &addr,
                        burst: &burst,
                        probe: &probe,
                    };
                    let mut outcomes = all(to, &files, requests, slow_secs);
                    // The store's disk (`xvdb`) stalled through hv's control line; hv reads
                    // it at its next turn, so the check waits a moment each way.
                    let mut stall = |on: bool| {
                        let word = if on { "on" } else { "off" };
                        let _ = control.send(super::qemu::Control::Line(format!(
                            "stall-disk {id} xvdb {word}"
                        )));
                        std::thread::sleep(Duration::from_millis(300));
                    };
                    outcomes.push(stalled_disk(&addr, &probe, &mut stall));
                    outcomes.push(stack(&addr));
                    let _ = control.send(super::qemu::Control::Line(format!(
                        "shutdown {id} poweroff"
                    )));
                    outcomes
                }));
            }
        },
    )?;
    let outcomes = match checks.map(std::thread::JoinHandle::join) {
        Some(Ok(o)) => o,
        Some(Err(_)) => vec![outcome(
            "net-checks",
            Err("the checks' thread panicked".into()),
        )],
        None => vec![outcome(
            "net-checks",
            Err(format!("the application never printed `{SERVING}`")),
        )],
    };
    for o in &outcomes {
        let line = match &o.verdict {
            Ok(()) => format!("HOST hv-{} ok", o.name),
            Err(why) => format!("HOST hv-{} FAIL {why}", o.name),
        };
        println!("{line}");
        tally.record(o.verdict.is_ok(), line);
        if let Some(f) = &o.figures {
            println!("hv-net: {}: {f}", o.name);
        }
    }
    for l in booted
        .transcript
        .hv
        .iter()
        .filter(|l| l.contains("netback") || l.contains("switch"))
    {
        println!("hv-net: {l}");
    }
    println!("hv-net: {}", front.summary());
    let verdict = serial::judge_domains(
        "hv-net-app",
        &booted.transcript,
        &booted.end,
        &[("net-app", Expect::PowersOff), ("net-peer", Expect::Passes)],
        super::EXIT_POWEROFF,
    );
    for (name, test) in &verdict.tests {
        let unit = format!("hv {name} {}", test.line);
        println!("{unit}");
        tally.record(test.ok, unit);
    }
    let peer = serial::domain_run(&booted.transcript, "net-peer");
    let fetched = peer
        .lines
        .tests
        .iter()
        .any(|t| t.name == "net-peer-fetch" && t.ok);
    let line = if fetched {
        "HOST hv-domu-to-domu ok".to_owned()
    } else {
        "HOST hv-domu-to-domu FAIL the net-peer guest did not fetch its blob from the application (its lines above)".to_owned()
    };
    println!("{line}");
    tally.record(fetched, line);
    super::record_domains(tally, &booted, &verdict);
    Ok(())
}

/// The `net` group alone on hv, its address from QEMU's DHCP server (the one domain of the
/// boot, so it gets the first lease): one unit per `TEST` line and `HOST hv-net-group`.
/// Once it serves (`NET serving`), the host uploads and downloads 16 MiB through QEMU's
/// forward, as dom0's clients do on stock Xen, hv's netback counting the upload's frames
/// (`netback-stats`), then writes `data/net-done`: the group's `net-sg` and `net-gso-rx`
/// judge what those transfers did. Returns its `TEST` lines for the comparison with the
/// stock-Xen device boot.
pub fn group_boot(
    tally: &mut crate::tally::Tally,
    hv: &std::path::Path,
    guest: &std::path::Path,
    timeout: Duration,
) -> Result<Vec<String>> {
    use super::serial::{self, Expect, Line};
    const GROUP: super::TestDomain = super::TestDomain {
        name: "net-group",
        cmdline: "selftest=net ip=dhcp net-expect-mac=00:16:3e:00:00:05 \
                  net-expect-ip=10.0.2.15/24 net-expect-gw=10.0.2.2 net-serve-ms=120000",
        memory_mib: 128,
        disks: "vif = [ 'mac=00:16:3e:00:00:05' ]\n",
    };
    let label = "hv-net-group";
    let (archive, _) = super::pack_domains(guest, label, &[GROUP])?;
    let port = super::front::free_port()?;
    let fwds = [super::qemu::HostFwd {
        host_port: port,
        guest_ip: APP_IP,
        guest_port: 80,
    }];
    let addr = format!("127.0.0.1:{port}");
    let (control, lines) = std::sync::mpsc::channel::<super::qemu::Control>();
    let mut clients: Option<std::thread::JoinHandle<Vec<Outcome>>> = None;
    let booted = super::boot_with_control(
        "hv-test",
        hv,
        super::Module::Archive(&archive, super::qemu::DEFAULT_MEMORY_MIB, &[], Some(&fwds)),
        label,
        timeout,
        (super::HV_OPTIONS, None),
        Some(lines),
        |line| {
            if let Line::Guest(id, text) = line
                && text.starts_with("NET serving")
                && clients.is_none()
            {
                let (addr, control, id) = (addr.clone(), control.clone(), *id);
                clients = Some(std::thread::spawn(move || {
                    let line = |l: String| {
                        let _ = control.send(super::qemu::Control::Line(l));
                        // hv reads it at its next turn.
                        std::thread::sleep(Duration::from_millis(300));
                    };
                    line(format!("netback-stats {id} before-upload"));
                    let up = upload(&addr);
                    line(format!("netback-stats {id} after-upload"));
                    let down = download(&addr);
                    line(format!("xs-write {id} data/net-done 1"));
                    vec![up, down]
                }));
            }
        },
    )?;
    match clients.map(std::thread::JoinHandle::join) {
        Some(Ok(outcomes)) => {
            for o in outcomes {
                let line = match &o.verdict {
                    Ok(()) => format!("HOST hv-group-{} ok", o.name),
                    Err(why) => format!("HOST hv-group-{} FAIL {why}", o.name),
                };
                println!("{line}");
                tally.record(o.verdict.is_ok(), line);
                if let Some(f) = &o.figures {
                    println!("hv-net-group: {}: {f}", o.name);
                }
            }
        }
        Some(Err(_)) => tally.record(
            false,
            "HOST hv-group-net-clients FAIL the clients' thread panicked",
        ),
        None => tally.record(
            false,
            "HOST hv-group-net-clients FAIL the group never printed `NET serving`",
        ),
    }
    for l in booted
        .transcript
        .hv
        .iter()
        .filter(|l| l.contains("netback"))
    {
        println!("hv-net-group: {l}");
    }
    let verdict = serial::judge_domains(
        label,
        &booted.transcript,
        &booted.end,
        &[(GROUP.name, Expect::Passes)],
        super::EXIT_POWEROFF,
    );
    for (_, test) in &verdict.tests {
        let unit = format!("hv net {}", test.line);
        println!("{unit}");
        tally.record(test.ok, unit);
    }
    super::record_domains(tally, &booted, &verdict);
    Ok(serial::domain_run(&booted.transcript, GROUP.name)
        .lines
        .shown
        .into_iter()
        .filter(|l| l.starts_with("TEST ") || l.starts_with("FACT "))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_as_numbers() {
        let doc = r#"{"uptime_ms":12,"heap_bytes_in_use":4096,"grants_in_use":7}"#;
        assert_eq!(status_field(doc, "grants_in_use"), Some(7));
        assert_eq!(status_field(doc, "heap_bytes_in_use"), Some(4096));
        assert_eq!(status_field(doc, "nothing"), None);
    }

    #[test]
    fn timed_gets_connect_from_below_the_ephemeral_range() {
        assert_eq!(ephemeral_low("32768\t60999\n"), Some(32768));
        assert_eq!(ephemeral_low(""), None);
        let Some(low) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| ephemeral_low(&t))
            .filter(|&l| l >= 1024 + TIMED_PORTS)
        else {
            return;
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                let c = connect_from_timed_port(to, Duration::from_secs(5)).unwrap();
                let _ = listener.accept().unwrap();
                c.local_addr().unwrap().port()
            })
            .collect();
        for p in &ports {
            assert!(
                (low - TIMED_PORTS..low).contains(p),
                "{ports:?} below {low}"
            );
        }
        assert!(ports[0] != ports[1] && ports[1] != ports[2], "{ports:?}");
    }

    #[test]
    fn listen_drops_are_read_from_their_group() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 0 7 9\n\
                    IpExt: InNoRoutes ListenDrops\n\
                    IpExt: 1 2\n";
        assert_eq!(listen_drops(text), Some(9));
        assert_eq!(listen_drops("IpExt: ListenDrops\nIpExt: 2\n"), None);
    }

    #[test]
    fn the_churn_is_judged_from_the_connection_s_taking() {
        let ok = "opened=200 status=ok ms=40 connect_ms=2041 syns_dropped=3";
        assert_eq!(timed_verdict(ok, 200), Ok(()));
        for bad in [
            "opened=200 status=ok ms=2046 connect_ms=0 syns_dropped=0",
            "opened=199 status=ok ms=40 connect_ms=0 syns_dropped=0",
            "opened=200 status=failed ms=28 connect_ms=? syns_dropped=?",
        ] {
            assert!(timed_verdict(bad, 200).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_letters_are_net_checks_letters() {
        // net-checks.sh: 97 + (i * 7 + int(i / 26)) % 26.
        assert_eq!(&letters(30)[..4], b"ahov");
        assert_eq!(letters(27)[26], b'a' + (26 * 7 + 1) % 26);
    }
}
