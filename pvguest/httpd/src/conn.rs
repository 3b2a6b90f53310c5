//! One connection's protocol, as a pure state machine: bytes in ([`Connection::receive`]),
//! bytes out ([`Connection::fill`]), time passed in, storage reached through the caller's
//! [`Backend`].
//!
//! Memory stays bounded whatever the client sends: a head is buffered up to
//! [`MAX_HEAD`]; a body is hashed or skipped as it streams, or buffered up to [`MAX_VALUE`]
//! for `PUT /kv/<key>`; a blob is generated, and a file read, as it is sent; and no new
//! request is read while an answer is still going out (the bytes stay in the socket, whose
//! window then closes).
//!
//! [`MAX_VALUE`]: crate::MAX_VALUE

use crate::MAX_HEAD;
use crate::backend::Backend;
use crate::blob;
use crate::deadline::{Deadlines, Expiry};
use crate::path::content_type;
use crate::request::{Refusal, Route, parse_head};
use crate::response;
use crate::server::ServerStats;
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
    /// Answers cut short (a file read failed after the head went out): 0 or 1, since the
    /// connection closes.
    pub aborted: u64,
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
    /// Buffering the value of a `PUT /kv/<key>` (at most `MAX_VALUE` bytes).
    Put {
        key: String,
        value: Vec<u8>,
        remaining: u64,
        keep_alive: bool,
    },
    /// Skipping a body nobody reads (answer already queued).
    Skip { remaining: u64 },
}

#[derive(Debug)]
enum Output {
    Bytes {
        data: Vec<u8>,
        sent: usize,
    },
    Blob {
        next: u64,
        end: u64,
    },
    /// Bytes `next..end` of the archive's file at `path`, read as they are sent.
    File {
        path: String,
        next: u64,
        end: u64,
    },
}

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub struct Connection {
    head: Vec<u8>,
    body: Option<Body>,
    output: Vec<Output>,
    closing: bool,
    last_activity: Instant,
    /// When the head being read now got its first byte.
    head_started: Option<Instant>,
    /// When the body being read now began, and its bytes so far.
    body_started: Instant,
    body_received: u64,
    stats: ConnStats,
}

