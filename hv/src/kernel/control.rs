//! The host's control lines on COM1's input ([`crate::dom0::control`]), polled by the machine
//! loop: each finished line is carried out on the store as domain 0 and answered on hv's log.
//! Also what the control channel on COM2 needs beside the machine: the `keep` option (hv
//! outlives its domains) and the tail of each domain's console (`xl console`).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use xenstored::Store;

use crate::dom0::control::OutputRing;

use crate::dom0::control::{LineBuffer, Request};
use crate::hvlog;

use super::serial;

/// Bytes taken per poll, so a host that floods the port cannot hold the loop.
const BYTES_PER_POLL: usize = 64;

/// The line being gathered.
#[derive(Default)]
pub struct Control {
    line: LineBuffer,
}

impl Control {
    /// Takes what the host sent; returns whether the store changed (watch events to deliver).
    pub fn poll(&mut self, store: &mut Store) -> bool {
        let mut changed = false;
        for _ in 0..BYTES_PER_POLL {
            let Some(byte) = serial::read_byte() else {
                break;
            };
            match self.line.push(byte) {
                None => {}
                Some(Err(e)) => hvlog!("control: refused: {e}"),
                Some(Ok(request)) => changed |= apply(store, &request),
            }
        }
        changed
    }
}

/// Carries out one request; true if it wrote.
fn apply(store: &mut Store, request: &Request) -> bool {
    let domid = request.domid();
    if store
        .read(&alloc::format!("/local/domain/{domid}/domid"))
        .is_none()
    {
        hvlog!("control: no domain {domid}");
        return false;
    }
    let Some((path, value)) = request.store_write() else {
        match request {
            Request::NetbackStats { domid, tag } => super::net::ask_stats(*domid, tag),
            Request::StallDisk {
                domid,
                vdev,
                on: true,
            } => {
                super::blk::set_stalled(*domid, vdev, true);
                hvlog!(
                    "control: d{domid}: {vdev} stalled: its back end leaves the ring alone \
                     until `stall-disk {domid} {vdev} off`"
                );
            }
            Request::StallDisk {
                domid,
                vdev,
                on: false,
            } => {
                super::blk::set_stalled(*domid, vdev, false);
                hvlog!("control: d{domid}: {vdev} served again");
            }
            Request::Shutdown { .. } | Request::XsWrite { .. } => {}
        }
        return false;
    };
    match store.write(&path, value.as_bytes()) {
        Ok(()) => {
            hvlog!("control: d{domid}: {path} = {value}");
            true
        }
        Err(e) => {
            hvlog!("control: d{domid}: writing {path}: {e}");
            false
        }
    }
}

/// hv's `keep` option: the run goes on when no domain is left (until `shutdown-hv`).
static KEEP: AtomicBool = AtomicBool::new(false);

/// Sets the `keep` option.
pub fn set_keep() {
    KEEP.store(true, Ordering::Relaxed);
}

/// Whether hv outlives its domains.
pub fn keep() -> bool {
    KEEP.load(Ordering::Relaxed)
}

/// Console bytes kept per domain for `xl console`.
const CONSOLE_KEPT: usize = 16 * 1024;

/// The tail of each live domain's console, by domain id.
static CONSOLES: spin::Mutex<Vec<(u16, OutputRing)>> = spin::Mutex::new(Vec::new());

/// Starts keeping domain `domid`'s console (a new domain).
pub fn console_open(domid: u16) {
    let mut c = CONSOLES.lock();
    c.retain(|(d, _)| *d != domid);
    c.push((domid, OutputRing::new(CONSOLE_KEPT)));
}

/// Forgets domain `domid`'s console (the domain is gone).
pub fn console_close(domid: u16) {
    CONSOLES.lock().retain(|(d, _)| *d != domid);
}

/// A line domain `domid`'s console printed (`(d<id>) ` prefix and all: the prefix is not
/// kept, as `xl console` shows the guest's own bytes). Never waits for the lock.
pub fn console_tap(domid: u16, bytes: &[u8]) {
    let Some(mut c) = CONSOLES.try_lock() else {
        return;
    };
    let Some((_, ring)) = c.iter_mut().find(|(d, _)| *d == domid) else {
        return;
    };
    let body = match bytes.iter().position(|&b| b == b' ') {
        Some(i) if bytes.starts_with(b"(d") && bytes.get(i - 1) == Some(&b')') => {
            bytes.get(i + 1..).unwrap_or_default()
        }
        _ => bytes,
    };
    ring.push(body);
}

/// Up to `max` bytes of domain `domid`'s console from offset `from`.
pub fn console_read(domid: u16, from: u64, max: usize) -> hvctl::Response {
    match CONSOLES.lock().iter().find(|(d, _)| *d == domid) {
        Some((_, ring)) => ring.read(from, max),
        None => hvctl::Response::Error(alloc::format!("domain {domid} has no console")),
    }
}
