//! `httpd`: the guest's HTTP/1.1 service over smoltcp, host-testable (time passed in).
//!
//! # API
//! A `?query` is stripped from every path before routing; `/files` and `/kv` are `/files/` and
//! `/kv/`. Storage is reached through the
//! caller's [`Backend`] ([`StatusOnly`] for a caller with none: the storage routes answer
//! `503`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | `200`, `application/json`: `uptime_ms`, `heap_bytes_in_use`, `grants_in_use`, `driver` (the network driver's counters), `storage` (the storage's counters), `http` (this service's counters, [`ServerStats`], with the deadlines' and `pool`: `open`, `max`, `reclaimed`, `syns_dropped`, and the socket buffers: `buffer`, `large` slots of `large_buffer`) |
//! | `GET /blob/<n>` | `200`, `application/octet-stream`, exactly `n` bytes (`n` ≤ [`MAX_BLOB`]) of the generator in [`blob`]: byte `i` is the top byte of `i × 0x9E3779B97F4A7C15` (mod 2^64); one `Range` taken |
//! | `POST /sink` with `Content-Length: n` | the body is read and dropped; `200`, `application/json`: `{"sha256":"<64 hex digits>","length":n}` |
//! | `POST /discard` with `Content-Length: n` | the body is read and dropped, unhashed (the work of a server that keeps nothing of an upload, for speed comparisons); `200`, `application/json`: `{"length":n}` |
//! | `GET /files/<path>` | the archive's file: `<path>` percent-decoded (a bad escape, a NUL, a `..` segment or a leading `/` get `400`), `index.html` appended to an empty path or one ending in `/`; `200` with its size, a `Content-Type` by extension ([`path::content_type`]) and a strong `ETag` ([`entity::file_etag`]), the body streamed as the socket has room; `304` if `If-None-Match` matches; one `Range` taken |
//! | `GET /kv/` | `200`, `application/json`: `{"keys":["a","b"]}`, every key in order |
//! | `GET /kv/<key>` | `200`, `application/octet-stream`: the value |
//! | `PUT /kv/<key>` with `Content-Length: n` | the body (`n` ≤ [`MAX_VALUE`]) is the value; once the store says it is durable, `200`, `application/json`: `{"key":"<key>","length":n}` |
//! | `DELETE /kv/<key>` | once durable, `200`, `application/json`: `{"key":"<key>","deleted":true}` |
//!
//! `HEAD` is taken on every `GET` route: the head `GET` would get, no body (`Allow` names
//! `GET, HEAD`). `Range` on `/files` and `/blob` ([`entity`]): a single range `bytes=a-b`,
//! `a-` or `-n` gets `206` with `Content-Range`, one that starts past the end `416` with
//! `Content-Range: bytes */<size>`; several ranges, another unit or a malformed value are
//! ignored (`200` with the whole, as RFC 9110 allows), as is a `Range` whose `If-Range` is not
//! the file's `ETag`. Every final answer carries `Date` when [`Backend::unix_time`] knows the
//! time.
//!
//! A key is percent-decoded (RFC 3986), then must be 1 to [`MAX_KEY`] bytes of
//! `A-Z a-z 0-9 - . _ ~`: a longer one gets `413`, any other (a bad escape too) `400`.
//!
//! Errors: a malformed request (request line, headers, `Content-Length`, a `Transfer-Encoding`,
//! which this service does not take, a `POST /sink` or `/discard` without a length, a bad blob size, a bad
//! file path or key) gets `400`; a `PUT /kv/<key>` without a length `411`; a head over
//! [`MAX_HEAD`] bytes, a body over [`MAX_BODY`] bytes, a value over [`MAX_VALUE`] bytes or a
//! key over [`MAX_KEY`] bytes `413`; an unknown path, file or key `404`; a known path with
//! another method `405` with `Allow`. The storage's own errors ([`BackendError`]): no storage
//! `503`, no room `507` (Insufficient Storage), a failure `500`, with its text as the
//! plain-text body. A request the storage keeps pending past [`Deadlines::storage`] gets
//! `503` (nothing of it is applied), except a put or delete the storage already has on its
//! way to the disk ([`Backend::kv_change_on_its_way`]), which lands when the disk answers:
//! `202 Accepted` (not done yet). After `400`, `411` and `413` the connection closes (where the next request
//! starts is unknown); after the others it stays open. A file read that fails once the head
//! went out closes the connection at once (the client sees a short body; counted in
//! [`ServerStats::aborted`]). `Expect: 100-continue` on a request whose body is read (`POST
//! /sink` or `/discard`, an accepted `PUT /kv/<key>`) is answered `100 Continue` before the body is read; any
//! other request with it and a body gets only its final answer, and the connection closes
//! after it (the client may or may not send the body). HTTP/1.1 connections stay open unless
//! the client sends `Connection: close` (HTTP/1.0 ones only with `Connection: keep-alive`);
//! requests may be pipelined. Deadlines ([`deadline`]): a head must arrive within
//! [`Deadlines::head`] of its first byte and a body keep [`Deadlines::body_rate`] (else `408`
//! and the connection closes), an idle connection closes after [`Deadlines::idle`], a client
//! that stops reading its answer is reset after [`Deadlines::send`].
//!
//! # Shape
//! [`conn::Connection`] is one connection's protocol as a pure state machine (bytes in, bytes
//! out, time passed in). [`server::Server`] holds [`Config::pool`] slots, each a smoltcp
//! socket that listens when free (smoltcp has no accept queue), gives each accepted one a
//! [`conn::Connection`], keeps the deadlines, and reclaims the least useful slot when a SYN
//! would find none listening; its module docs say what holds a slot in each TCP state and
//! why. [`pool::Pool::for_memory`] is the rule from a memory budget to the slots and their
//! buffers. [`server::Server::step`] is one turn of the event loop ([`ingress`] hands it the
//! frames one at a time). [`backend::Backend`] is what the caller gives the service to read
//! and keep; [`path`] checks the storage routes' paths and keys. [`address`] reads
//! `ip=a.b.c.d/len gw=a.b.c.d` or `ip=dhcp` from the command line and keeps the interface's
//! address (smoltcp's DHCPv4 client for `ip=dhcp`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod address;
pub mod backend;
pub mod blob;
pub mod conn;
pub mod date;
pub mod deadline;
pub mod entity;
pub mod ingress;
pub mod path;
pub mod pool;
pub mod request;
pub mod response;
pub mod server;
pub mod slot;
pub mod status;

#[cfg(test)]
mod tests;

pub use backend::{Backend, BackendError, StatusOnly};
pub use conn::Connection;
pub use deadline::Deadlines;
pub use pool::Pool;
pub use server::{Config, Server, ServerStats};
pub use status::Status;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (`POST /sink`, or a body sent to another path, skipped;
/// `PUT /kv/<key>` takes at most [`MAX_VALUE`]).
pub const MAX_BODY: u64 = 1 << 30;
/// Largest blob served.
pub const MAX_BLOB: u64 = 1 << 32;
/// Longest key of `/kv/<key>` (the storage crate's limit).
pub const MAX_KEY: usize = 128;
/// Largest value of `PUT /kv/<key>` (the storage crate's limit).
pub const MAX_VALUE: usize = 16 * 1024;
