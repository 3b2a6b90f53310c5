//! The block device: the xenbus handshake with blkback, submitting requests on the shared
//! ring, and completing them from validated responses.
//!
//! Requests are submitted without waiting ([`Blkfront::submit_read`], [`submit_write`],
//! [`submit_flush`]) up to the ring's size. They are written to the ring but published to the
//! backend only by [`Blkfront::kick`] (which [`Blkfront::poll`] and the waits do first), so a
//! burst of submissions costs at most one notification, as Linux's blkfront batches a queue's
//! requests. [`Blkfront::poll`] (driven by the guest's event loop when the device's port fires)
//! completes them. [`Blkfront::read`], [`write`] and
//! [`flush`] are the blocking forms. Every request's data pages are granted for it and their
//! grants ended when it completes: a page the backend still has mapped is never reused. With
//! persistent grants negotiated the pages come instead from a pool granted read-write once and
//! go back to it, their grants kept until [`Blkfront::close`] (the data is copied through
//! them). Requests of more than 11 segments go as `BLKIF_OP_INDIRECT`, their segments listed
//! in indirect pages; discards carry no pages.
//!
//! [`submit_write`]: Blkfront::submit_write
//! [`submit_flush`]: Blkfront::submit_flush
//! [`write`]: Blkfront::write
//! [`flush`]: Blkfront::flush

use crate::error::{BadResponse, BlkError, ResizeRefused};
use crate::features::{
    FRONT_MAX_QUEUES, Features, indirect_segments, queue_count, ring_page_order,
};
use crate::inflight::{InFlight, Status, Table};
use crate::info::{DiskInfo, FlushMode, SECTOR};
use abi::io::blkif::{
    BLKIF_DISCARD_SECURE, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_SEGMENTS_PER_INDIRECT_PAGE, BlkifRequest, BlkifRequestDiscard,
    BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
};
use abi::io::xenbus::XenbusState;
use abi::ring::{FrontRing, RingError};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use xenbus::frontend::Frontend;
use xenbus::grant::{GrantAccess, GrantError, GrantedPage};
use xenbus::xenstore::{TxId, XsClient, XsTransport};
use xenbus::{EventChannel, Instant, PageProvider, Platform, Port};

// A child module, so that resuming reaches the device's parts (`blkfront/src/resume.rs`).
#[path = "resume.rs"]
mod resume;

/// Bytes of one data page (one segment).
const PAGE: usize = 4096;
/// Bytes of a sector, as a `usize` divisor.
const SECTOR_BYTES: usize = 512;
/// Most data bytes one direct request carries (11 segments of a page); with indirect
/// descriptors a request may carry more ([`Blkfront::max_request_bytes`]).
pub const MAX_REQUEST_BYTES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST * PAGE;
/// Attempts at the transaction that publishes the ring.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// Identifies a submitted request until it completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(u64);

/// A finished request.
#[derive(Debug, PartialEq, Eq)]
pub struct Completion {
    /// The request.
    pub id: RequestId,
    /// The data read (empty for writes and flushes), or why it failed.
    pub result: Result<Vec<u8>, BlkError>,
}

/// Counters, for the status page and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkStats {
    /// Requests put on the ring.
    pub requests: u64,
    /// Notifications sent to the backend.
    pub notifications: u64,
    /// Valid responses taken.
    pub responses: u64,
    /// Responses that failed validation.
    pub bad_responses: u64,
    /// Data grants in place now (0 when idle: nothing leaks).
    pub data_grants: u64,
    /// Pages kept away because the backend still had them mapped after answering.
    pub quarantined_pages: u64,
    /// Requests sent as `BLKIF_OP_INDIRECT` (more than 11 segments).
    pub indirect_requests: u64,
    /// Persistent grants held (the pool's pages, granted once; 0 without `feature-persistent`).
    pub persistent_grants: u64,
    /// Segments and indirect pages that went through a page of the pool granted earlier.
    pub persistent_reused: u64,
    /// `BLKIF_OP_DISCARD` requests sent.
    pub discards: u64,
    /// Waits that passed their deadline (the request unanswered when the wait ended: the wait
    /// polls the ring after every wake-up, the one at the deadline included, so an answer the
    /// backend had published is never missed).
    pub timeouts: u64,
    /// Of those, the ones where the backend had taken every request published (its
    /// `req_event` one past them: it went idle after consuming them, so the notification
    /// reached it and the I/O itself was late). The others found it not past them: a lost
    /// notification or a backend still busy before them.
    pub timeouts_taken: u64,
    /// Times the backend re-asserted Connected with a new `sectors` that was taken (a resized
    /// disk, read as Linux blkfront reads it).
    pub resizes: u64,
    /// Sizes the backend announced that were refused ([`ResizeRefused`]), the size kept.
    pub resizes_refused: u64,
    /// Pages of the shared ring (`2^ring-page-order`: more than 1 only when the backend offered
    /// `max-ring-page-order`).
    pub ring_pages: u64,
    /// The most requests in flight at once (above 32 only on a ring of several pages, or
    /// with several queues).
    pub peak_in_flight: u64,
    /// Queues (rings) in use: more than 1 only when the backend offered
    /// `multi-queue-max-queues`.
    pub queues: u64,
    /// Requests put on each queue's ring, by queue (spread round-robin).
    pub queue_requests: [u64; FRONT_MAX_QUEUES as usize],
}

/// One queue: a ring (of one or several pages) with its own event channel and, with
/// persistent grants, its own pool of granted pages (as Linux's `blkfront_ring_info`).
#[derive(Debug)]
struct Queue {
    ring: FrontRing<BlkifRequest, BlkifResponse>,
    /// The ring's pages in ring order (`ring-ref0`, ...); empty once ended.
    ring_pages: Vec<GrantedPage>,
    port: Port,
    /// Persistent grants of this queue not in use now.
    pool: Vec<GrantedPage>,
}

