//! Domain 0's xenstored connection layer: one domain's xenstore page (`xs_wire.h`'s
//! `xenstore_domain_interface`) served by the [`xenstored`] crate's [`Store`].
//!
//! [`XsConnection::service`] reads the bytes the guest put in the request ring, frames them
//! into messages (16-byte header, then `len` bytes of payload), answers each with
//! [`Store::handle`], and writes the replies, then the watch events the request caused, into
//! the response ring. What does not fit waits in a per-connection queue bounded by
//! [`MAX_QUEUED_BYTES`]: while replies fill it no new request is read (the guest's ring stays
//! full, as with a slow C xenstored), and a watch event that does not fit is dropped and
//! counted (C xenstored 4.17 also drops a domain's watch events beyond its quota).
//!
//! The connection's part of C xenstored 4.17's quotas (C `domain_can_read`): no request is
//! read while [`xenstored::quota::REQUESTS_OUTSTANDING`] (20) replies wait in the queue, nor
//! while the store charges the domain its hard memory quota or more
//! ([`Store::memory_hard_exceeded`]); the guest's requests then wait in its ring. Unlike C, a
//! request whose watch events wait in another domain's queue does not count as outstanding.
//!
//! Several domains share one [`Store`], each with its own `XsConnection` and page. A watch
//! event one domain's request (or the toolstack, as domain 0) caused for another waits in
//! the store until that domain's connection is served: [`XsConnection::service`] queues it
//! with the domain's own replies, [`XsConnection::deliver_events`] moves it into the ring
//! without reading a request.
//!
//! The page is shared with the guest, so its indexes are allegations: impossible indexes
//! set the page's `error` to `XENSTORE_ERROR_RINGIDX`, a payload over
//! `XENSTORE_PAYLOAD_MAX` sets `XENSTORE_ERROR_PROTO`; either stops the connection (C
//! xenstored ignores such a connection from then on). The guest's `connection =
//! XENSTORE_RECONNECT` is honoured as `docs/misc/xenstore-ring.txt` says: queued bytes and a
//! partial request are dropped, the indexes reset to 0, `error` cleared and `connection` set
//! back to `XENSTORE_CONNECTED`. Watches and transactions of the domain are kept (C resets
//! the connection's; not done here yet).
#![warn(clippy::arithmetic_side_effects)]

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{Ordering, fence};

use abi::byte_ring::ByteRing;
use abi::io::xs_wire::{
    XENSTORE_CONNECTED, XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX,
    XENSTORE_RECONNECT, XENSTORE_RING_SIZE, XENSTORE_SERVER_FEATURE_ERROR,
    XENSTORE_SERVER_FEATURE_RECONNECTION, XS_ERROR, XS_WATCH_EVENT, XenstoreDomainInterface,
    XsdSockmsg,
};
use xenstored::quota::REQUESTS_OUTSTANDING;
use xenstored::{Domid, Store};

/// The server features Xen 4.17's C xenstored advertises in `server_features`:
/// reconnection and the `error` field.
pub const SERVER_FEATURES: u32 =
    XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR;

/// Most bytes (headers included) of replies and watch events queued for one connection
/// beyond what the response ring holds.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024;

/// The largest message on the wire: a header and `XENSTORE_PAYLOAD_MAX` bytes.
const MAX_MESSAGE: usize = XsdSockmsg::SIZE + abi::io::xs_wire::XENSTORE_PAYLOAD_MAX as usize;

const RING: ByteRing = match ByteRing::new(XENSTORE_RING_SIZE) {
    Some(r) => r,
    None => panic!("XENSTORE_RING_SIZE is a power of two"),
};

const REQ: usize = offset_of!(XenstoreDomainInterface, req);
const RSP: usize = offset_of!(XenstoreDomainInterface, rsp);
const REQ_CONS: usize = offset_of!(XenstoreDomainInterface, req_cons);
const REQ_PROD: usize = offset_of!(XenstoreDomainInterface, req_prod);
const RSP_CONS: usize = offset_of!(XenstoreDomainInterface, rsp_cons);
const RSP_PROD: usize = offset_of!(XenstoreDomainInterface, rsp_prod);
const FEATURES: usize = offset_of!(XenstoreDomainInterface, server_features);
const CONNECTION: usize = offset_of!(XenstoreDomainInterface, connection);
const ERROR: usize = offset_of!(XenstoreDomainInterface, error);

