//! The network rows' one client program, run on the host for all three systems (over
//! [`crate::http`]): a download of `GET /blob/<n>`, an upload of `POST /sink`, and requests per
//! second of `GET /blob/1024` over 1 or 16 keep-alive connections. Each returns its rate or
//! why it could not measure (a wrong status or length is an error, not a slow figure).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http::{self, Conn};

/// A client's deadline for each read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// MB/s (10⁶ bytes per second) of `bytes` in `elapsed`.
pub fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// `GET /blob/<bytes>` on a fresh connection: MB/s from the request to the body's last byte.
pub fn download(addr: &str, bytes: usize) -> Result<f64> {
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
    Ok(mb_per_s(bytes, elapsed))
}

/// `POST /sink` of `bytes` bytes on a fresh connection: MB/s from the request to the answer.
pub fn upload(addr: &str, bytes: usize) -> Result<f64> {
    let body: Vec<u8> = (0..bytes)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    let mut conn = Conn::connect(addr, IO_TIMEOUT)?;
    let started = Instant::now();
    let r = conn.request("POST", "/sink", Some(&body))?;
    let elapsed = started.elapsed();
    if !(200..300).contains(&r.status) {
        bail!("POST /sink of {bytes} bytes: status {}", r.status);
    }
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

    /// A keep-alive server answering `GET /blob/<n>` with n bytes and anything else 200.
    fn server() -> String {
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
                        let n: usize = line
                            .split_whitespace()
                            .nth(1)
                            .and_then(|p| p.strip_prefix("/blob/"))
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(2);
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                        w.write_all(head.as_bytes()).unwrap();
                        w.write_all(&vec![b'x'; n]).unwrap();
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn every_row_of_the_client_measures_a_rate() {
        let addr = server();
        assert!(download(&addr, 1 << 20).unwrap() > 0.0);
        assert!(upload(&addr, 1 << 20).unwrap() > 0.0);
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
        assert!(download(&dead, 10).is_err());
        assert!(requests_per_s(&dead, 2, 10).is_err());
    }
}
