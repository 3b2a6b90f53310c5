//! Copying bytes through the two 1 KiB xenstore rings of `xenstore_domain_interface`.
//!
//! The index and barrier rules are Linux's (`xb_write`/`xb_read`): indexes are free-running
//! `u32`s masked with `MASK_XENSTORE_IDX`; `prod - cons` above the ring size means the other
//! side corrupted the page, and the ring is refused.

use super::error::TransportError;
use super::transport::{Wake, XsTransport};
use crate::time::Instant;
use abi::io::xs_wire::{XENSTORE_RING_SIZE, mask_xenstore_idx};
use core::sync::atomic::{Ordering, fence};

const RING: usize = XENSTORE_RING_SIZE as usize;

/// Volatile access to the xenstore page (implemented by the kernel; faked in tests).
///
/// Offsets are slot numbers below 1024, and `offset + len <= 1024` for the chunk calls.
pub trait XenstoreRing {
    /// Reads `req_cons` (written by the daemon).
    fn req_cons(&self) -> u32;
    /// Reads `req_prod` (ours).
    fn req_prod(&self) -> u32;
    /// Writes `req_prod`.
    fn set_req_prod(&self, value: u32);
    /// Reads `rsp_cons` (ours).
    fn rsp_cons(&self) -> u32;
    /// Writes `rsp_cons`.
    fn set_rsp_cons(&self, value: u32);
    /// Reads `rsp_prod` (written by the daemon).
    fn rsp_prod(&self) -> u32;
    /// Copies `data` into `req[offset..offset + data.len()]` with volatile writes.
    fn write_req(&self, offset: usize, data: &[u8]);
    /// Copies `rsp[offset..offset + buf.len()]` into `buf` with volatile reads.
    fn read_rsp(&self, offset: usize, buf: &mut [u8]);
    /// A full memory barrier (Linux's `virt_mb`).
    fn full_barrier(&self) {
        fence(Ordering::SeqCst);
    }
    /// A read barrier (Linux's `virt_rmb`).
    fn read_barrier(&self) {
        fence(Ordering::Acquire);
    }
    /// A write barrier (Linux's `virt_wmb`).
    fn write_barrier(&self) {
        fence(Ordering::Release);
    }
}

/// Bytes in use between `cons` and `prod`, or an error if the indexes are impossible.
fn used(cons: u32, prod: u32) -> Result<usize, TransportError> {
    let used = prod.wrapping_sub(cons);
    if used > XENSTORE_RING_SIZE {
        return Err(TransportError::BadRingIndexes);
    }
    Ok(used as usize)
}

/// Writes as much of `data` as fits into the request ring; returns the count.
pub fn ring_write<R: XenstoreRing + ?Sized>(
    ring: &R,
    data: &[u8],
) -> Result<usize, TransportError> {
    let cons = ring.req_cons();
    let prod = ring.req_prod();
    let space = RING - used(cons, prod)?;
    let n = space.min(data.len());
    if n == 0 {
        return Ok(0);
    }
    // Write the data only after reading the consumer index.
    ring.full_barrier();
    let start = mask_xenstore_idx(prod) as usize;
    let first = n.min(RING - start);
    ring.write_req(start, &data[..first]);
    if first < n {
        ring.write_req(0, &data[first..n]);
    }
    // The daemon must not see the new producer before the data.
    ring.write_barrier();
    // n <= 1024, so the cast is lossless.
    ring.set_req_prod(prod.wrapping_add(n as u32));
    Ok(n)
}

/// Reads up to `buf.len()` bytes from the response ring; returns the count.
pub fn ring_read<R: XenstoreRing + ?Sized>(
    ring: &R,
    buf: &mut [u8],
) -> Result<usize, TransportError> {
    let cons = ring.rsp_cons();
    let prod = ring.rsp_prod();
    let n = used(cons, prod)?.min(buf.len());
    if n == 0 {
        return Ok(0);
    }
    // Read the data only after reading the producer index.
    ring.read_barrier();
    let start = mask_xenstore_idx(cons) as usize;
    let first = n.min(RING - start);
    ring.read_rsp(start, &mut buf[..first]);
    if first < n {
        ring.read_rsp(0, &mut buf[first..n]);
    }
    // Finish reading the data before handing the space back.
    ring.full_barrier();
    // n <= 1024, so the cast is lossless.
    ring.set_rsp_cons(cons.wrapping_add(n as u32));
    Ok(n)
}

/// The four ring indexes, read once each (for diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingIndexes {
    /// `req_cons`: request bytes the daemon has taken.
    pub req_cons: u32,
    /// `req_prod`: request bytes we have written.
    pub req_prod: u32,
    /// `rsp_cons`: response bytes we have taken.
    pub rsp_cons: u32,
    /// `rsp_prod`: response bytes the daemon has written.
    pub rsp_prod: u32,
}

impl RingIndexes {
    /// Reads the indexes of `ring`.
    pub fn read<R: XenstoreRing + ?Sized>(ring: &R) -> Self {
        Self {
            req_cons: ring.req_cons(),
            req_prod: ring.req_prod(),
            rsp_cons: ring.rsp_cons(),
            rsp_prod: ring.rsp_prod(),
        }
    }
}

/// The platform half of a ring transport: the store event channel and blocking.
pub trait RingEvents {
    /// Notifies the daemon through the store event channel (`EVTCHNOP_send`).
    fn notify(&mut self);
    /// The current time (see [`XsTransport::now`]).
    fn now(&mut self) -> Instant;
    /// Blocks until the store event channel fires or `deadline` passes; see
    /// [`XsTransport::wait`] for the rules.
    fn wait(&mut self, deadline: Instant) -> Wake;
    /// Told when a request got no reply by its deadline, with the ring's indexes then (see
    /// [`XsTransport::request_timed_out`]); does nothing by default.
    fn request_timed_out(&mut self, indexes: RingIndexes, type_: u32, req_id: u32, inbox: usize) {
        let _ = (indexes, type_, req_id, inbox);
    }
}

/// An [`XsTransport`] over the shared rings: the kernel supplies the page accessor and events.
#[derive(Debug)]
pub struct RingTransport<R, E> {
    ring: R,
    events: E,
}

impl<R: XenstoreRing, E: RingEvents> RingTransport<R, E> {
    /// Wraps a ring accessor and its event channel.
    pub const fn new(ring: R, events: E) -> Self {
        Self { ring, events }
    }

    /// The ring accessor.
    pub fn ring(&self) -> &R {
        &self.ring
    }

    /// The event side.
    pub fn events_mut(&mut self) -> &mut E {
        &mut self.events
    }
}

impl<R: XenstoreRing, E: RingEvents> XsTransport for RingTransport<R, E> {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        let n = ring_write(&self.ring, data)?;
        if n > 0 {
            self.events.notify();
        }
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = ring_read(&self.ring, buf)?;
        if n > 0 {
            // The daemon may be waiting for space in the response ring.
            self.events.notify();
        }
        Ok(n)
    }

    fn now(&mut self) -> Instant {
        self.events.now()
    }

    fn wait(&mut self, deadline: Instant) -> Result<Wake, TransportError> {
        Ok(self.events.wait(deadline))
    }

    fn request_timed_out(&mut self, type_: u32, req_id: u32, inbox: usize) {
        let indexes = RingIndexes::read(&self.ring);
        self.events.request_timed_out(indexes, type_, req_id, inbox);
    }
}