/// The shared xenstore page, read and written with volatile accesses by the kernel.
/// Offsets are inside `xenstore_domain_interface` (below 2076).
pub trait StorePage {
    /// Reads the u32 at byte offset `off` (an index or status field).
    fn load_u32(&self, off: usize) -> u32;
    /// Writes the u32 at byte offset `off`.
    fn store_u32(&mut self, off: usize, value: u32);
    /// Reads the byte at offset `off`.
    fn load_u8(&self, off: usize) -> u8;
    /// Writes the byte at offset `off`.
    fn store_u8(&mut self, off: usize, value: u8);
}

/// Why a connection stopped being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// The guest's ring indexes were impossible (`XENSTORE_ERROR_RINGIDX`).
    RingIndexes,
    /// A request announced a payload over `XENSTORE_PAYLOAD_MAX` (`XENSTORE_ERROR_PROTO`).
    PayloadTooLong,
}

/// Counters of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Requests answered.
    pub requests: u64,
    /// Watch events sent (queued).
    pub events: u64,
    /// Watch events dropped because the queue was full.
    pub events_dropped: u64,
    /// Reconnections the guest asked for.
    pub reconnects: u64,
    /// Services that left requests in the ring because of the outstanding-request or the
    /// memory quota.
    pub stalls: u64,
}

/// One domain's connection: the partial request being read and the bytes waiting for room
/// in the response ring.
#[derive(Clone, Debug)]
pub struct XsConnection {
    domid: Domid,
    /// The request read so far (header, then payload).
    partial: Vec<u8>,
    /// Replies and events not yet in the response ring.
    out: VecDeque<u8>,
    /// The messages in `out`, oldest first: bytes of each still queued, and whether it is a
    /// reply (an outstanding request) rather than a watch event.
    messages: VecDeque<(usize, bool)>,
    failed: Option<ConnError>,
    /// Counters.
    pub stats: ConnStats,
}

impl XsConnection {
    /// The connection of domain `domid` (the store must have it introduced).
    pub fn new(domid: Domid) -> Self {
        Self {
            domid,
            partial: Vec::new(),
            out: VecDeque::new(),
            messages: VecDeque::new(),
            failed: None,
            stats: ConnStats::default(),
        }
    }

    /// Why the connection stopped, if it did.
    pub fn failed(&self) -> Option<ConnError> {
        self.failed
    }

    /// Bytes queued beyond the response ring.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// Replies queued beyond the response ring: requests answered but not delivered.
    pub fn outstanding(&self) -> usize {
        self.messages.iter().filter(|(_, reply)| *reply).count()
    }

