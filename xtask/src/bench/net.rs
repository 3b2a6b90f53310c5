//! The network rows' one client program, run on the host for all three systems (over
//! [`crate::http`]): a download of `GET /blob/<n>`, an upload that the server reads and drops
//! ([`upload`]: pvguest's `POST /discard`, the Linux domU's `POST /sink`, the same work on
//! both), pvguest's hashed upload ([`upload_hashed`], `POST /sink`), and requests per second
//! of `GET /blob/1024` over 1 or 16 keep-alive connections. Each returns its rate or why it
//! could not measure (a wrong status or length is an error, not a slow figure). Every
//! download is checked byte for byte after its clock stops ([`Server`]), and pvguest's hashed
//! upload against the digest its `/sink` answers, so that data corrupted on the way is an
//! error, never a rate (issue 30's integrity item); the dropped uploads are checked for
//! status and length.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::http::{self, Conn};
use crate::xen::blk::{harness_pattern, hex};

/// Whose service a transfer talks to: what its bulk bytes must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// pvguest's httpd: byte `i` of `/blob/<n>` is the generator's (`httpd::blob`, the
    /// harness's [`harness_pattern`]), and `/sink` answers the upload's SHA-256 and length.
    Pvguest,
    /// The Linux domU's nginx: `/blob/<n>` is n zero bytes, and `/sink` answers
    /// `{"sink":"ok"}` without a digest (nginx drops the body; hashing it in the domU would
    /// add to the time measured), so its uploads are checked for status only.
    Linux,
}

impl Server {
    /// Byte `i` of `/blob/<n>` on this server.
    fn blob_byte(self, i: usize) -> u8 {
        match self {
            Self::Pvguest => harness_pattern(i),
            Self::Linux => 0,
        }
    }

    /// Why `body` is not this server's `/blob/<n>`, if it is not: the first byte that differs
    /// and how many differ.
    pub fn check_blob(self, body: &[u8]) -> Result<()> {
        let mut wrong = (0..body.len()).filter(|&i| body[i] != self.blob_byte(i));
        let Some(first) = wrong.next() else {
            return Ok(());
        };
        let count = 1 + wrong.count();
        bail!(
            "the body differs from {self:?}'s blob at byte {first} (got {:#04x}, expected {:#04x}); {count} of {} bytes differ",
            body[first],
            self.blob_byte(first),
            body.len()
        )
    }

    /// Why `answer` (the text of `/sink`'s answer to `sent`) does not confirm the bytes, if
    /// it does not.
    pub fn check_sink(self, sent: &[u8], answer: &str) -> Result<()> {
        if self == Self::Linux {
            return Ok(());
        }
        let digest = hex(&Sha256::digest(sent));
        let length = sent.len();
        if !answer.contains(&format!("\"sha256\":\"{digest}\""))
            || !answer.contains(&format!("\"length\":{length}"))
        {
            bail!("sent {length} bytes of sha256 {digest}; the service answered {answer:?}");
        }
        Ok(())
    }
}

/// A client's deadline for each read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// MB/s (10⁶ bytes per second) of `bytes` in `elapsed`.
pub fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// `GET /blob/<bytes>` on a fresh connection: MB/s from the request to the body's last byte,
/// once the body is checked against `server`'s content.
pub fn download(addr: &str, server: Server, bytes: usize) -> Result<f64> {
    let mut conn = Conn::connect(addr, IO_TIMEOUT)?;
    let started = Instant::now();
    let r = conn.request("GET", &format!("/blob/{bytes}"), None)?;
    let elapsed = started.elapsed();
    if r.status != 200 || r.body.len() != bytes {
        bail!(
            "GET /blob/{bytes}: status {}, {} bytes",
            r.status,
            r.body.len()
        );
    }
    server
        .check_blob(&r.body)
        .with_context(|| format!("GET /blob/{bytes} from {addr}"))?;
    Ok(mb_per_s(bytes, elapsed))
}

/// The bytes of an upload of `bytes` bytes.
fn upload_body(bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect()
}

/// An upload of `bytes` bytes that `server` reads and drops on a fresh connection (pvguest's
/// `POST /discard`, unhashed; the Linux domU's `POST /sink`, which nginx drops): MB/s from
/// the request to the answer, once the answer's status (and pvguest's length) is right.
pub fn upload(addr: &str, server: Server, bytes: usize) -> Result<f64> {
    let body = upload_body(bytes);
    let path = match server {
        Server::Pvguest => "/discard",
        Server::Linux => "/sink",
    };
    let mut conn = Conn::connect(addr, IO_TIMEOUT)?;
    let started = Instant::now();
    let r = conn.request("POST", path, Some(&body))?;
    let elapsed = started.elapsed();
    if !(200..300).contains(&r.status) {
        bail!("POST {path} of {bytes} bytes: status {}", r.status);
    }
    if server == Server::Pvguest && r.text() != format!("{{\"length\":{bytes}}}") {
        bail!(
            "POST {path} of {bytes} bytes to {addr}: answered {:?}",
            r.text()
        );
    }
    Ok(mb_per_s(bytes, elapsed))
}

/// `POST /sink` of `bytes` bytes to pvguest on a fresh connection, which hashes them: MB/s
/// from the request to the answer, once its SHA-256 and length are the bytes sent.
pub fn upload_hashed(addr: &str, bytes: usize) -> Result<f64> {
    let body = upload_body(bytes);
    let mut conn = Conn::connect(addr, IO_TIMEOUT)?;
    let started = Instant::now();
    let r = conn.request("POST", "/sink", Some(&body))?;
    let elapsed = started.elapsed();
    if !(200..300).contains(&r.status) {
        bail!("POST /sink of {bytes} bytes: status {}", r.status);
    }
    Server::Pvguest
        .check_sink(&body, &r.text())
        .with_context(|| format!("POST /sink to {addr}"))?;
    Ok(mb_per_s(bytes, elapsed))
}