/// A connected vbd.
#[derive(Debug)]
pub struct Blkfront<P: PageProvider, G: GrantAccess, E: EventChannel> {
    platform: Platform<P, G, E>,
    frontend: Frontend,
    info: DiskInfo,
    /// The queues, at least one; request `id` is on queue `id / slots` (`slots`: one ring's
    /// size), so a response on the wrong queue is told apart.
    queues: Vec<Queue>,
    /// Slots of one ring.
    slots: u64,
    /// The queue the next request tries first (round-robin).
    next_queue: usize,
    /// Queue 0's port.
    port: Port,
    handle: u16,
    features: Features,
    /// Segments per request: 11, or the negotiated indirect count when above that.
    segments: usize,
    /// `feature-persistent` negotiated: data pages come from `pool` and are never ended while
    /// connected.
    persistent: bool,
    table: Table,
    done: VecDeque<Completion>,
    quarantine: Vec<GrantedPage>,
    stats: BlkStats,
    dead: Option<BlkError>,
}

impl<P: PageProvider, G: GrantAccess, E: EventChannel> Blkfront<P, G, E> {
    /// Connects vbd `devid` (`device/vbd/<devid>`) as Linux blkback expects: ring page and
    /// event channel published with `protocol` = `x86_64-abi`, state Initialised, wait for
    /// Connected, then the disk's keys. Every feature the backend offers is used.
    pub fn connect<T: XsTransport>(
        xs: &mut XsClient<T>,
        devid: u32,
        platform: Platform<P, G, E>,
        deadline: Instant,
    ) -> Result<Self, BlkError> {
        Self::connect_with(xs, devid, platform, Features::default(), deadline)
    }

    /// [`Blkfront::connect`], using only the optional features `features` allows.
    pub fn connect_with<T: XsTransport>(
        xs: &mut XsClient<T>,
        devid: u32,
        mut platform: Platform<P, G, E>,
        features: Features,
        deadline: Instant,
    ) -> Result<Self, BlkError> {
        let frontend = Frontend::discover(xs, "vbd", devid, deadline)?;
        let handle = u16::try_from(devid).map_err(|_| BlkError::BadBackendValue("devid"))?;
        frontend.wait_backend_state(
            xs,
            |s| {
                matches!(
                    s,
                    XenbusState::InitWait | XenbusState::Initialised | XenbusState::Connected
                )
            },
            deadline,
        )?;

        // Linux blkfront's `talk_to_blkback`: the backend's `max-ring-page-order`, capped at
        // ours.
        let offered = xs
            .read_optional(
                TxId::NONE,
                &frontend.backend_node("max-ring-page-order"),
                deadline,
            )
            .ok()
            .flatten();
        let order = ring_page_order(features.max_ring_page_order, offered.as_deref());
        // Linux blkfront's `negotiate_mq`: the backend's `multi-queue-max-queues`, capped.
        let offered = xs
            .read_optional(
                TxId::NONE,
                &frontend.backend_node("multi-queue-max-queues"),
                deadline,
            )
            .ok()
            .flatten();
        let count = queue_count(features.max_queues, offered.as_deref());
        let mut queues: Vec<Queue> = Vec::new();
        for _ in 0..count {
            let made = Self::grant_ring(&mut platform, frontend.backend_id, order).and_then(
                |(ring, ring_pages)| match platform.events.alloc_unbound(frontend.backend_id) {
                    Ok(port) => Ok(Queue {
                        ring,
                        ring_pages,
                        port,
                        pool: Vec::new(),
                    }),
                    Err(e) => {
                        end_ring(&mut platform, ring_pages);
                        Err(e.into())
                    }
                },
            );
            match made {
                Ok(queue) => queues.push(queue),
                Err(e) => {
                    for queue in queues {
                        platform.events.close(queue.port);
                        end_ring(&mut platform, queue.ring_pages);
                    }
                    return Err(e);
                }
            }
        }
        // Per queue: its directory (the front end's own for one queue, `queue-<n>` for
        // several, as Linux's `write_per_ring_nodes`), ring references and port.
        let published_queues: Vec<(String, Vec<u32>, u32)> = queues
            .iter()
            .enumerate()
            .map(|(n, q)| {
                let dir = if count == 1 {
                    String::new()
                } else {
                    format!("queue-{n}/")
                };
                let grefs = q.ring_pages.iter().map(|p| p.gref().get()).collect();
                (dir, grefs, q.port.get())
            })
            .collect();
        let published = xs.transaction(TRANSACTION_ATTEMPTS, deadline, |xs, tx| {
            if count > 1 {
                xs.write(
                    tx,
                    &frontend.node("multi-queue-num-queues"),
                    &format!("{count}"),
                    deadline,
                )?;
            }
            if order > 0 {
                xs.write(
                    tx,
                    &frontend.node("ring-page-order"),
                    &format!("{order}"),
                    deadline,
                )?;
            }
            for (dir, grefs, port_raw) in &published_queues {
                if let [gref] = grefs.as_slice() {
                    let key = frontend.node(&format!("{dir}ring-ref"));
                    xs.write(tx, &key, &format!("{gref}"), deadline)?;
                } else {
                    for (i, gref) in grefs.iter().enumerate() {
                        let key = frontend.node(&format!("{dir}ring-ref{i}"));
                        xs.write(tx, &key, &format!("{gref}"), deadline)?;
                    }
                }
                let key = frontend.node(&format!("{dir}event-channel"));
                xs.write(tx, &key, &format!("{port_raw}"), deadline)?;
            }
            xs.write(
                tx,
                &frontend.node("feature-persistent"),
                if features.persistent { "1" } else { "0" },
                deadline,
            )?;
            xs.write(tx, &frontend.node("protocol"), "x86_64-abi", deadline)
        });
        // Every queue's ring has the same order, hence the same size.
        let slots = queues.first().map_or(1, |q| q.ring.size());
        let mut device = Self {
            platform,
            info: DiskInfo {
                sectors: 0,
                sector_size: 512,
                physical_sector_size: 512,
                info: 0,
                readonly: true,
                flush: FlushMode::WriteThrough,
                max_indirect_segments: 0,
                persistent: false,
                discard: None,
            },
            features,
            segments: BLKIF_MAX_SEGMENTS_PER_REQUEST,
            persistent: false,
            table: Table::new(slots as usize * queues.len()),
            slots: u64::from(slots),
            next_queue: 0,
            port: queues.first().map_or(Port::ZERO, |q| q.port),
            stats: BlkStats {
                ring_pages: 1u64 << order,
                queues: queues.len() as u64,
                ..BlkStats::default()
            },
            queues,
            handle,
            frontend,
            done: VecDeque::new(),
            quarantine: Vec::new(),
            dead: None,
        };
        let connected = published.map_err(BlkError::from).and_then(|()| {
            device
                .frontend
                .set_state(xs, XenbusState::Initialised, deadline)?;
            device
                .frontend
                .wait_backend_state(xs, |s| s == XenbusState::Connected, deadline)?;
            let backend = device.frontend.backend.clone();
            device.info = DiskInfo::parse(|key| {
                xs.read_optional(TxId::NONE, &format!("{backend}/{key}"), deadline)
                    .ok()
                    .flatten()
            })?;
            let indirect =
                indirect_segments(device.features.indirect, device.info.max_indirect_segments);
            if indirect > 0 {
                device.segments = indirect as usize;
            }
            device.persistent = device.features.persistent && device.info.persistent;
            device
                .frontend
                .set_state(xs, XenbusState::Connected, deadline)?;
            Ok(())
        });
        match connected {
            Ok(()) => Ok(device),
            Err(e) => {
                device.release_ring();
                Err(e)
            }
        }
    }

