//! One connection's protocol, as a pure state machine: bytes in ([`Connection::receive`]),
//! bytes out ([`Connection::fill`]), time passed in.
//!
//! Memory stays bounded whatever the client sends: a head is buffered up to
//! [`MAX_HEAD`]; a body is hashed or skipped as it streams; a blob is
//! generated as it is sent; and no new request is read while an answer is still going out
//! (the bytes stay in the socket, whose window then closes).

use crate::MAX_HEAD;
use crate::blob;
use crate::request::{Refusal, Route, parse_head};
use crate::response;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use sha2::{Digest, Sha256};
use smoltcp::time::Instant;

/// Counters of one connection, added to the server's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Requests answered.
    pub requests: u64,
    /// Answers with a 4xx status.
    pub client_errors: u64,
    /// Request bytes taken.
    pub bytes_in: u64,
    /// Response bytes produced.
    pub bytes_out: u64,
}

#[derive(Debug)]
enum Body {
    /// Hashing a `POST /sink` upload.
    Sink {
        hasher: Sha256,
        length: u64,
        remaining: u64,
        keep_alive: bool,
    },
    /// Skipping a body nobody reads (answer already queued).
    Skip { remaining: u64 },
}

#[derive(Debug)]
enum Output {
    Bytes { data: Vec<u8>, sent: usize },
    Blob { next: u64, end: u64 },
}

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub struct Connection {
    head: Vec<u8>,
    body: Option<Body>,
    output: Vec<Output>,
    closing: bool,
    last_activity: Instant,
    stats: ConnStats,
}

impl Connection {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            head: Vec::new(),
            body: None,
            output: Vec::new(),
            closing: false,
            last_activity: now,
            stats: ConnStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// When bytes last moved.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// Whether everything is answered and the connection should close now.
    pub fn wants_close(&self) -> bool {
        self.closing && self.output.is_empty()
    }

    /// Whether an answer is still going out.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Takes request bytes; returns how many it consumed (the rest stay with the caller until
    /// the answers queued so far are out). `status` renders the body of `GET /`.
    pub fn receive(
        &mut self,
        data: &[u8],
        now: Instant,
        status: &mut dyn FnMut() -> String,
    ) -> usize {
        let mut used = 0;
        while used < data.len() {
            let rest = &data[used..];
            let n = if self.closing {
                // Nothing after a refused request is read.
                rest.len()
            } else if self.body.is_some() {
                self.take_body(rest)
            } else if !self.output.is_empty() {
                break;
            } else {
                self.take_head(rest, status)
            };
            if n == 0 {
                break;
            }
            used += n;
        }
        if used > 0 {
            self.last_activity = now;
            self.stats.bytes_in += used as u64;
        }
        used
    }

    fn take_body(&mut self, data: &[u8]) -> usize {
        let Some(body) = self.body.as_mut() else {
            return 0;
        };
        let remaining = match body {
            Body::Sink { remaining, .. } | Body::Skip { remaining } => remaining,
        };
        let n = data
            .len()
            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
        *remaining -= n as u64;
        let done = *remaining == 0;
        if let Body::Sink { hasher, .. } = body {
            hasher.update(&data[..n]);
        }
        if done
            && let Some(Body::Sink {
                hasher,
                length,
                keep_alive,
                ..
            }) = self.body.take()
        {
            let digest = hasher.finalize();
            let mut hex = String::with_capacity(64);
            for b in digest {
                let _ = write!(hex, "{b:02x}");
            }
            let json = format!("{{\"sha256\":\"{hex}\",\"length\":{length}}}");
            self.answer(
                200,
                response::with_body(200, "application/json", &json, keep_alive, None),
                keep_alive,
            );
        } else if done {
            self.body = None;
        }
        n
    }

    fn take_head(&mut self, data: &[u8], status: &mut dyn FnMut() -> String) -> usize {
        // Look for the blank line, including a terminator split across two reads.
        let start = self.head.len().saturating_sub(3);
        let room = MAX_HEAD + 1 - self.head.len().min(MAX_HEAD);
        let take = data.len().min(room);
        self.head.extend_from_slice(&data[..take]);
        let Some(end) = self.head[start..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| start + p + 4)
        else {
            if self.head.len() > MAX_HEAD {
                self.refuse(Refusal {
                    status: 413,
                    reason: "request head too large",
                });
            }
            return take;
        };
        if end > MAX_HEAD {
            self.refuse(Refusal {
                status: 413,
                reason: "request head too large",
            });
            return take;
        }
        // Bytes past the head belong to the body or the next request.
        let extra = self.head.len() - end;
        let head = core::mem::take(&mut self.head);
        self.dispatch(&head[..end], status);
        take - extra
    }

    fn dispatch(&mut self, head: &[u8], status: &mut dyn FnMut() -> String) {
        let request = match parse_head(head) {
            Ok(r) => r,
            Err(refusal) => return self.refuse(refusal),
        };
        let keep = request.keep_alive;
        match request.route {
            Route::Sink => {
                self.body = Some(Body::Sink {
                    hasher: Sha256::new(),
                    length: request.body,
                    remaining: request.body,
                    keep_alive: keep,
                });
                if request.body == 0 {
                    self.take_body(&[]);
                }
                return;
            }
            Route::Status => {
                let json = status();
                self.answer(
                    200,
                    response::with_body(200, "application/json", &json, keep, None),
                    keep,
                );
            }
            Route::Blob(size) => {
                let head = response::head(200, "application/octet-stream", size, keep, None);
                self.answer(200, head, keep);
                if size > 0 {
                    self.output.push(Output::Blob { next: 0, end: size });
                }
            }
            Route::NotFound => {
                self.answer(404, response::error(404, "no such path", keep, None), keep)
            }
            Route::MethodNotAllowed(allow) => self.answer(
                405,
                response::error(405, "method not allowed", keep, Some(allow)),
                keep,
            ),
        }
        if request.body > 0 {
            self.body = Some(Body::Skip {
                remaining: request.body,
            });
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.head = Vec::new();
        self.answer(
            refusal.status,
            response::error(refusal.status, refusal.reason, false, None),
            false,
        );
    }

    fn answer(&mut self, status: u16, head: Vec<u8>, keep_alive: bool) {
        self.stats.requests += 1;
        if (400..500).contains(&status) {
            self.stats.client_errors += 1;
        }
        self.output.push(Output::Bytes {
            data: head,
            sent: 0,
        });
        if !keep_alive {
            self.closing = true;
        }
    }

    /// Writes pending answer bytes into `buf`; returns how many.
    pub fn fill(&mut self, buf: &mut [u8], now: Instant) -> usize {
        let mut written = 0;
        while written < buf.len() {
            let Some(first) = self.output.first_mut() else {
                break;
            };
            let out = &mut buf[written..];
            let (n, finished) = match first {
                Output::Bytes { data, sent } => {
                    let n = out.len().min(data.len() - *sent);
                    out[..n].copy_from_slice(&data[*sent..*sent + n]);
                    *sent += n;
                    (n, *sent == data.len())
                }
                Output::Blob { next, end } => {
                    let n = out
                        .len()
                        .min(usize::try_from(*end - *next).unwrap_or(usize::MAX));
                    blob::fill(*next, &mut out[..n]);
                    *next += n as u64;
                    (n, *next == *end)
                }
            };
            written += n;
            if finished {
                self.output.remove(0);
            }
        }
        if written > 0 {
            self.last_activity = now;
            self.stats.bytes_out += written as u64;
        }
        written
    }
}
