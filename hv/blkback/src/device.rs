//! One vbd back end: the xenbus states and keys as Linux's blkback writes them, and the
//! request ring served through grants.
//!
//! [`Blkback::probe`] attaches to the backend directory the toolstack wrote, reads `mode`,
//! and says InitWait. [`Blkback::poll`] (the caller runs it when the front end's state watch
//! or the device's port fires, or simply in its loop) follows the front end's state as
//! blkback's `frontend_changed` does: on Initialised (or Connected) it reads and maps the
//! ring, binds the event channel, writes the disk's keys in one transaction and says
//! Connected; on Closing it says Closing; on Closed it lets go of the ring and says Closed;
//! when the front end vanishes the device is removed. Then it serves the ring (`serve`).
//!
//! The optional features, each switchable in [`Features`] ([`Blkback::probe_with`]):
//! multi-page rings (`max-ring-page-order`, Linux's 4, written before InitWait; the front end's
//! `ring-page-order` and `ring-ref0`..`ring-ref<2^order - 1>` mapped as one ring), indirect requests (`feature-max-indirect-segments`, Linux's 256), persistent grants
//! (`feature-persistent`: a front end that says so too has its data pages kept mapped,
//! writable, up to Linux's 1056 a ring; beyond that, or when the platform has no room for
//! another mapping, the least recently used are let go) and discard (`feature-discard` with
//! `discard-granularity`, `discard-alignment` 0 and `discard-secure` 0, through
//! [`BlockDevice::discard`]).

mod serve;

use crate::disk::BlockDevice;
use abi::io::blkif::{BlkifRequest, BlkifResponse, VDISK_READONLY};
use abi::io::xenbus::XenbusState;
use abi::page::AtomicPage;
use abi::ring::{BackRing, MAX_RING_PAGE_ORDER, SharedRing};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xenbus::backend::{
    Backend, GrantMapper, InterdomainEvents, MappedPage, RingOffer, RingRefs, RingRefsError,
    Transition, transition,
};
use xenbus::frontend::XenbusError;
use xenbus::xenstore::{TxId, XsClient, XsError, XsTransport};
use xenbus::{GrantRef, Instant, Port};

/// Linux blkback's `xen_blkif_max_pgrants` default: persistent grants kept per ring.
pub const MAX_PERSISTENT_GRANTS: usize = 1056;

/// The most queues this back end can offer (the size of [`BlkbackStats::queue_requests`]).
pub const QUEUE_LIMIT: u32 = 4;

/// The optional features this back end offers (Linux's defaults: all on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `max-ring-page-order` written (0: not written, rings of one page only; at most
    /// [`MAX_RING_PAGE_ORDER`]).
    pub max_ring_page_order: u32,
    /// `feature-max-indirect-segments` written (0: not offered, indirect requests refused).
    pub max_indirect_segments: u32,
    /// `feature-persistent` offered.
    pub persistent: bool,
    /// Persistent grants kept per ring at most.
    pub max_persistent_grants: usize,
    /// `feature-discard` offered (if the device can discard).
    pub discard: bool,
    /// `multi-queue-max-queues` written (1: not written, one ring only; at most
    /// [`QUEUE_LIMIT`]).
    pub max_queues: u32,
}

impl Features {
    /// Every feature off: one-page rings of 11-segment requests, grants mapped per request.
    pub const NONE: Self = Self {
        max_ring_page_order: 0,
        max_indirect_segments: 0,
        persistent: false,
        max_persistent_grants: 0,
        discard: false,
        max_queues: 1,
    };
}

impl Default for Features {
    /// Linux blkback's offer (its `max_queues` is one per domain-0 vCPU; here
    /// [`QUEUE_LIMIT`], Linux blkfront's own default maximum, so a front end never asks more).
    fn default() -> Self {
        Self {
            max_ring_page_order: MAX_RING_PAGE_ORDER,
            max_indirect_segments: crate::request::MAX_INDIRECT_SEGMENTS,
            persistent: true,
            max_persistent_grants: MAX_PERSISTENT_GRANTS,
            discard: true,
            max_queues: QUEUE_LIMIT,
        }
    }
}