/// `requests` `GET /blob/1024` over `connections` keep-alive connections (opened before the
/// clock starts): requests per second. Any failed or wrong answer is an error.
pub fn requests_per_s(addr: &str, connections: u64, requests: u64) -> Result<f64> {
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(Conn::connect(addr, IO_TIMEOUT)?);
    }
    let next = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (next, bad, addr) = (next.clone(), bad.clone(), addr.to_owned());
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    match conn.request("GET", "/blob/1024", None) {
                        Ok(r) if r.status == 200 && r.body.len() == 1024 => {
                            if r.closes {
                                match Conn::connect(&addr, IO_TIMEOUT) {
                                    Ok(c) => conn = c,
                                    Err(_) => {
                                        bad.fetch_add(1, Ordering::Relaxed);
                                        return;
                                    }
                                }
                            }
                        }
                        _ => {
                            bad.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
    }
    let elapsed = started.elapsed();
    let bad = bad.load(Ordering::Relaxed);
    if bad > 0 {
        bail!("{bad} of {requests} requests over {connections} connections failed");
    }
    Ok(requests as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// Polls `GET /` until it answers 200 or `within` passes; the instant it answered.
pub fn wait_answering(addr: &str, within: Duration) -> Result<Instant> {
    let until = Instant::now() + within;
    loop {
        if let Ok(r) = http::once(addr, "GET", "/", None)
            && r.status == 200
        {
            return Ok(Instant::now());
        }
        if Instant::now() >= until {
            return Err(anyhow::anyhow!("GET / did not answer 200"))
                .with_context(|| format!("{addr} within {} s", within.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A keep-alive server as pvguest's: `GET /blob/<n>` answers n bytes of the generator,
    /// `POST /sink` the body's digest and length, `POST /discard` its length, anything else
    /// 200. With `flip`, byte 1000 of every blob and of every body it hashes is changed, as
    /// corruption on the way would.
    fn server_with(flip: bool) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            r.read_line(&mut h).unwrap();
                            if h.trim().is_empty() {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        let flip_at = |b: &mut Vec<u8>| {
                            if flip && b.len() > 1000 {
                                b[1000] ^= 0x40;
                            }
                        };
                        let answer = if line.starts_with("POST /discard") {
                            format!("{{\"length\":{}}}", body.len()).into_bytes()
                        } else if line.starts_with("POST /sink") {
                            flip_at(&mut body);
                            format!(
                                "{{\"sha256\":\"{}\",\"length\":{}}}",
                                hex(&Sha256::digest(&body)),
                                body.len()
                            )
                            .into_bytes()
                        } else {
                            let n: usize = line
                                .split_whitespace()
                                .nth(1)
                                .and_then(|p| p.strip_prefix("/blob/"))
                                .and_then(|n| n.parse().ok())
                                .unwrap_or(2);
                            let mut blob: Vec<u8> = (0..n).map(harness_pattern).collect();
                            flip_at(&mut blob);
                            blob
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                            answer.len()
                        );
                        w.write_all(head.as_bytes()).unwrap();
                        w.write_all(&answer).unwrap();
                    }
                });
            }
        });
        addr
    }

    /// [`server_with`] without corruption.
    fn server() -> String {
        server_with(false)
    }

    #[test]
    fn every_row_of_the_client_measures_a_rate() {
        let addr = server();
        assert!(download(&addr, Server::Pvguest, 1 << 20).unwrap() > 0.0);
        assert!(upload(&addr, Server::Pvguest, 1 << 20).unwrap() > 0.0);
        assert!(upload_hashed(&addr, 1 << 20).unwrap() > 0.0);
        assert!(requests_per_s(&addr, 1, 50).unwrap() > 0.0);
        assert!(requests_per_s(&addr, 16, 200).unwrap() > 0.0);
        wait_answering(&addr, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_short_answer_is_an_error_not_a_rate() {
        // The server answers `/blob/<n>` for the n asked; a request for a body the client
        // checks against another length must fail: ask for n, compare with n + 1.
        let addr = server();
        let mut conn = Conn::connect(&addr, IO_TIMEOUT).unwrap();
        let r = conn.request("GET", "/blob/10", None).unwrap();
        assert_eq!(r.body.len(), 10);
        let refused = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = refused.local_addr().unwrap().to_string();
        drop(refused);
        assert!(download(&dead, Server::Pvguest, 10).is_err());
        assert!(requests_per_s(&dead, 2, 10).is_err());
    }

    #[test]
    fn a_changed_byte_is_an_error_not_a_rate() {
        let addr = server_with(true);
        let down = download(&addr, Server::Pvguest, 1 << 16).unwrap_err();
        assert!(format!("{down:#}").contains("at byte 1000"), "{down:#}");
        assert!(upload_hashed(&addr, 1 << 16).is_err());
        // The dropped upload is checked for its length only.
        assert!(upload(&addr, Server::Pvguest, 1 << 16).is_ok());
        // The Linux domU's blobs are zeros: the generator's bytes are not.
        let clean = server();
        assert!(download(&clean, Server::Linux, 1 << 16).is_err());
        assert!(upload(&clean, Server::Linux, 1 << 16).is_ok());
    }
}