    /// Sets up a fresh page as the toolstack leaves it for the guest: the server features,
    /// `connection = XENSTORE_CONNECTED`, no error, all indexes 0.
    pub fn init_page(&self, page: &mut impl StorePage) {
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            page.store_u32(off, 0);
        }
        page.store_u32(FEATURES, SERVER_FEATURES);
        page.store_u32(ERROR, XENSTORE_ERROR_NONE);
        page.store_u32(CONNECTION, XENSTORE_CONNECTED);
    }

    fn fail(&mut self, page: &mut impl StorePage, e: ConnError) {
        let code = match e {
            ConnError::RingIndexes => XENSTORE_ERROR_RINGIDX,
            ConnError::PayloadTooLong => XENSTORE_ERROR_PROTO,
        };
        page.store_u32(ERROR, code);
        self.failed = Some(e);
    }

    /// Serves the ring: answers every complete request there is room for and writes what
    /// fits of the replies and events. Returns whether the guest should be notified (bytes
    /// were consumed from its request ring or produced into its response ring).
    ///
    /// Requests wait in the ring while the domain is at a quota of the connection (see the
    /// module documentation). `memory_low` is asked before each request, as a last resort
    /// that never says yes while every domain is within its quotas in a heap sized for them:
    /// while it says yes, requests are answered `ENOMEM` without touching the store (C
    /// xenstored's answer when an allocation fails).
    pub fn service(
        &mut self,
        store: &mut Store,
        page: &mut impl StorePage,
        memory_low: &dyn Fn() -> bool,
    ) -> bool {
        if page.load_u32(CONNECTION) == XENSTORE_RECONNECT {
            self.reconnect(page);
            return true;
        }
        if self.failed.is_some() {
            return false;
        }
        let mut notify = false;
        self.queue_events(store);
        loop {
            let wrote = match self.flush(page) {
                Ok(n) => n,
                Err(e) => {
                    self.fail(page, e);
                    return true;
                }
            };
            // Read requests only while a full reply still fits in the queue and the domain
            // is within its quotas.
            let room = self.out.len().saturating_add(MAX_MESSAGE) <= MAX_QUEUED_BYTES;
            let quota = self.outstanding() < REQUESTS_OUTSTANDING
                && !store.memory_hard_exceeded(self.domid);
            if room && !quota && page.load_u32(REQ_CONS) != page.load_u32(REQ_PROD) {
                self.stats.stalls = self.stats.stalls.saturating_add(1);
            }
            let read = if room && quota {
                match self.read_request(store, page, memory_low) {
                    Ok(n) => n,
                    Err(e) => {
                        self.fail(page, e);
                        return true;
                    }
                }
            } else {
                0
            };
            notify |= wrote > 0 || read > 0;
            if wrote == 0 && read == 0 {
                return notify;
            }
        }
    }

    /// Moves the watch events the store holds for this domain (caused by other domains'
    /// requests or by the toolstack) and whatever else is queued into the response ring,
    /// without reading a request. Returns whether bytes were written (then notify the
    /// domain). Does nothing on a stopped connection or one whose guest asked to reconnect
    /// ([`Self::service`] handles that); impossible response indexes stop the connection as
    /// in [`Self::service`] (the `error` field is set, and the result is `true`).
    pub fn deliver_events(&mut self, store: &mut Store, page: &mut impl StorePage) -> bool {
        if self.failed.is_some() || page.load_u32(CONNECTION) == XENSTORE_RECONNECT {
            return false;
        }
        self.queue_events(store);
        match self.flush(page) {
            Ok(n) => n > 0,
            Err(e) => {
                self.fail(page, e);
                true
            }
        }
    }

    fn reconnect(&mut self, page: &mut impl StorePage) {
        self.partial.clear();
        self.out.clear();
        self.messages.clear();
        self.failed = None;
        self.stats.reconnects = self.stats.reconnects.saturating_add(1);
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            page.store_u32(off, 0);
        }
        page.store_u32(ERROR, XENSTORE_ERROR_NONE);
        fence(Ordering::Release);
        page.store_u32(CONNECTION, XENSTORE_CONNECTED);
    }

    /// Moves queued bytes into the response ring; returns how many.
    fn flush(&mut self, page: &mut impl StorePage) -> Result<usize, ConnError> {
        if self.out.is_empty() {
            return Ok(0);
        }
        let cons = page.load_u32(RSP_CONS);
        let prod = page.load_u32(RSP_PROD);
        let t = RING
            .produce(cons, prod, self.out.len())
            .map_err(|_| ConnError::RingIndexes)?;
        fence(Ordering::SeqCst);
        for slot in t.first.clone().chain(t.second.clone()) {
            let b = self.out.pop_front().unwrap_or(0); // t.len <= out.len()
            page.store_u8(RSP.saturating_add(slot), b);
        }
        fence(Ordering::Release);
        page.store_u32(RSP_PROD, t.new_index);
        let mut sent = t.len;
        while let Some((left, _)) = self.messages.front_mut() {
            if sent < *left {
                *left = left.saturating_sub(sent);
                break;
            }
            sent = sent.saturating_sub(*left);
            self.messages.pop_front();
        }
        Ok(t.len)
    }

    /// Reads the bytes of the request in progress; answers it once complete. Returns the
    /// bytes consumed.
    fn read_request(
        &mut self,
        store: &mut Store,
        page: &mut impl StorePage,
        memory_low: &dyn Fn() -> bool,
    ) -> Result<usize, ConnError> {
        let want = match self.header() {
            None => XsdSockmsg::SIZE.saturating_sub(self.partial.len()),
            Some(h) => (h.len as usize)
                .saturating_add(XsdSockmsg::SIZE)
                .saturating_sub(self.partial.len()),
        };
        let cons = page.load_u32(REQ_CONS);
        let prod = page.load_u32(REQ_PROD);
        let t = RING
            .consume(cons, prod, want)
            .map_err(|_| ConnError::RingIndexes)?;
        if t.len > 0 {
            fence(Ordering::Acquire);
            for slot in t.first.clone().chain(t.second.clone()) {
                self.partial.push(page.load_u8(REQ.saturating_add(slot)));
            }
            fence(Ordering::SeqCst);
            page.store_u32(REQ_CONS, t.new_index);
        }
        if self.partial.len() == XsdSockmsg::SIZE && self.header().is_none() {
            return Err(ConnError::PayloadTooLong);
        }
        if let Some(h) = self.header()
            && self.partial.len() == XsdSockmsg::SIZE.saturating_add(h.len as usize)
        {
            self.answer(store, h, memory_low());
            self.partial.clear();
            // A message with an empty payload consumed only its header: report progress.
            return Ok(t.len.max(1));
        }
        Ok(t.len)
    }

    /// The header of the request in progress, once its 16 bytes are in and valid.
    fn header(&self) -> Option<XsdSockmsg> {
        let bytes: &[u8; XsdSockmsg::SIZE] =
            self.partial.get(..XsdSockmsg::SIZE)?.try_into().ok()?;
        XsdSockmsg::from_bytes(bytes).ok()
    }

    fn answer(&mut self, store: &mut Store, h: XsdSockmsg, memory_low: bool) {
        let payload = self.partial.get(XsdSockmsg::SIZE..).unwrap_or(&[]);
        let result = if memory_low {
            Err(xenstored::XsdError::Enomem)
        } else {
            store.handle(self.domid, h.type_, h.tx_id, payload)
        };
        let (type_, body) = match result {
            Ok(reply) => (h.type_, reply),
            Err(e) => {
                let mut b = Vec::from(e.name().as_bytes());
                b.push(0);
                (XS_ERROR, b)
            }
        };
        self.stats.requests = self.stats.requests.saturating_add(1);
        self.push(type_, h.req_id, h.tx_id, &body, true);
        self.queue_events(store);
    }

    /// Queues the watch events the store holds for this domain (caused by its own requests
    /// or by other domains' writes), dropping those beyond the bound.
    fn queue_events(&mut self, store: &mut Store) {
        for ev in store.take_events(self.domid) {
            let len = ev.wire_len().saturating_add(XsdSockmsg::SIZE);
            if self.out.len().saturating_add(len) > MAX_QUEUED_BYTES {
                self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
                continue;
            }
            let mut body = Vec::with_capacity(ev.wire_len());
            body.extend_from_slice(ev.path.as_bytes());
            body.push(0);
            body.extend_from_slice(ev.token.as_bytes());
            body.push(0);
            self.stats.events = self.stats.events.saturating_add(1);
            self.push(XS_WATCH_EVENT, 0, 0, &body, false);
        }
    }

    fn push(&mut self, type_: u32, req_id: u32, tx_id: u32, body: &[u8], reply: bool) {
        // Replies are at most XENSTORE_PAYLOAD_MAX (Store::handle answers E2BIG beyond);
        // events at most two paths.
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let h = XsdSockmsg {
            type_,
            req_id,
            tx_id,
            len,
        };
        self.out.extend(h.to_bytes());
        self.out.extend(body.iter().copied());
        self.messages
            .push_back((XsdSockmsg::SIZE.saturating_add(body.len()), reply));
    }
}

#[cfg(test)]
mod tests;