/// Attempts at the transaction that publishes the disk's keys.
const TRANSACTION_ATTEMPTS: u32 = 8;
/// Linux's errnos in `error` nodes.
const EINVAL: i32 = 22;
const ENOENT: i32 = 2;
const ENOSYS: i32 = 38;
const EFAULT: i32 = 14;

/// Errors the caller sees (logged; the device itself never panics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkbackError {
    /// A xenstore operation failed.
    Xenbus(XenbusError),
}

impl From<XenbusError> for BlkbackError {
    fn from(e: XenbusError) -> Self {
        Self::Xenbus(e)
    }
}

impl From<XsError> for BlkbackError {
    fn from(e: XsError) -> Self {
        Self::Xenbus(e.into())
    }
}

/// Counters (Linux's `statistics/` and more).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkbackStats {
    /// Requests taken from the ring.
    pub requests: u64,
    /// Reads served (`rd_req`).
    pub reads: u64,
    /// Writes served (`wr_req`).
    pub writes: u64,
    /// Flushes and barriers served (`f_req`).
    pub flushes: u64,
    /// Sectors read (`rd_sect`).
    pub read_sectors: u64,
    /// Sectors written (`wr_sect`).
    pub written_sectors: u64,
    /// Responses `BLKIF_RSP_ERROR`.
    pub errors: u64,
    /// Responses `BLKIF_RSP_EOPNOTSUPP`.
    pub unsupported: u64,
    /// Segments whose grant did not map.
    pub grant_failures: u64,
    /// Notifications sent to the front end.
    pub notifications: u64,
    /// Times the ring was halted for an impossible producer index.
    pub halts: u64,
    /// Connections made.
    pub connects: u64,
    /// Indirect requests served (`BLKIF_OP_INDIRECT` that passed the checks).
    pub indirect_requests: u64,
    /// Persistent grants mapped (kept for later requests).
    pub persistent_mapped: u64,
    /// Segments and indirect pages served through a persistent grant mapped earlier.
    pub persistent_reused: u64,
    /// Persistent grants let go while connected (beyond the bound, or for room).
    pub persistent_evicted: u64,
    /// Discards served (`ds_req`).
    pub discards: u64,
    /// Resizes announced (`sectors` and `state` written again while connected).
    pub resizes: u64,
    /// Pages of the ring connected last (`2^ring-page-order`; 0 before the first connect).
    pub ring_pages: u64,
    /// Connections whose ring spanned more than one page.
    pub multipage_connects: u64,
    /// Queues (rings) of the connection made last (0 before the first connect).
    pub queues: u64,
    /// Connections of more than one queue.
    pub multiqueue_connects: u64,
    /// Requests taken from each queue's ring, by queue.
    pub queue_requests: [u64; QUEUE_LIMIT as usize],
}

/// One connected ring (a queue: several with `multi-queue-num-queues`, each with its own
/// port, halt and persistent grants, as Linux's `xen_blkif_ring`).
#[derive(Debug)]
struct Connection {
    /// The queue's index.
    queue: usize,
    ring: BackRing<BlkifRequest, BlkifResponse>,
    /// The ring's pages, in ring order.
    pages: Vec<MappedPage>,
    port: Port,
    /// Halted for good (until the front end reconnects): its producer index was impossible.
    halted: bool,
    /// Persistent grants negotiated (both ends said `feature-persistent`).
    persistent: bool,
    /// The front end's pages kept mapped: grant → (mapping, when it was last used).
    kept: BTreeMap<GrantRef, (MappedPage, u64)>,
    /// Requests served on this ring (the clock of `kept`).
    clock: u64,
}