    /// The disk as the backend described it.
    pub fn info(&self) -> &DiskInfo {
        &self.info
    }

    /// The device's event-channel port (the event loop calls [`Blkfront::poll`] when it
    /// fires).
    pub fn port(&self) -> Port {
        let busy = self
            .table
            .ids()
            .next()
            .and_then(|id| self.queue_of(id))
            .unwrap_or(0);
        self.queues.get(busy).map_or(self.port, |q| q.port)
    }

    /// Every queue's event-channel port, in queue order (an event loop sleeps on all of them).
    pub fn ports(&self) -> Vec<Port> {
        self.queues.iter().map(|q| q.port).collect()
    }

    /// The queue of request `id` (`None`: beyond the queues).
    fn queue_of(&self, id: u64) -> Option<usize> {
        let q = usize::try_from(id.checked_div(self.slots)?).ok()?;
        (q < self.queues.len()).then_some(q)
    }

    /// Counters.
    pub fn stats(&self) -> BlkStats {
        BlkStats {
            quarantined_pages: self.quarantine.len() as u64,
            ..self.stats
        }
    }

    /// The platform (tests reach their fakes through it).
    pub fn platform(&self) -> &Platform<P, G, E> {
        &self.platform
    }

    /// Most data bytes one request may carry: 11 pages, or with indirect descriptors the
    /// negotiated segment count's pages.
    pub fn max_request_bytes(&self) -> usize {
        self.segments * PAGE
    }

    /// Segments per indirect request in use (0: indirect requests are not used).
    pub fn indirect_segments(&self) -> usize {
        if self.segments > BLKIF_MAX_SEGMENTS_PER_REQUEST {
            self.segments
        } else {
            0
        }
    }

    /// Whether discards may be sent (`feature-discard` offered and not switched off).
    pub fn can_discard(&self) -> bool {
        self.features.discard && self.info.discard.is_some()
    }

