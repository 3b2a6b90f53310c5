//! `httpd`: the guest's HTTP/1.1 service over smoltcp, host-testable (time passed in).
//!
//! # API
//! | request | answer |
//! |---|---|
//! | `GET /` | `200`, `application/json`: `uptime_ms`, `heap_bytes_in_use`, `grants_in_use`, `driver` (the network driver's counters), `http` (this service's counters) |
//! | `GET /blob/<n>` | `200`, `application/octet-stream`, exactly `n` bytes (`n` ≤ [`MAX_BLOB`]) of the generator in [`blob`]: byte `i` is the top byte of `i × 0x9E3779B97F4A7C15` (mod 2^64) |
//! | `POST /sink` with `Content-Length: n` | the body is read and dropped; `200`, `application/json`: `{"sha256":"<64 hex digits>","length":n}` |
//!
//! Errors: a malformed request (request line, headers, `Content-Length`, a `Transfer-Encoding`,
//! which this service does not take, a `POST /sink` without a length, a bad blob size) gets
//! `400`; a head over [`MAX_HEAD`] bytes or a body over [`MAX_BODY`] bytes gets `413`; an
//! unknown path `404`; a known path with another method `405` with `Allow`. After `400` and
//! `413` the connection closes (where the next request starts is unknown); after the others it
//! stays open. HTTP/1.1 connections stay open unless the client sends `Connection: close`
//! (HTTP/1.0 ones only with `Connection: keep-alive`); requests may be pipelined; an idle
//! connection closes after [`Config::idle_timeout`].
//!
//! # Shape
//! [`conn::Connection`] is one connection's protocol as a pure state machine (bytes in, bytes
//! out, time passed in). [`server::Server`] runs [`Config::listeners`] listening smoltcp
//! sockets (at least 20: smoltcp has no backlog, and a socket that closed first stays in
//! TIME-WAIT), gives each accepted one a [`conn::Connection`], and re-listens when it is
//! closed. [`server::Server::step`] is one turn of the event loop. [`address`] reads
//! `ip=a.b.c.d/len gw=a.b.c.d` or `ip=dhcp` from the command line and keeps the interface's
//! address (smoltcp's DHCPv4 client for `ip=dhcp`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod address;
pub mod backend;
pub mod blob;
pub mod conn;
pub mod path;
pub mod request;
pub mod response;
pub mod server;
pub mod status;

#[cfg(test)]
mod tests;

pub use backend::{Backend, BackendError, StatusOnly};
pub use conn::Connection;
pub use server::{Config, Server, ServerStats};
pub use status::Status;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (`POST /sink`, or a body sent to another path, skipped).
pub const MAX_BODY: u64 = 1 << 30;
/// Largest blob served.
pub const MAX_BLOB: u64 = 1 << 32;
/// Longest key of `/kv/<key>` (the storage crate's limit).
pub const MAX_KEY: usize = 128;
/// Largest value of `PUT /kv/<key>` (the storage crate's limit).
pub const MAX_VALUE: usize = 16 * 1024;