/// One vbd back end.
#[derive(Debug)]
pub struct Blkback<D: BlockDevice, M: GrantMapper, E: InterdomainEvents> {
    xen: Backend,
    device: D,
    grants: M,
    events: E,
    readonly: Option<bool>,
    features: Features,
    flush: bool,
    barrier: bool,
    /// The connected rings, one per queue (empty when not connected).
    connection: Vec<Connection>,
    /// A feature a failed operation withdrew, to be written as `0` on the next poll.
    withdrawn: Option<&'static str>,
    removed: bool,
    /// The `sectors` written at the last connect or resize.
    announced: Option<u64>,
    stats: BlkbackStats,
}

impl<D: BlockDevice, M: GrantMapper, E: InterdomainEvents> Blkback<D, M, E> {
    /// Attaches to backend directory `path` (absolute; `frontend` and `frontend-id` written by
    /// the toolstack), reads `mode` (`r` or `w`; without it the device fails as Linux's does,
    /// with an `error` node and Closing), and says InitWait. Offers Linux's features
    /// ([`Features::default`]).
    pub fn probe<T: XsTransport>(
        xs: &mut XsClient<T>,
        path: String,
        device: D,
        grants: M,
        events: E,
        deadline: Instant,
    ) -> Result<Self, BlkbackError> {
        Self::probe_with(
            xs,
            path,
            device,
            grants,
            events,
            Features::default(),
            deadline,
        )
    }

    /// [`Blkback::probe`] offering `features`.
    pub fn probe_with<T: XsTransport>(
        xs: &mut XsClient<T>,
        path: String,
        device: D,
        grants: M,
        events: E,
        features: Features,
        deadline: Instant,
    ) -> Result<Self, BlkbackError> {
        let xen = Backend::attach(xs, path, deadline)?;
        let flush = device.write_cache();
        let mut back = Self {
            xen,
            device,
            grants,
            events,
            readonly: None,
            features,
            flush,
            barrier: flush,
            connection: Vec::new(),
            withdrawn: None,
            removed: false,
            announced: None,
            stats: BlkbackStats::default(),
        };
        let offer = back.ring_offer();
        if offer.max_queues > 1 {
            // Linux's `xen_blkbk_probe` writes it before InitWait, and only warns on failure.
            let _ = xs.write(
                TxId::NONE,
                &back.xen.node("multi-queue-max-queues"),
                &format!("{}", offer.max_queues),
                deadline,
            );
        }
        let order = offer.max_ring_page_order;
        if order > 0 {
            // Linux's `xen_blkbk_probe` writes it before InitWait, and only warns on failure.
            let _ = xs.write(
                TxId::NONE,
                &back.xen.node("max-ring-page-order"),
                &format!("{order}"),
                deadline,
            );
        }
        back.xen.set_state(xs, XenbusState::InitWait, deadline)?;
        match xs.read_optional(TxId::NONE, &back.xen.node("mode"), deadline)? {
            Some(mode) => back.readonly = Some(!mode.contains('w') || back.device.read_only()),
            None => back.xen.fatal(xs, -ENOENT, "reading mode", deadline),
        }
        Ok(back)
    }