    /// Whether persistent grants are in use (`feature-persistent` negotiated).
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.table.len()
    }

    /// Whether the ring has a free slot.
    pub fn can_submit(&self) -> bool {
        self.dead.is_none()
            && (0..self.queues.len() as u64).any(|q| {
                let start = q * self.slots;
                self.table
                    .free_id_in(start, start + self.slots, |id| {
                        !self.done.iter().any(|c| c.id == RequestId(id))
                    })
                    .is_some()
            })
    }

    /// Submits a read of `len` bytes at byte offset `offset`.
    pub fn submit_read(&mut self, offset: u64, len: usize) -> Result<RequestId, BlkError> {
        let sector = self.check_range(offset, len)?;
        self.submit(BLKIF_OP_READ, sector, len, &[])
    }

    /// Submits a write of `data` at byte offset `offset`. A read-only disk refuses it here.
    pub fn submit_write(&mut self, offset: u64, data: &[u8]) -> Result<RequestId, BlkError> {
        if self.info.readonly {
            return Err(BlkError::ReadOnly);
        }
        let sector = self.check_range(offset, data.len())?;
        self.submit(BLKIF_OP_WRITE, sector, data.len(), data)
    }

    /// Sends a write past the read-only guard: only for proving the backend refuses it.
    pub fn submit_write_unguarded(
        &mut self,
        offset: u64,
        data: &[u8],
    ) -> Result<RequestId, BlkError> {
        let sector = self.check_range(offset, data.len())?;
        self.submit(BLKIF_OP_WRITE, sector, data.len(), data)
    }

    /// Submits a flush (`FLUSH_DISKCACHE`, or an empty `WRITE_BARRIER`). On a write-through
    /// disk there is nothing to flush: it completes at once.
    pub fn submit_flush(&mut self) -> Result<RequestId, BlkError> {
        let operation = match self.info.flush {
            FlushMode::FlushCache => BLKIF_OP_FLUSH_DISKCACHE,
            FlushMode::Barrier => BLKIF_OP_WRITE_BARRIER,
            FlushMode::WriteThrough => {
                let id = RequestId(u64::MAX - self.done.len() as u64);
                self.done.push_back(Completion {
                    id,
                    result: Ok(Vec::new()),
                });
                return Ok(id);
            }
        };
        self.submit(operation, 0, 0, &[])
    }

    /// Submits a discard of `len` bytes at byte `offset` (whole logical sectors inside the
    /// disk; any length). `secure` asks for `BLKIF_DISCARD_SECURE`. Refused here with
    /// [`BlkError::NotSupported`] unless the backend offered discard (and secure discard if
    /// asked) and it is not switched off; a read-only disk refuses it too.
    pub fn submit_discard(
        &mut self,
        offset: u64,
        len: u64,
        secure: bool,
    ) -> Result<RequestId, BlkError> {
        if self.info.readonly {
            return Err(BlkError::ReadOnly);
        }
        let offered = match self.info.discard {
            Some(d) if self.features.discard => d,
            _ => return Err(BlkError::NotSupported),
        };
        if secure && !offered.secure {
            return Err(BlkError::NotSupported);
        }
        let unit = u64::from(self.info.sector_size);
        let bad = |v: u64| BlkError::BadLength(usize::try_from(v).unwrap_or(usize::MAX));
        if len == 0 || !len.is_multiple_of(unit) {
            return Err(bad(len));
        }
        if !offset.is_multiple_of(unit) {
            return Err(bad(offset));
        }
        let sector = offset / SECTOR;
        let sectors = len / SECTOR;
        match sector.checked_add(sectors) {
            Some(end) if end <= self.info.sectors => {}
            _ => return Err(BlkError::OutOfRange { sector, sectors }),
        }
        if let Some(e) = self.dead {
            return Err(e);
        }
        let (id, queue) = self.take_id()?;
        let request = BlkifRequestDiscard {
            operation: BLKIF_OP_DISCARD,
            flag: if secure { BLKIF_DISCARD_SECURE } else { 0 },
            handle: self.handle,
            id,
            sector_number: sector,
            nr_sectors: sectors,
            ..Default::default()
        };
        self.ring_of(queue)?
            .write_request(request.to_request())
            .map_err(|e| match e {
                RingError::Full => BlkError::RingFull,
                _ => BlkError::RingCorrupt,
            })?;
        self.table.insert(
            id,
            InFlight {
                operation: BLKIF_OP_DISCARD,
                len: 0,
                sector,
                pages: Vec::new(),
                indirect: Vec::new(),
                persistent: false,
                abandoned: false,
            },
        );
        self.stats.requests += 1;
        self.stats.discards += 1;
        self.note_in_flight(queue);
        Ok(RequestId(id))
    }

    /// The sector of byte `offset`, after checking `len` bytes there: whole logical sectors,
    /// at most one request, inside the disk.
    fn check_range(&self, offset: u64, len: usize) -> Result<u64, BlkError> {
        let unit = u64::from(self.info.sector_size);
        if len == 0 || len > self.max_request_bytes() || !(len as u64).is_multiple_of(unit) {
            return Err(BlkError::BadLength(len));
        }
        if !offset.is_multiple_of(unit) {
            return Err(BlkError::BadLength(
                usize::try_from(offset).unwrap_or(usize::MAX),
            ));
        }
        let sector = offset / SECTOR;
        let sectors = len as u64 / SECTOR;
        match sector.checked_add(sectors) {
            Some(end) if end <= self.info.sectors => Ok(sector),
            _ => Err(BlkError::OutOfRange { sector, sectors }),
        }
    }

    fn submit(
        &mut self,
        operation: u8,
        sector: u64,
        len: usize,
        data: &[u8],
    ) -> Result<RequestId, BlkError> {
        if let Some(e) = self.dead {
            return Err(e);
        }
        let (id, _) = self.take_id()?;
        self.submit_as(id, operation, sector, len, data)
    }

    /// A free slot for the next request and its queue: the queues are taken in turn
    /// (round-robin from the one after the last used, a full one skipped), so that requests
    /// spread evenly over them whatever the caller waits for. A slot whose completion the
    /// caller has not been given yet is not reused: its id would name two requests.
    fn take_id(&mut self) -> Result<(u64, usize), BlkError> {
        let count = self.queues.len();
        let done = &self.done;
        let undelivered = |id: u64| done.iter().any(|c| c.id == RequestId(id));
        for k in 0..count {
            let q = (self.next_queue + k) % count;
            let start = q as u64 * self.slots;
            let free = self
                .table
                .free_id_in(start, start + self.slots, |id| !undelivered(id));
            if let Some(id) = free {
                self.next_queue = (q + 1) % count;
                return Ok((id, q));
            }
        }
        Err(BlkError::RingFull)
    }

    /// The ring of queue `queue`.
    fn ring_of(
        &mut self,
        queue: usize,
    ) -> Result<&mut FrontRing<BlkifRequest, BlkifResponse>, BlkError> {
        self.queues
            .get_mut(queue)
            .map(|q| &mut q.ring)
            .ok_or(BlkError::UnknownRequest)
    }

    /// [`Blkfront::submit`] in slot `id` (free).
    fn submit_as(
        &mut self,
        id: u64,
        operation: u8,
        sector: u64,
        len: usize,
        data: &[u8],
    ) -> Result<RequestId, BlkError> {
        let queue = self.queue_of(id).ok_or(BlkError::UnknownRequest)?;
        let mut pages = Vec::new();
        let mut segments = Vec::new();
        for start in (0..len).step_by(PAGE) {
            let end = (start + PAGE).min(len);
            let readonly = operation == BLKIF_OP_WRITE;
            let contents = if readonly { data.get(start..end) } else { None };
            match self.data_page(queue, contents, readonly) {
                Ok(page) => {
                    // A segment is at most one page: 1..=8 sectors, so the last sector fits u8.
                    let last = u8::try_from((end - start) / SECTOR_BYTES - 1).unwrap_or(7);
                    segments.push(BlkifRequestSegment::new(page.gref().get(), 0, last));
                    pages.push(page);
                }
                Err(e) => {
                    self.abort_pages(queue, pages);
                    return Err(e);
                }
            }
        }
        let (request, indirect) = if segments.len() <= BLKIF_MAX_SEGMENTS_PER_REQUEST {
            let mut request = BlkifRequest {
                operation,
                handle: self.handle,
                id,
                sector_number: sector,
                // At most BLKIF_MAX_SEGMENTS_PER_REQUEST (11), checked just above.
                nr_segments: u8::try_from(segments.len()).unwrap_or(u8::MAX),
                ..Default::default()
            };
            for (slot, segment) in request.seg.iter_mut().zip(&segments) {
                *slot = *segment;
            }
            (request, Vec::new())
        } else {
            match self.indirect_request(queue, operation, id, sector, &segments) {
                Ok(built) => built,
                Err(e) => {
                    self.abort_pages(queue, pages);
                    return Err(e);
                }
            }
        };
        if let Err(e) = self.ring_of(queue)?.write_request(request) {
            self.abort_pages(queue, pages);
            self.abort_pages(queue, indirect);
            return Err(match e {
                RingError::Full => BlkError::RingFull,
                _ => BlkError::RingCorrupt,
            });
        }
        if !indirect.is_empty() {
            self.stats.indirect_requests += 1;
        }
        self.table.insert(
            id,
            InFlight {
                operation,
                len,
                sector,
                pages,
                indirect,
                persistent: self.persistent,
                abandoned: false,
            },
        );
        self.stats.requests += 1;
        self.note_in_flight(queue);
        Ok(RequestId(id))
    }

    /// Keeps the peak of requests in flight and counts a request put on queue `queue`.
    fn note_in_flight(&mut self, queue: usize) {
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.table.len() as u64);
        if let Some(n) = self.stats.queue_requests.get_mut(queue) {
            *n += 1;
        }
    }

    /// Publishes the requests submitted since the last kick and notifies the backend if the
    /// ring rules say it is waiting for them.
    pub fn kick(&mut self) -> Result<(), BlkError> {
        if self.dead.is_some() {
            return Ok(());
        }
        for queue in &mut self.queues {
            if queue.ring.push_requests_and_check_notify() {
                self.stats.notifications += 1;
                self.platform.events.notify(queue.port)?;
            }
        }
        Ok(())
    }

    /// The slot of an indirect request for `segments` (more than 11: `check_range` kept them
    /// within the negotiated count), and its indirect pages, granted read-only.
    fn indirect_request(
        &mut self,
        queue: usize,
        operation: u8,
        id: u64,
        sector: u64,
        segments: &[BlkifRequestSegment],
    ) -> Result<(BlkifRequest, Vec<GrantedPage>), BlkError> {
        let nr_segments =
            u16::try_from(segments.len()).map_err(|_| BlkError::BadLength(segments.len()))?;
        let mut request = BlkifRequestIndirect {
            operation: BLKIF_OP_INDIRECT,
            indirect_op: operation,
            nr_segments,
            id,
            sector_number: sector,
            handle: self.handle,
            ..Default::default()
        };
        let mut pages = Vec::new();
        let lists = segments.chunks(BLKIF_SEGMENTS_PER_INDIRECT_PAGE);
        for (slot, list) in request.indirect_grefs.iter_mut().zip(lists) {
            let bytes: Vec<u8> = list.iter().flat_map(segment_bytes).collect();
            match self.data_page(queue, Some(&bytes), true) {
                Ok(page) => {
                    *slot = page.gref().get();
                    pages.push(page);
                }
                Err(e) => {
                    self.abort_pages(queue, pages);
                    return Err(e);
                }
            }
        }
        Ok((request.to_request(), pages))
    }

    /// A page holding `data` (if any) for the backend: with persistent grants one of queue
    /// `queue`'s pool (granted read-write once, grown up to what a full ring needs; Linux keeps
    /// persistent grants per ring, as the backend maps them), otherwise a fresh page granted
    /// for this request (read-only if `readonly`).
    fn data_page(
        &mut self,
        queue: usize,
        data: Option<&[u8]>,
        readonly: bool,
    ) -> Result<GrantedPage, BlkError> {
        if !self.persistent {
            return self.grant_page(data, readonly);
        }
        let pool = self.queues.get_mut(queue).ok_or(BlkError::UnknownRequest)?;
        if let Some(page) = pool.pool.pop() {
            if let Some(data) = data
                && let Err(e) = page.page().write(0, data)
            {
                pool.pool.push(page);
                return Err(e.into());
            }
            self.stats.persistent_reused += 1;
            return Ok(page);
        }
        let page = self.grant_page(data, false)?;
        // Counted as held for the connection, not as a request's data grant.
        self.stats.data_grants = self.stats.data_grants.saturating_sub(1);
        self.stats.persistent_grants += 1;
        Ok(page)
    }

    /// A fresh page holding `data` (if any), granted to the backend (read-only if `readonly`).
    fn grant_page(&mut self, data: Option<&[u8]>, readonly: bool) -> Result<GrantedPage, BlkError> {
        let page = self.platform.pages.alloc_zeroed()?;
        if let Some(data) = data
            && let Err(e) = page.write(0, data)
        {
            self.platform.pages.release(page);
            return Err(e.into());
        }
        match self
            .platform
            .grants
            .grant(page, self.frontend.backend_id, readonly)
        {
            Ok(granted) => {
                self.stats.data_grants += 1;
                Ok(granted)
            }
            Err((page, e)) => {
                self.platform.pages.release(page);
                Err(BlkError::Grant(e))
            }
        }
    }

    /// Ends the grants of pages of a request that never reached the ring (persistent ones go
    /// back to the pool).
    fn abort_pages(&mut self, queue: usize, pages: Vec<GrantedPage>) {
        if self.persistent {
            self.return_to_pool(queue, pages);
            return;
        }
        if let Ok(pages) = self.end_pages(pages) {
            self.release_pages(pages);
        }
    }

    /// Ends the grants of `pages`; a page the backend still maps goes to quarantine.
    /// Returns the pages now ours, or `GrantStillMapped`.
    fn end_pages(&mut self, pages: Vec<GrantedPage>) -> Result<Vec<xenbus::Page>, BlkError> {
        let mut back = Vec::with_capacity(pages.len());
        let mut held = false;
        for granted in pages {
            self.stats.data_grants = self.stats.data_grants.saturating_sub(1);
            match self.platform.grants.end(granted) {
                Ok(page) => back.push(page),
                Err((granted, _)) => {
                    held = true;
                    self.quarantine.push(granted);
                }
            }
        }
        if held {
            for page in back {
                self.platform.pages.release(page);
            }
            return Err(BlkError::GrantStillMapped);
        }
        Ok(back)
    }

    /// Completes `request` with the backend's verdict: grants ended, data copied out.
    fn finish(&mut self, id: u64, request: InFlight, verdict: Result<Status, BadResponse>) {
        let InFlight {
            len,
            sector: _,
            pages,
            indirect,
            persistent,
            abandoned,
            operation,
        } = request;
        if persistent {
            // The grants stay (the backend keeps them mapped): the data is copied out and the
            // pages go back to the pool.
            let result = match verdict {
                Err(bad) => Err(BlkError::BadResponse(bad)),
                Ok(Status::Okay) if operation == BLKIF_OP_READ => {
                    copy_out(pages.iter().map(GrantedPage::page), len)
                }
                Ok(Status::Okay) => Ok(Vec::new()),
                Ok(Status::Error) => Err(BlkError::IoError),
                Ok(Status::NotSupported) => Err(BlkError::NotSupported),
            };
            let queue = self.queue_of(id).unwrap_or(0);
            self.return_to_pool(queue, pages);
            self.return_to_pool(queue, indirect);
            if !abandoned {
                self.done.push_back(Completion {
                    id: RequestId(id),
                    result,
                });
            }
            return;
        }
        let ended = self.end_pages(pages);
        let ended = match (ended, self.end_pages(indirect)) {
            (Ok(pages), Ok(lists)) => {
                self.release_pages(lists);
                Ok(pages)
            }
            (Ok(ours), Err(e)) | (Err(e), Ok(ours)) => {
                self.release_pages(ours);
                Err(e)
            }
            (Err(e), Err(_)) => Err(e),
        };
        let result = match (verdict, ended) {
            (Err(bad), ended) => {
                if let Ok(pages) = ended {
                    self.release_pages(pages);
                }
                Err(BlkError::BadResponse(bad))
            }
            (Ok(_), Err(e)) => Err(e),
            (Ok(status), Ok(pages)) => {
                let result = match status {
                    Status::Okay if operation == BLKIF_OP_READ => copy_out(pages.iter(), len),
                    Status::Okay => Ok(Vec::new()),
                    Status::Error => Err(BlkError::IoError),
                    Status::NotSupported => Err(BlkError::NotSupported),
                };
                self.release_pages(pages);
                result
            }
        };
        if !abandoned {
            self.done.push_back(Completion {
                id: RequestId(id),
                result,
            });
        }
    }

    /// Persistent grants back to queue `queue`'s pool (to queue 0's if there is no such
    /// queue: they are ended with the rest at the close).
    fn return_to_pool(&mut self, queue: usize, pages: Vec<GrantedPage>) {
        let n = if queue < self.queues.len() { queue } else { 0 };
        if let Some(q) = self.queues.get_mut(n) {
            q.pool.extend(pages);
        } else {
            self.quarantine.extend(pages);
        }
    }

    fn release_pages(&mut self, pages: Vec<xenbus::Page>) {
        for page in pages {
            self.platform.pages.release(page);
        }
    }

    /// Takes every response the backend has produced, checks it, and completes its request;
    /// returns the completions so far (including those of requests that failed).
    pub fn poll(&mut self) -> Vec<Completion> {
        if let Err(e) = self.kick() {
            // The backend cannot be told about requests: they would never complete.
            self.kill(e);
        }
        self.retry_quarantine();
        for queue in 0..self.queues.len() {
            if self.dead.is_some() {
                break;
            }
            while let Some(q) = self.queues.get_mut(queue) {
                match q.ring.take_response() {
                    Ok(Some(response)) => self.take(queue, &response),
                    Ok(None) => match q.ring.final_check_for_responses() {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(_) => {
                            self.kill(BlkError::RingCorrupt);
                            break;
                        }
                    },
                    Err(_) => {
                        self.kill(BlkError::RingCorrupt);
                        break;
                    }
                }
            }
        }
        self.done.drain(..).collect()
    }

    /// Completes the request a response on queue `queue` names; a response naming a request
    /// of another queue (or none) is counted as bad and completes nothing.
    fn take(&mut self, queue: usize, response: &BlkifResponse) {
        if self.queue_of(response.id) != Some(queue) {
            self.stats.bad_responses += 1;
            return;
        }
        match self.table.complete(response) {
            Ok((id, request, verdict)) => {
                if verdict.is_err() {
                    self.stats.bad_responses += 1;
                } else {
                    self.stats.responses += 1;
                }
                self.finish(id, request, verdict);
            }
            Err(_) => self.stats.bad_responses += 1,
        }
    }

    /// Ends the device: every request in flight fails with `error`, later calls too.
    fn kill(&mut self, error: BlkError) {
        self.dead = Some(error);
        for (id, request) in self.table.drain() {
            self.finish(id, request, Ok(Status::Error));
            if let Some(last) = self.done.back_mut()
                && last.id == RequestId(id)
            {
                last.result = Err(error);
            }
        }
    }

    /// Pages kept from a backend that held them: end them now if it has let go.
    fn retry_quarantine(&mut self) {
        for granted in core::mem::take(&mut self.quarantine) {
            match self.platform.grants.end(granted) {
                Ok(page) => self.platform.pages.release(page),
                Err((granted, _)) => self.quarantine.push(granted),
            }
        }
    }

    /// Waits for request `id`: polls, watches the backend's state, and waits on the port,
    /// until it completes, the backend goes away, or `deadline` passes (checked every round).
    pub fn wait_for<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        id: RequestId,
        deadline: Instant,
    ) -> Result<Vec<u8>, BlkError> {
        loop {
            let completions = self.poll();
            let mut mine = None;
            for c in completions {
                if c.id == id {
                    mine = Some(c.result);
                } else {
                    self.done.push_back(c);
                }
            }
            if let Some(result) = mine {
                return result;
            }
            if let Some(e) = self.dead {
                return Err(e);
            }
            if self.table.get_mut(id.0).is_none() {
                return Err(BlkError::UnknownRequest);
            }
            self.check_backend(xs, deadline)?;
            if xs.now() >= deadline {
                if let Some(request) = self.table.get_mut(id.0) {
                    request.abandoned = true;
                }
                self.stats.timeouts += 1;
                if self.backend_took_everything(self.queue_of(id.0).unwrap_or(0)) {
                    self.stats.timeouts_taken += 1;
                }
                return Err(BlkError::Timeout);
            }
            let port = self
                .queue_of(id.0)
                .and_then(|q| self.queues.get(q))
                .map_or(self.port, |q| q.port);
            self.platform.events.wait(port, deadline);
        }
    }

    /// Whether the backend's `req_event` (offset 4 of the ring's first page) is one past every
    /// request published: it consumed them all and asked to hear of the next.
    fn backend_took_everything(&self, queue: usize) -> bool {
        let mut raw = [0u8; 4];
        self.queues.get(queue).is_some_and(|q| {
            q.ring_pages
                .first()
                .is_some_and(|p| p.page().read(4, &mut raw).is_ok())
                && u32::from_le_bytes(raw) == q.ring.req_prod_pvt().wrapping_add(1)
        })
    }

    /// Ends the device if the backend's state says it is closing or gone; a re-asserted
    /// Connected reads the size again (a size refused is counted and the size kept: the
    /// request being waited for goes on).
    fn check_backend<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), BlkError> {
        if xs.poll().is_ok() && !self.frontend.take_backend_events(xs) {
            return Ok(());
        }
        self.look_at_backend(xs, deadline).map(drop)
    }

    /// Reads the backend's state: Closing, Closed or gone ends the device; Connected reads
    /// `sectors` again. Returns why a new size was refused, if it was.
    fn look_at_backend<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<Option<ResizeRefused>, BlkError> {
        match self.frontend.backend_state(xs, deadline) {
            Ok(XenbusState::Closing | XenbusState::Closed) | Err(_) => {
                self.kill(BlkError::BackendGone);
                Err(BlkError::BackendGone)
            }
            Ok(XenbusState::Connected) => Ok(self.reread_size(xs, deadline).err()),
            Ok(_) => Ok(None),
        }
    }

    /// The backend re-asserted Connected (Linux blkback's `xen_vbd_resize` writes `sectors`
    /// and `state` in one transaction): reads `sectors` again, as Linux blkfront's
    /// `blkfront_connect` does when already connected (a missing key changes nothing, as
    /// there). A value that is no number of sectors, zero, not a whole number of logical
    /// sectors, too large for byte offsets, or below a request in flight is refused and
    /// counted ([`BlkStats::resizes_refused`]); the size stays as it was.
    fn reread_size<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), ResizeRefused> {
        let Ok(Some(text)) =
            xs.read_optional(TxId::NONE, &self.frontend.backend_node("sectors"), deadline)
        else {
            return Ok(());
        };
        let unit = u64::from(self.info.sector_size / 512).max(1);
        let checked = parse_sectors(&text, unit).and_then(|sectors| {
            let in_flight_end = self.table.end_sector();
            if sectors < in_flight_end {
                Err(ResizeRefused::BelowInFlight {
                    sectors,
                    in_flight_end,
                })
            } else {
                Ok(sectors)
            }
        });
        match checked {
            Ok(sectors) => {
                if sectors != self.info.sectors {
                    self.info.sectors = sectors;
                    self.stats.resizes += 1;
                }
                Ok(())
            }
            Err(why) => {
                self.stats.resizes_refused += 1;
                Err(why)
            }
        }
    }

    /// Looks at the backend now, event or not: its state is followed (Closing or Closed ends
    /// the device) and, while it is Connected, `sectors` is read again: a resized disk's new
    /// size is taken, or refused with [`BlkError::ResizeRefused`] (the size kept).
    pub fn refresh<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), BlkError> {
        if let Some(e) = self.dead {
            return Err(e);
        }
        // The events so far are answered by this look.
        if xs.poll().is_ok() {
            let _ = self.frontend.take_backend_events(xs);
        }
        match self.look_at_backend(xs, deadline)? {
            Some(why) => Err(BlkError::ResizeRefused(why)),
            None => Ok(()),
        }
    }

    /// Reads `len` bytes at byte `offset`, waiting until `deadline`.
    pub fn read<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        offset: u64,
        len: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, BlkError> {
        let id = self.submit_read(offset, len)?;
        self.wait_for(xs, id, deadline)
    }

    /// Writes `data` at byte `offset`, waiting until `deadline`.
    pub fn write<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        offset: u64,
        data: &[u8],
        deadline: Instant,
    ) -> Result<(), BlkError> {
        let id = self.submit_write(offset, data)?;
        self.wait_for(xs, id, deadline).map(drop)
    }

    /// Discards `len` bytes at byte `offset` ([`Blkfront::submit_discard`]), waiting until
    /// `deadline`.
    pub fn discard<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        offset: u64,
        len: u64,
        secure: bool,
        deadline: Instant,
    ) -> Result<(), BlkError> {
        let id = self.submit_discard(offset, len, secure)?;
        self.wait_for(xs, id, deadline).map(drop)
    }

    /// Flushes the disk's write cache, waiting until `deadline`.
    pub fn flush<T: XsTransport>(
        &mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), BlkError> {
        let id = self.submit_flush()?;
        self.wait_for(xs, id, deadline).map(drop)
    }

    /// Disconnects as Linux blkback expects: Closing, wait for the backend's Closing, Closed,
    /// wait for the backend's Closed (blkback unmaps the ring only when the front end is
    /// Closed), then the ring's grant is ended and the port closed. Requests in flight fail
    /// with [`BlkError::BackendGone`].
    pub fn close<T: XsTransport>(
        mut self,
        xs: &mut XsClient<T>,
        deadline: Instant,
    ) -> Result<(), BlkError> {
        use xenbus::frontend::XenbusError;
        let closed = |s| matches!(s, XenbusState::Closing | XenbusState::Closed);
        self.frontend
            .set_state(xs, XenbusState::Closing, deadline)?;
        let closing = self.frontend.wait_backend_state(xs, closed, deadline);
        self.frontend.set_state(xs, XenbusState::Closed, deadline)?;
        let done = closing.and_then(|_| self.frontend.wait_backend_closed(xs, deadline));
        self.kill(BlkError::BackendGone);
        self.release_ring();
        let _ = self.frontend.close(xs, deadline);
        match done {
            Ok(_) | Err(XenbusError::BackendGone) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends the ring's grant, the pool's persistent grants (blkback unmaps them when the front
    /// end is Closed) and the port; a grant still mapped goes to quarantine.
    fn release_ring(&mut self) {
        for queue in &mut self.queues {
            for granted in core::mem::take(&mut queue.pool) {
                self.stats.persistent_grants = self.stats.persistent_grants.saturating_sub(1);
                match self.platform.grants.end(granted) {
                    Ok(page) => self.platform.pages.release(page),
                    Err((granted, _)) => self.quarantine.push(granted),
                }
            }
            for granted in core::mem::take(&mut queue.ring_pages) {
                match self.platform.grants.end(granted) {
                    Ok(page) => self.platform.pages.release(page),
                    Err((granted, _)) => self.quarantine.push(granted),
                }
            }
            self.platform.events.close(queue.port);
        }
    }

    /// `2^order` zeroed pages with a front ring laid over them end to end, each granted to
    /// `backend` (writable), in ring order. On a failure nothing stays granted or allocated.
    fn grant_ring(
        platform: &mut Platform<P, G, E>,
        backend: xenbus::DomId,
        order: u32,
    ) -> Result<(FrontRing<BlkifRequest, BlkifResponse>, Vec<GrantedPage>), BlkError> {
        let count = 1usize << order.min(abi::ring::MAX_RING_PAGE_ORDER);
        let mut pages = Vec::with_capacity(count);
        for _ in 0..count {
            match platform.pages.alloc_zeroed() {
                Ok(page) => pages.push(page),
                Err(e) => {
                    for page in pages {
                        platform.pages.release(page);
                    }
                    return Err(e.into());
                }
            }
        }
        let ring = match xenbus::Page::init_front_ring_on(&pages) {
            Ok(ring) => ring,
            Err(e) => {
                for page in pages {
                    platform.pages.release(page);
                }
                return Err(e.into());
            }
        };
        let mut granted = Vec::with_capacity(count);
        let mut pages = pages.into_iter();
        while let Some(page) = pages.next() {
            match platform.grants.grant(page, backend, false) {
                Ok(g) => granted.push(g),
                Err((page, e)) => {
                    platform.pages.release(page);
                    for page in pages {
                        platform.pages.release(page);
                    }
                    end_ring(platform, granted);
                    return Err(BlkError::Grant(e));
                }
            }
        }
        Ok((ring, granted))
    }
}

/// The `sectors` a backend announced, checked: a decimal number, not zero, a whole number of
/// logical sectors (`unit` 512-byte sectors each), its bytes inside 64 bits.
fn parse_sectors(text: &str, unit: u64) -> Result<u64, ResizeRefused> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResizeRefused::Malformed);
    }
    let sectors = text.parse::<u64>().map_err(|_| ResizeRefused::Malformed)?;
    if sectors == 0 {
        return Err(ResizeRefused::Zero);
    }
    if sectors.checked_mul(SECTOR).is_none() {
        return Err(ResizeRefused::TooLarge(sectors));
    }
    if !sectors.is_multiple_of(unit) {
        return Err(ResizeRefused::NotWholeSectors(sectors));
    }
    Ok(sectors)
}