/// Where a connection is, for choosing one to reclaim when every slot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing in progress since this instant (between requests, or before the first).
    Idle(Instant),
    /// A head arriving since this instant (its first byte).
    Head(Instant),
    /// A body arriving or an answer going out, or closing.
    Busy,
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
            head_started: None,
            body_started: now,
            body_received: 0,
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

    /// Whether everything is answered (or an answer was cut short) and the connection
    /// should close now.
    pub fn wants_close(&self) -> bool {
        self.closing && self.output.is_empty()
    }

    /// Whether an answer is still going out.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// The next deadline this connection meets by itself, and which (the answer's own
    /// deadline, [`Deadlines::send`], depends on the socket: the server keeps it). None while
    /// an answer is queued or the connection is closing.
    pub fn due(&self, deadlines: &Deadlines) -> Option<(Instant, Expiry)> {
        if self.closing {
            None
        } else if self.body.is_some() {
            let due = deadlines.body_due(self.body_started, self.body_received);
            Some((due, Expiry::Body))
        } else if let Some(start) = self.head_started {
            Some((start + deadlines.head, Expiry::Head))
        } else if !self.output.is_empty() {
            None
        } else {
            Some((self.last_activity + deadlines.idle, Expiry::Idle))
        }
    }

    /// Where the connection is (see [`Phase`]).
    pub fn phase(&self) -> Phase {
        if self.closing || self.body.is_some() || !self.output.is_empty() {
            Phase::Busy
        } else if let Some(start) = self.head_started {
            Phase::Head(start)
        } else {
            Phase::Idle(self.last_activity)
        }
    }

    /// The head or body did not arrive in time: answers `408 Request Timeout` and wants to
    /// close once it is out; nothing more is read.
    pub fn time_out(&mut self) {
        self.head = Vec::new();
        self.head_started = None;
        self.body = None;
        self.answer(
            408,
            response::error(408, "request timeout", false, None),
            false,
        );
    }

    /// Takes request bytes; returns how many it consumed (the rest stay with the caller until
    /// the answers queued so far are out). The storage routes call `backend` (`kv_put` once a
    /// value is complete); `GET /` renders `backend`'s status with the service's counters
    /// `http`.
    pub fn receive(
        &mut self,
        data: &[u8],
        now: Instant,
        backend: &mut dyn Backend,
        http: &ServerStats,
    ) -> usize {
        let mut used = 0;
        while used < data.len() {
            let rest = &data[used..];
            let n = if self.closing {
                // Nothing after a refused request is read.
                rest.len()
            } else if self.body.is_some() {
                self.take_body(rest, backend)
            } else if !self.output.is_empty() {
                break;
            } else {
                self.take_head(rest, now, backend, http)
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

    fn take_body(&mut self, data: &[u8], backend: &mut dyn Backend) -> usize {
        let Some(body) = self.body.as_mut() else {
            return 0;
        };
        let remaining = match body {
            Body::Sink { remaining, .. }
            | Body::Put { remaining, .. }
            | Body::Skip { remaining } => remaining,
        };
        let n = data
            .len()
            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
        *remaining -= n as u64;
        self.body_received += n as u64;
        let done = *remaining == 0;
        match body {
            Body::Sink { hasher, .. } => hasher.update(&data[..n]),
            Body::Put { value, .. } => value.extend_from_slice(&data[..n]),
            Body::Skip { .. } => {}
        }
        if !done {
            return n;
        }
        match self.body.take() {
            Some(Body::Sink {
                hasher,
                length,
                keep_alive,
                ..
            }) => {
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
            }
            Some(Body::Put {
                key,
                value,
                keep_alive,
                ..
            }) => {
                // The answer is queued only once the change is durable.
                let (status, answer) = match backend.kv_put(&key, &value) {
                    Ok(()) => {
                        let mut json = String::from("{\"key\":");
                        response::json_string(&mut json, &key);
                        let _ = write!(json, ",\"length\":{}}}", value.len());
                        let answer =
                            response::with_body(200, "application/json", &json, keep_alive, None);
                        (200, answer)
                    }
                    Err(error) => response::backend_error(&error, "no such key", keep_alive),
                };
                self.answer(status, answer, keep_alive);
            }
            Some(Body::Skip { .. }) | None => {}
        }
        n
    }

    fn take_head(
        &mut self,
        data: &[u8],
        now: Instant,
        backend: &mut dyn Backend,
        http: &ServerStats,
    ) -> usize {
        // Look for the blank line, including a terminator split across two reads.
        let start = self.head.len().saturating_sub(3);
        let room = MAX_HEAD + 1 - self.head.len().min(MAX_HEAD);
        let take = data.len().min(room);
        if self.head_started.is_none() && take > 0 {
            self.head_started = Some(now);
        }
        self.head.extend_from_slice(&data[..take]);
        let Some(end) = self.head[start..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| start + p + 4)
        else {
            if self.head.len() > MAX_HEAD {
                self.refuse(Refusal::too_large("request head too large"));
            }
            return take;
        };
        if end > MAX_HEAD {
            self.refuse(Refusal::too_large("request head too large"));
            return take;
        }
        // Bytes past the head belong to the body or the next request.
        let extra = self.head.len() - end;
        let head = core::mem::take(&mut self.head);
        self.head_started = None;
        self.body_started = now;
        self.body_received = 0;
        self.dispatch(&head[..end], backend, http);
        take - extra
    }

    fn dispatch(&mut self, head: &[u8], backend: &mut dyn Backend, http: &ServerStats) {
        let request = match parse_head(head) {
            Ok(r) => r,
            Err(refusal) => return self.refuse(refusal),
        };
        let reads_body = request.route.reads_body();
        if request.expect_continue && request.body > 0 && reads_body {
            self.output.push(Output::Bytes {
                data: response::CONTINUE.to_vec(),
                sent: 0,
            });
        }
        // A client that waits for `100 Continue` and gets a final answer may or may not
        // send its body: where the next request starts is unknown.
        let keep = request.keep_alive && !(request.expect_continue && request.body > 0);
        match request.route {
            Route::Sink => {
                self.body = Some(Body::Sink {
                    hasher: Sha256::new(),
                    length: request.body,
                    remaining: request.body,
                    keep_alive: request.keep_alive,
                });
            }
            Route::KvPut(key) => {
                self.body = Some(Body::Put {
                    key,
                    // At most `MAX_VALUE`: the request was refused otherwise.
                    value: Vec::with_capacity(usize::try_from(request.body).unwrap_or(0)),
                    remaining: request.body,
                    keep_alive: request.keep_alive,
                });
            }
            Route::Status => {
                let json = backend.status().to_json(http);
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
            Route::File(path) => match backend.file_size(&path) {
                Ok(size) => {
                    let head = response::head(200, content_type(&path), size, keep, None);
                    self.answer(200, head, keep);
                    if size > 0 {
                        self.output.push(Output::File {
                            path,
                            next: 0,
                            end: size,
                        });
                    }
                }
                Err(error) => self.answer_error(&error, "no such file", keep),
            },
            Route::KvKeys => match backend.kv_keys() {
                Ok(keys) => {
                    let mut json = String::from("{\"keys\":[");
                    for (i, key) in keys.iter().enumerate() {
                        if i > 0 {
                            json.push(',');
                        }
                        response::json_string(&mut json, key);
                    }
                    json.push_str("]}");
                    let answer = response::with_body(200, "application/json", &json, keep, None);
                    self.answer(200, answer, keep);
                }
                Err(error) => self.answer_error(&error, "not found", keep),
            },
            Route::KvGet(key) => match backend.kv_get(&key) {
                Ok(value) => {
                    let answer =
                        response::with_bytes(200, "application/octet-stream", &value, keep, None);
                    self.answer(200, answer, keep);
                }
                Err(error) => self.answer_error(&error, "no such key", keep),
            },
            Route::KvDelete(key) => match backend.kv_delete(&key) {
                Ok(()) => {
                    let mut json = String::from("{\"key\":");
                    response::json_string(&mut json, &key);
                    json.push_str(",\"deleted\":true}");
                    let answer = response::with_body(200, "application/json", &json, keep, None);
                    self.answer(200, answer, keep);
                }
                Err(error) => self.answer_error(&error, "no such key", keep),
            },
            Route::NotFound => {
                self.answer(404, response::error(404, "no such path", keep, None), keep)
            }
            Route::MethodNotAllowed(allow) => self.answer(
                405,
                response::error(405, "method not allowed", keep, Some(allow)),
                keep,
            ),
        }
        if reads_body {
            if request.body == 0 {
                self.take_body(&[], backend);
            }
        } else if request.body > 0 {
            self.body = Some(Body::Skip {
                remaining: request.body,
            });
        }
    }

    fn answer_error(&mut self, error: &crate::BackendError, not_found: &str, keep_alive: bool) {
        let (status, answer) = response::backend_error(error, not_found, keep_alive);
        self.answer(status, answer, keep_alive);
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.head = Vec::new();
        self.head_started = None;
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

    /// Writes pending answer bytes into `buf`; returns how many. A file's bytes are read
    /// from `backend` here, as far as `buf` has room; if a read fails (or ends early) the
    /// answer is cut short: what was read is written, nothing more goes out, the connection
    /// wants to close and counts in [`ConnStats::aborted`].
    pub fn fill(&mut self, buf: &mut [u8], now: Instant, backend: &mut dyn Backend) -> usize {
        let mut written = 0;
        let mut aborted = false;
        while written < buf.len() && !aborted {
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
                Output::File { path, next, end } => {
                    let want = out
                        .len()
                        .min(usize::try_from(*end - *next).unwrap_or(usize::MAX));
                    let got = match backend.read_file(path, *next, &mut out[..want]) {
                        Ok(got) => got.min(want),
                        Err(_) => 0,
                    };
                    aborted = got < want;
                    *next += got as u64;
                    (got, *next == *end)
                }
            };
            written += n;
            if finished {
                self.output.remove(0);
            }
        }
        if aborted {
            self.output.clear();
            self.closing = true;
            self.stats.aborted += 1;
        }
        if written > 0 {
            self.last_activity = now;
            self.stats.bytes_out += written as u64;
        }
        written
    }
}