    /// The xenbus side (paths, our state).
    pub fn xenbus(&self) -> &Backend {
        &self.xen
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably (tests inject faults through it).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The grant mapper.
    pub fn grants(&self) -> &M {
        &self.grants
    }

    /// The grant mapper, mutably (tests limit it).
    pub fn grants_mut(&mut self) -> &mut M {
        &mut self.grants
    }

    /// The event channels.
    pub fn events(&self) -> &E {
        &self.events
    }

    /// Counters.
    pub fn stats(&self) -> BlkbackStats {
        self.stats
    }

    /// The features offered.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Whether persistent grants are in use on the ring (both ends offered them).
    pub fn persistent(&self) -> bool {
        self.connection.first().is_some_and(|c| c.persistent)
    }

    /// Persistent grants mapped now (every queue's).
    pub fn persistent_grants(&self) -> usize {
        self.connection.iter().map(|c| c.kept.len()).sum()
    }

    /// Our local port while connected (queue 0's).
    pub fn port(&self) -> Option<Port> {
        self.connection.first().map(|c| c.port)
    }

    /// Our local ports while connected, one per queue in queue order.
    pub fn ports(&self) -> Vec<Port> {
        self.connection.iter().map(|c| c.port).collect()
    }

    /// Whether a ring was halted for an impossible producer index.
    pub fn is_halted(&self) -> bool {
        self.connection.iter().any(|c| c.halted)
    }

    /// Whether queue `queue`'s ring was halted (false if there is no such queue).
    pub fn is_queue_halted(&self, queue: usize) -> bool {
        self.connection.get(queue).is_some_and(|c| c.halted)
    }

    /// Whether the front end went away and the device was removed.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// One round: follow the front end's state if its watch fired, then serve at most one
    /// ring's worth of requests. Returns whether requests may be left (call again soon).
    pub fn poll<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<bool, BlkbackError> {
        if self.removed {
            return Ok(false);
        }
        // A broken connection shows in the read below; polling only moves queued bytes.
        let _ = xs.poll();
        if self.xen.take_frontend_events(xs) {
            let state = self.xen.frontend_state(xs, deadline)?;
            self.frontend_changed(xs, state, deadline)?;
        }
        self.resize(xs, deadline);
        let more = self.serve();
        if let Some(key) = self.withdrawn.take() {
            // Linux writes it outside a transaction and only warns if that fails.
            let _ = xs.write(TxId::NONE, &self.xen.node(key), "0", deadline);
        }
        Ok(more)
    }

    /// Blkback's `frontend_changed`.
    fn frontend_changed<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        state: XenbusState,
        deadline: Instant,
    ) -> Result<(), BlkbackError> {
        match transition(self.xen.state(), state) {
            Transition::None => {}
            Transition::Reconnect => self.xen.set_state(xs, XenbusState::InitWait, deadline)?,
            Transition::Connect => {
                self.disconnect();
                if self.connect_ring(xs, deadline) {
                    self.connect(xs, deadline)?;
                }
            }
            Transition::Closing => self.xen.set_state(xs, XenbusState::Closing, deadline)?,
            Transition::Closed => {
                self.disconnect();
                self.xen.set_state(xs, XenbusState::Closed, deadline)?;
                let online = xs.read_optional(TxId::NONE, &self.xen.node("online"), deadline)?;
                if online.as_deref() != Some("1") {
                    self.remove(xs, deadline);
                }
            }
            Transition::Remove => self.remove(xs, deadline),
            Transition::Fatal => {
                let message = format!("saw state {} at frontend", state.as_u32());
                self.xen.fatal(xs, -EINVAL, &message, deadline);
            }
        }
        Ok(())
    }

    /// The device goes away (`device_unregister`): ring released, watch removed.
    fn remove<T: XsTransport>(&mut self, xs: &mut XsClient<T>, deadline: Instant) {
        self.disconnect();
        self.removed = true;
        let _ = self.xen.clone().close(xs, deadline);
    }

