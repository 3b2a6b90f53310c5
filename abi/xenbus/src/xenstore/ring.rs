//! Copying bytes through the two 1 KiB xenstore rings of `xenstore_domain_interface`.
//!
//! The index arithmetic is [`abi::byte_ring`] (free-running `u32`s masked with
//! `MASK_XENSTORE_IDX`; `prod - cons` above the ring size means the other side corrupted the
//! page, and the ring is refused); the barrier rules are Linux's (`xb_write`/`xb_read`).
#![warn(clippy::arithmetic_side_effects)]

use super::error::TransportError;
use super::transport::{Wake, XsTransport};
use crate::time::Instant;
use abi::byte_ring::ByteRing;
use abi::io::xs_wire::XENSTORE_RING_SIZE;
use core::sync::atomic::{Ordering, fence};

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

/// The geometry of both xenstore rings.
const RING: ByteRing = match ByteRing::new(XENSTORE_RING_SIZE) {
    Some(ring) => ring,
    None => panic!("XENSTORE_RING_SIZE is a power of two"),
};

/// Writes as much of `data` as fits into the request ring; returns the count.
pub fn ring_write<R: XenstoreRing + ?Sized>(
    ring: &R,
    data: &[u8],
) -> Result<usize, TransportError> {
    let cons = ring.req_cons();
    let prod = ring.req_prod();
    let t = RING
        .produce(cons, prod, data.len())
        .map_err(|_| TransportError::BadRingIndexes)?;
    if t.len == 0 {
        return Ok(0);
    }
    // Write the data only after reading the consumer index.
    ring.full_barrier();
    let (head, tail) = data[..t.len].split_at(t.first.len());
    ring.write_req(t.first.start, head);
    if !tail.is_empty() {
        ring.write_req(t.second.start, tail);
    }
    // The daemon must not see the new producer before the data.
    ring.write_barrier();
    ring.set_req_prod(t.new_index);
    Ok(t.len)
}

/// Reads up to `buf.len()` bytes from the response ring; returns the count.
pub fn ring_read<R: XenstoreRing + ?Sized>(
    ring: &R,
    buf: &mut [u8],
) -> Result<usize, TransportError> {
    let cons = ring.rsp_cons();
    let prod = ring.rsp_prod();
    let t = RING
        .consume(cons, prod, buf.len())
        .map_err(|_| TransportError::BadRingIndexes)?;
    if t.len == 0 {
        return Ok(0);
    }
    // Read the data only after reading the producer index.
    ring.read_barrier();
    let (head, tail) = buf[..t.len].split_at_mut(t.first.len());
    ring.read_rsp(t.first.start, head);
    if !tail.is_empty() {
        ring.read_rsp(t.second.start, tail);
    }
    // Finish reading the data before handing the space back.
    ring.full_barrier();
    ring.set_rsp_cons(t.new_index);
    Ok(t.len)
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
