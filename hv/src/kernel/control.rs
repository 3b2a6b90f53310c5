//! The host's control lines on COM1's input ([`crate::dom0::control`]), polled by the machine
//! loop: each finished line is carried out on the store as domain 0 and answered on hv's log.

use xenstored::Store;

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
    let (path, value) = request.store_write();
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