    /// Reads, maps and binds the front end's ring (`connect_ring`); false (after a fatal
    /// error) if it cannot.
    fn connect_ring<T: XsTransport>(&mut self, xs: &mut XsClient<T>, deadline: Instant) -> bool {
        if self.readonly.is_none() {
            return false;
        }
        let rings = match self.xen.read_rings(xs, self.ring_offer(), deadline) {
            Ok(rings) => rings,
            Err(e) => {
                let (errno, what) = match e {
                    RingRefsError::UnknownProtocol => (ENOSYS, String::from("unknown fe protocol")),
                    RingRefsError::Queues { queues, .. } => {
                        (ENOSYS, format!("guest requested {queues} queues"))
                    }
                    RingRefsError::RingPageOrder { order, max } => {
                        (EINVAL, format!("ring page order {order} exceeds max {max}"))
                    }
                    RingRefsError::BadValue(key) => (EINVAL, format!("reading {key}")),
                    RingRefsError::Store(_) => (EINVAL, String::from("reading ring references")),
                };
                self.xen.fatal(xs, -errno, &what, deadline);
                return false;
            }
        };
        if rings.is_empty() {
            self.xen
                .fatal(xs, -EINVAL, "reading ring references", deadline);
            return false;
        }
        // `connect_ring` reads the front end's `feature-persistent` (absent: 0).
        let theirs = xs
            .read_optional(
                TxId::NONE,
                &self.xen.frontend_node("feature-persistent"),
                deadline,
            )
            .ok()
            .flatten();
        let persistent = self.features.persistent
            && self.features.max_persistent_grants > 0
            && theirs.as_deref().map(str::trim) == Some("1");
        let mut connected = Vec::with_capacity(rings.len());
        for (queue, refs) in rings.into_iter().enumerate() {
            match self.connect_queue(xs, queue, &refs, persistent, deadline) {
                Some(conn) => connected.push(conn),
                None => {
                    // One queue failed (fatal already written): the others let go too.
                    self.connection = connected;
                    self.disconnect();
                    return false;
                }
            }
        }
        let ring_pages = connected.first().map_or(0, |c| c.pages.len() as u64);
        let queues = connected.len() as u64;
        self.connection = connected;
        self.stats.connects += 1;
        self.stats.ring_pages = ring_pages;
        self.stats.queues = queues;
        if ring_pages > 1 {
            self.stats.multipage_connects += 1;
        }
        if queues > 1 {
            self.stats.multiqueue_connects += 1;
        }
        true
    }