/// Ends the grants of ring pages no backend was told of (a failed connect before publishing);
/// a page still mapped is kept away for good rather than reused.
fn end_ring<P: PageProvider, G: GrantAccess, E>(
    platform: &mut Platform<P, G, E>,
    pages: Vec<GrantedPage>,
) {
    for granted in pages {
        if let Ok(page) = platform.grants.end(granted) {
            platform.pages.release(page);
        }
    }
}

/// `segment` as the 8 bytes of `struct blkif_request_segment` (an indirect page's entry).
fn segment_bytes(segment: &BlkifRequestSegment) -> [u8; 8] {
    let gref = segment.gref.to_le_bytes();
    [
        gref[0],
        gref[1],
        gref[2],
        gref[3],
        segment.first_sect,
        segment.last_sect,
        0,
        0,
    ]
}

/// The first `len` bytes of `pages`, in order.
fn copy_out<'a>(
    pages: impl Iterator<Item = &'a xenbus::Page>,
    len: usize,
) -> Result<Vec<u8>, BlkError> {
    let mut out = vec![0u8; len];
    for (page, chunk) in pages.zip(out.chunks_mut(PAGE)) {
        page.read(0, chunk)?;
    }
    Ok(out)
}

impl From<GrantError> for BlkError {
    fn from(e: GrantError) -> Self {
        Self::Grant(e)
    }
}
