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
//! The storage is asked without waiting: a storage route whose backend answers
//! [`BackendError::Pending`] (the disk has the request) leaves the connection waiting, and
//! [`Connection::resume`] asks again on later turns; a file's bytes the disk has not delivered
//! yet are asked for again on the next [`Connection::fill`]. Either way the caller's loop goes
//! on serving the other connections, and [`Deadlines::storage`] bounds the wait.
//!
//! [`MAX_VALUE`]: crate::MAX_VALUE

use crate::MAX_HEAD;
use crate::backend::{Backend, BackendError};
use crate::blob;
use crate::date::http_date;
use crate::deadline::{Deadlines, Expiry};
use crate::entity::{ByteRange, file_etag, if_range_holds, none_match};
use crate::path::content_type;
use crate::request::{Refusal, Request, Route, parse_head};
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
    /// Reading a `POST /sink` upload (hashed) or a `POST /discard` one (`hasher` `None`).
    Sink {
        hasher: Option<Sha256>,
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

/// A storage request whose backend answered [`BackendError::Pending`], to be asked again.
#[derive(Debug)]
enum Waiting {
    /// `PUT /kv/<key>` with its whole value.
    Put {
        key: String,
        value: Vec<u8>,
        keep_alive: bool,
    },
    /// `GET /kv/<key>`.
    Get { key: String, keep_alive: bool },
    /// `DELETE /kv/<key>`.
    Delete { key: String, keep_alive: bool },
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
    /// The request being answered is `HEAD`.
    head_only: bool,
    /// Its answers' `Date` header line, if the time is known.
    date: Option<String>,
    /// A storage request waiting on the disk.
    waiting: Option<Waiting>,
    /// Since when the storage has kept the request (or the file bytes due next) pending.
    pending_since: Option<Instant>,
    stats: ConnStats,
}

/// What an answer of `/blob` or `/files` streams.
enum Source {
    Blob,
    File(String),
}

/// What a request says about the range it wants.
struct Ranged<'a> {
    range: Option<ByteRange>,
    if_range: Option<&'a str>,
    etag: Option<&'a str>,
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
            head_only: false,
            date: None,
            waiting: None,
            pending_since: None,
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

    /// Whether the connection waits on the storage: a request not answered yet, or file
    /// bytes the disk has not delivered yet.
    pub fn is_waiting(&self) -> bool {
        self.pending_since.is_some()
    }

    /// The next deadline this connection meets by itself, and which (the answer's own
    /// deadline, [`Deadlines::send`], depends on the socket: the server keeps it). None while
    /// an answer is queued or the connection is closing.
    pub fn due(&self, deadlines: &Deadlines) -> Option<(Instant, Expiry)> {
        if let Some(since) = self.pending_since {
            Some((since + deadlines.storage, Expiry::Storage))
        } else if self.closing {
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
        if self.closing || self.body.is_some() || !self.output.is_empty() || self.is_waiting() {
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
        self.head_only = false;
        self.date = None;
        self.answer(
            408,
            response::error(408, "request timeout", false, ""),
            false,
        );
    }

    /// The storage kept the connection waiting past [`Deadlines::storage`]: a request is
    /// answered `503` (the connection stays open if it may), or `202` if it is a change
    /// `backend` already has on its way to the disk ([`Backend::kv_change_on_its_way`]: it
    /// will land, so `503` would not be true); an answer already under way (a file whose next
    /// bytes never came) is cut short and the connection wants to close.
    pub fn storage_timed_out(&mut self, backend: &mut dyn Backend) {
        self.pending_since = None;
        let on_its_way = match &self.waiting {
            Some(Waiting::Put { key, value, .. }) => backend.kv_change_on_its_way(key, Some(value)),
            Some(Waiting::Delete { key, .. }) => backend.kv_change_on_its_way(key, None),
            _ => false,
        };
        match self.waiting.take() {
            Some(Waiting::Put { keep_alive, .. } | Waiting::Delete { keep_alive, .. })
                if on_its_way =>
            {
                let answer = response::error(202, response::ACCEPTED_ON_ITS_WAY, keep_alive, "");
                self.answer(202, answer, keep_alive);
            }
            Some(
                Waiting::Put { keep_alive, .. }
                | Waiting::Get { keep_alive, .. }
                | Waiting::Delete { keep_alive, .. },
            ) => {
                self.answer_error(&BackendError::Pending, "", keep_alive);
            }
            None => {
                self.output.clear();
                self.closing = true;
                self.stats.aborted += 1;
            }
        }
    }

    /// Asks the storage again for a request it kept pending; queues the answer once it
    /// comes. Returns whether the connection still waits.
    pub fn resume(&mut self, now: Instant, backend: &mut dyn Backend) -> bool {
        let Some(waiting) = self.waiting.take() else {
            return self.is_waiting();
        };
        match waiting {
            Waiting::Put {
                key,
                value,
                keep_alive,
            } => self.put(key, value, keep_alive, now, backend),
            Waiting::Get { key, keep_alive } => self.kv_get(key, keep_alive, now, backend),
            Waiting::Delete { key, keep_alive } => self.kv_delete(key, keep_alive, now, backend),
        }
        self.is_waiting()
    }

    /// Notes that the storage kept something pending at `now` (the deadline runs from the
    /// first time).
    fn pending(&mut self, now: Instant) {
        self.pending_since.get_or_insert(now);
    }

    /// `PUT /kv/<key>` with its whole value: answered once the backend stored it.
    fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        keep_alive: bool,
        now: Instant,
        backend: &mut dyn Backend,
    ) {
        let (status, answer) = match backend.kv_put(&key, &value) {
            Ok(()) => {
                let mut json = String::from("{\"key\":");
                response::json_string(&mut json, &key);
                let _ = write!(json, ",\"length\":{}}}", value.len());
                let answer = response::with_body(200, "application/json", &json, keep_alive, "");
                (200, answer)
            }
            Err(BackendError::Pending) => {
                self.pending(now);
                self.waiting = Some(Waiting::Put {
                    key,
                    value,
                    keep_alive,
                });
                return;
            }
            Err(error) => response::backend_error(&error, "no such key", keep_alive),
        };
        self.pending_since = None;
        self.answer(status, answer, keep_alive);
    }

    /// `GET /kv/<key>`.
    fn kv_get(&mut self, key: String, keep: bool, now: Instant, backend: &mut dyn Backend) {
        match backend.kv_get(&key) {
            Ok(value) => {
                self.pending_since = None;
                let answer =
                    response::with_bytes(200, "application/octet-stream", &value, keep, "");
                self.answer(200, answer, keep);
            }
            Err(BackendError::Pending) => {
                self.pending(now);
                self.waiting = Some(Waiting::Get {
                    key,
                    keep_alive: keep,
                });
            }
            Err(error) => {
                self.pending_since = None;
                self.answer_error(&error, "no such key", keep);
            }
        }
    }

    /// `DELETE /kv/<key>`.
    fn kv_delete(&mut self, key: String, keep: bool, now: Instant, backend: &mut dyn Backend) {
        match backend.kv_delete(&key) {
            Ok(()) => {
                self.pending_since = None;
                let mut json = String::from("{\"key\":");
                response::json_string(&mut json, &key);
                json.push_str(",\"deleted\":true}");
                let answer = response::with_body(200, "application/json", &json, keep, "");
                self.answer(200, answer, keep);
            }
            Err(BackendError::Pending) => {
                self.pending(now);
                self.waiting = Some(Waiting::Delete {
                    key,
                    keep_alive: keep,
                });
            }
            Err(error) => {
                self.pending_since = None;
                self.answer_error(&error, "no such key", keep);
            }
        }
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
                self.take_body(rest, now, backend)
            } else if !self.output.is_empty() || self.waiting.is_some() {
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

    fn take_body(&mut self, data: &[u8], now: Instant, backend: &mut dyn Backend) -> usize {
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
            Body::Sink {
                hasher: Some(hasher),
                ..
            } => hasher.update(&data[..n]),
            Body::Sink { hasher: None, .. } => {}
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
                let json = match hasher {
                    Some(hasher) => {
                        let mut hex = String::with_capacity(64);
                        for b in hasher.finalize() {
                            let _ = write!(hex, "{b:02x}");
                        }
                        format!("{{\"sha256\":\"{hex}\",\"length\":{length}}}")
                    }
                    None => format!("{{\"length\":{length}}}"),
                };
                self.answer(
                    200,
                    response::with_body(200, "application/json", &json, keep_alive, ""),
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
                self.put(key, value, keep_alive, now, backend);
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
                self.stamp(backend);
                self.refuse(Refusal::too_large("request head too large"));
            }
            return take;
        };
        if end > MAX_HEAD {
            self.stamp(backend);
            self.refuse(Refusal::too_large("request head too large"));
            return take;
        }
        // Bytes past the head belong to the body or the next request.
        let extra = self.head.len() - end;
        let head = core::mem::take(&mut self.head);
        self.head_started = None;
        self.stamp(backend);
        self.body_started = now;
        self.body_received = 0;
        self.dispatch(&head[..end], now, backend, http);
        take - extra
    }

    /// The `Date` of the answers to the request now complete.
    fn stamp(&mut self, backend: &mut dyn Backend) {
        self.date = backend
            .unix_time()
            .map(|secs| format!("Date: {}\r\n", http_date(secs)));
    }

    fn dispatch(
        &mut self,
        head: &[u8],
        now: Instant,
        backend: &mut dyn Backend,
        http: &ServerStats,
    ) {
        self.head_only = false;
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
        let Request {
            route,
            body: body_length,
            keep_alive,
            head_only,
            range,
            if_none_match,
            if_range,
            ..
        } = request;
        self.head_only = head_only;
        match route {
            Route::Sink | Route::Discard => {
                let hashed = route == Route::Sink;
                self.body = Some(Body::Sink {
                    hasher: hashed.then(Sha256::new),
                    length: body_length,
                    remaining: body_length,
                    keep_alive,
                });
            }
            Route::KvPut(key) => {
                self.body = Some(Body::Put {
                    key,
                    // At most `MAX_VALUE`: the request was refused otherwise.
                    value: Vec::with_capacity(usize::try_from(body_length).unwrap_or(0)),
                    remaining: body_length,
                    keep_alive,
                });
            }
            Route::Status => {
                let json = backend.status().to_json(http);
                self.answer(
                    200,
                    response::with_body(200, "application/json", &json, keep, ""),
                    keep,
                );
            }
            Route::Blob(size) => {
                let ranged = Ranged {
                    range,
                    if_range: if_range.as_deref(),
                    etag: None,
                };
                self.answer_entity(Source::Blob, size, &ranged, keep);
            }
            Route::File(path) => match backend.file_size(&path) {
                Ok(size) => {
                    let etag = file_etag(&path, size, backend.file_version(&path));
                    if if_none_match.is_some_and(|v| none_match(&v, &etag)) {
                        let extra = format!("ETag: {etag}\r\n");
                        self.answer(304, response::not_modified(keep, &extra), keep);
                    } else {
                        let ranged = Ranged {
                            range,
                            if_range: if_range.as_deref(),
                            etag: Some(&etag),
                        };
                        self.answer_entity(Source::File(path), size, &ranged, keep);
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
                    let answer = response::with_body(200, "application/json", &json, keep, "");
                    self.answer(200, answer, keep);
                }
                Err(error) => self.answer_error(&error, "not found", keep),
            },
            Route::KvGet(key) => self.kv_get(key, keep, now, backend),
            Route::KvDelete(key) => self.kv_delete(key, keep, now, backend),
            Route::NotFound => {
                self.answer(404, response::error(404, "no such path", keep, ""), keep)
            }
            Route::MethodNotAllowed(allow) => self.answer(
                405,
                response::error(
                    405,
                    "method not allowed",
                    keep,
                    &format!("Allow: {allow}\r\n"),
                ),
                keep,
            ),
        }
        if reads_body {
            if body_length == 0 {
                self.take_body(&[], now, backend);
            }
        } else if body_length > 0 {
            self.body = Some(Body::Skip {
                remaining: body_length,
            });
        }
    }

    /// Answers `size` bytes of `source`: whole (`200`), or the one range asked for (`206`;
    /// `416` if it selects nothing), or the head alone for `HEAD`.
    fn answer_entity(&mut self, source: Source, size: u64, ranged: &Ranged<'_>, keep: bool) {
        let mut extra = String::from("Accept-Ranges: bytes\r\n");
        if let Some(etag) = ranged.etag {
            let _ = write!(extra, "ETag: {etag}\r\n");
        }
        // `Range` means nothing to `HEAD`, and an `If-Range` that does not hold asks for the
        // whole.
        let range = ranged.range.filter(|_| {
            !self.head_only
                && ranged
                    .if_range
                    .is_none_or(|v| if_range_holds(v, ranged.etag))
        });
        let (status, start, end) = match range.map(|r| r.resolve(size)) {
            None => (200, 0, size),
            Some(Some((start, end))) => {
                let _ = write!(extra, "Content-Range: bytes {start}-{}/{size}\r\n", end - 1);
                (206, start, end)
            }
            Some(None) => {
                let _ = write!(extra, "Content-Range: bytes */{size}\r\n");
                let answer = response::error(416, "range not satisfiable", keep, &extra);
                return self.answer(416, answer, keep);
            }
        };
        let content_type = match &source {
            Source::Blob => "application/octet-stream",
            Source::File(path) => content_type(path),
        };
        let head = response::head(status, content_type, end - start, keep, &extra);
        self.answer(status, head, keep);
        if self.head_only || start == end {
            return;
        }
        self.output.push(match source {
            Source::Blob => Output::Blob { next: start, end },
            Source::File(path) => Output::File {
                path,
                next: start,
                end,
            },
        });
    }

    fn answer_error(&mut self, error: &crate::BackendError, not_found: &str, keep_alive: bool) {
        let (status, answer) = response::backend_error(error, not_found, keep_alive);
        self.answer(status, answer, keep_alive);
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.head = Vec::new();
        self.head_started = None;
        self.head_only = false;
        self.answer(
            refusal.status,
            response::error(refusal.status, refusal.reason, false, ""),
            false,
        );
    }

    /// Queues an answer (`Date` added after the status line when the time is known, the
    /// body cut off for `HEAD`).
    fn answer(&mut self, status: u16, mut head: Vec<u8>, keep_alive: bool) {
        if let Some(date) = &self.date
            && let Some(line_end) = head.windows(2).position(|w| w == b"\r\n")
        {
            head.splice(line_end + 2..line_end + 2, date.bytes());
        }
        if self.head_only
            && let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n")
        {
            head.truncate(end + 4);
        }
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
                        Ok(got) => {
                            self.pending_since = None;
                            got.min(want)
                        }
                        Err(BackendError::Pending) => {
                            // The disk has it: asked again on a later fill.
                            self.pending_since.get_or_insert(now);
                            break;
                        }
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