    /// Maps and binds one queue's ring (`read_per_ring_refs` and `xen_blkif_map`); `None`
    /// after a fatal error, nothing of it left mapped or bound.
    fn connect_queue<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        queue: usize,
        refs: &RingRefs,
        persistent: bool,
        deadline: Instant,
    ) -> Option<Connection> {
        let domid = self.xen.frontend_id;
        let mut pages = Vec::with_capacity(refs.ring_refs.len());
        for &gref in &refs.ring_refs {
            match self.grants.map(domid, gref, true) {
                Ok(page) => pages.push(page),
                Err(e) => {
                    self.unmap_all(pages);
                    let message = format!("mapping ring-ref {gref}: {e}");
                    self.xen.fatal(xs, -EFAULT, &message, deadline);
                    return None;
                }
            }
        }
        let memory: Option<Vec<&'static AtomicPage>> =
            pages.iter().map(MappedPage::ring_memory).collect();
        let ring = memory
            .ok_or(())
            .and_then(|m| SharedRing::from_pages(&m).map_err(drop))
            .map(BackRing::init);
        let ring = match ring {
            Ok(ring) => ring,
            Err(()) => {
                self.unmap_all(pages);
                self.xen.fatal(xs, -EINVAL, "ring page", deadline);
                return None;
            }
        };
        let port = match self.events.bind_interdomain(domid, refs.event_channel) {
            Ok(port) => port,
            Err(e) => {
                self.unmap_all(pages);
                let message = format!("binding port {}", refs.event_channel.get());
                self.xen.fatal(xs, e.errno, &message, deadline);
                return None;
            }
        };
        Some(Connection {
            queue,
            ring,
            pages,
            port,
            halted: false,
            persistent,
            kept: BTreeMap::new(),
            clock: 0,
        })
    }

    /// The rings accepted: up to the offered queues, pages up to the offered order.
    fn ring_offer(&self) -> RingOffer {
        RingOffer {
            max_ring_page_order: self.features.max_ring_page_order.min(MAX_RING_PAGE_ORDER),
            max_queues: self.features.max_queues.clamp(1, QUEUE_LIMIT),
        }
    }

    /// Unmaps ring pages.
    fn unmap_all(&mut self, pages: Vec<MappedPage>) {
        for page in pages {
            self.grants.unmap(page);
        }
    }

    /// Blkback's `connect`: the disk's keys in one transaction, then Connected.
    fn connect<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), BlkbackError> {
        let readonly = self.readonly.unwrap_or(true);
        let info = if readonly { VDISK_READONLY } else { 0 };
        let flag = |on: bool| if on { "1" } else { "0" };
        let discard = self.discard_offered();
        let mut keys: alloc::vec::Vec<(&str, String)> = alloc::vec![
            ("feature-flush-cache", String::from(flag(self.flush))),
            ("feature-discard", String::from(flag(discard))),
            ("feature-barrier", String::from(flag(self.barrier))),
            (
                "feature-persistent",
                String::from(flag(self.features.persistent)),
            ),
            ("sectors", format!("{}", self.device.sectors())),
            ("info", format!("{info}")),
            ("sector-size", format!("{}", self.device.sector_size())),
            (
                "physical-sector-size",
                format!("{}", self.device.physical_sector_size()),
            ),
        ];
        if self.features.max_indirect_segments > 0 {
            keys.push((
                "feature-max-indirect-segments",
                format!("{}", self.features.max_indirect_segments),
            ));
        }
        if discard {
            keys.push((
                "discard-granularity",
                format!("{}", self.device.discard_granularity()),
            ));
            keys.push(("discard-alignment", String::from("0")));
            keys.push(("discard-secure", String::from("0")));
        }
        let xen = &self.xen;
        let written = xs.transaction(TRANSACTION_ATTEMPTS, deadline, |xs, tx| {
            for (key, value) in &keys {
                xs.write(tx, &xen.node(key), value, deadline)?;
            }
            Ok(())
        });
        if written.is_err() {
            self.xen
                .fatal(xs, -EINVAL, "writing the disk's keys", deadline);
            return Ok(());
        }
        self.announced = Some(self.device.sectors());
        self.xen.set_state(xs, XenbusState::Connected, deadline)?;
        Ok(())
    }

    /// `xen_vbd_resize`: while connected, a device whose size changed has its new `sectors`
    /// and our state (Connected, again) written in one transaction, which tells the front end
    /// to read the size again. A failed transaction is tried on the next poll.
    fn resize<T: XsTransport>(&mut self, xs: &mut XsClient<T>, deadline: Instant) {
        let sectors = self.device.sectors();
        if self.connection.is_empty()
            || self.xen.state() != XenbusState::Connected
            || self.announced == Some(sectors)
        {
            return;
        }
        let xen = &self.xen;
        let state = format!("{}", XenbusState::Connected.as_u32());
        let written = xs.transaction(TRANSACTION_ATTEMPTS, deadline, |xs, tx| {
            xs.write(tx, &xen.node("sectors"), &format!("{sectors}"), deadline)?;
            xs.write(tx, &xen.node("state"), &state, deadline)?;
            Ok(())
        });
        if written.is_ok() {
            self.announced = Some(sectors);
            self.stats.resizes += 1;
        }
    }

    /// Lets go of every queue's ring: ports unbound, pages unmapped (`xen_blkif_disconnect`).
    /// Requests are served synchronously, so none is in flight.
    fn disconnect(&mut self) {
        // The ring handle goes with the connection, before its page is unmapped.
        for Connection {
            pages, port, kept, ..
        } in core::mem::take(&mut self.connection)
        {
            self.events.unbind(port);
            self.unmap_all(pages);
            for (page, _) in kept.into_values() {
                self.grants.unmap(page);
            }
        }
    }

    /// Whether `feature-discard` is offered: switched on and the device can.
    fn discard_offered(&self) -> bool {
        self.features.discard && self.device.can_discard() && self.readonly == Some(false)
    }
}
