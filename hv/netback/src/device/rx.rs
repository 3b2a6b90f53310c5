//! The rx ring: frames to the front end, copied into the buffers it posted (rx-copy, as
//! netback's `xenvif_rx_skb` and `xenvif_rx_data_slot` fill them).
//!
//! A frame takes one slot per page of data, each filled from offset 0; every slot but the
//! last is flagged `NETRXF_more_data`. The frames handed to [`Netback::deliver`] are
//! complete (checksums filled in), which Linux sends with no checksum flag
//! (`CHECKSUM_NONE`): no `NETRXF_csum_blank`, no `NETRXF_data_validated`, no extra-info
//! slots. A packet merged by [`crate::gro`] ([`Netback::deliver_gso`], only to a front end
//! that takes GSO) goes as Linux's netback sends a GRO packet (`CHECKSUM_PARTIAL`): its
//! first slot flagged `NETRXF_extra_info | NETRXF_csum_blank | NETRXF_data_validated`, a
//! GSO extra (TCPv4, the segment size) in the next slot, then the rest of its data. A
//! buffer whose grant does not map gets its slot answered `NETIF_RSP_ERROR`, as Linux
//! answers a failed grant copy.
//!
//! # Too few buffers posted
//! As Linux's `xenvif_start_xmit` queues a frame on the vif's rx queue and its rx thread
//! copies it once the front end has posted enough buffers, a frame that finds too few here
//! waits in the vif's queue, in order, and the front end is asked to notify when it posts
//! more (`req_event`). The queue holds at most [`RX_QUEUE_BYTES`] (Linux stops the vif's
//! queue at `XENVIF_RX_QUEUE_BYTES`, half a ring of pages, and its qdisc drops beyond);
//! a frame beyond that is dropped and counted. A frame that waited longer than
//! [`RX_DRAIN_TIMEOUT_NS`] (Linux's `rx_drain_timeout_msecs`, 10 s) is dropped and counted
//! ([`Netback::drain_rx`]). Before, a frame that found too few buffers was dropped at once: a
//! front end that posts its buffers as it goes, as Linux's netfront does, lost frames that
//! Linux's netback would have delivered a moment later.
//!
//! # Queues
//! With several queues a frame goes to the queue its flow hashes to ([`queue_for`]; Linux's
//! `xenvif_select_queue` takes the skb's hash modulo the queue count), so one connection's
//! frames keep their order. Each queue has its own waiting frames (the vif's
//! [`RX_QUEUE_BYTES`] shared out) and notifies on its rx channel.

use super::{DeliverError, Netback, Queue, tx::count_queue, tx::overrun};
use crate::checksum::ETH_HLEN;
use abi::io::netif::{
    NETIF_RSP_ERROR, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    NetifExtraInfo, NetifRxResponse, XEN_NETIF_MAX_TX_SIZE,
};
use alloc::vec::Vec;
use xenbus::backend::{GrantMapper, InterdomainEvents};
use xenbus::{GrantRef, Instant};

/// Bytes of a page (one rx buffer).
const PAGE: usize = 4096;
/// The longest frame for a front end without `feature-sg`: Linux caps its vif's MTU at 1500
/// (`ETH_DATA_LEN`), plus the Ethernet header and an 802.1Q tag.
pub const MAX_FRAME_WITHOUT_SG: usize = 1518;
/// The most bytes of frames a vif keeps waiting for rx buffers: half of Linux's
/// `XENVIF_RX_QUEUE_BYTES` (half a ring of pages, 512 KiB), since hv's heap holds every
/// vif's queue (see `hv::kernel::start::heap_bytes`).
pub const RX_QUEUE_BYTES: usize = 256 * 1024;
/// How long a frame may wait for rx buffers before it is dropped: Linux's
/// `rx_drain_timeout_msecs`, 10 s.
pub const RX_DRAIN_TIMEOUT_NS: u64 = 10_000_000_000;

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The queue of `queues` a frame to the front end goes to: a hash of its IPv4 or IPv6
/// addresses, protocol and (TCP, UDP) ports; queue 0 for anything else (ARP).
pub fn queue_for(frame: &[u8], queues: usize) -> usize {
    let ethertype = frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
    let (addresses, proto, l4) = match ethertype {
        Some(0x0800) => {
            let ihl = frame.get(14).map_or(0, |v| usize::from(v & 0x0f) * 4);
            (frame.get(26..34), frame.get(23).copied(), 14 + ihl)
        }
        Some(0x86dd) => (frame.get(22..54), frame.get(20).copied(), 54),
        _ => return 0,
    };
    let (Some(addresses), Some(proto)) = (addresses, proto) else {
        return 0;
    };
    let mut hash = fnv(fnv(0x811c_9dc5, addresses), &[proto]);
    if matches!(proto, 6 | 17)
        && let Some(ports) = frame.get(l4..l4 + 4)
    {
        hash = fnv(hash, ports);
    }
    usize::try_from(hash).unwrap_or(0) % queues.max(1)
}

/// What the front end takes on its rx rings.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caps {
    /// `feature-sg`: a frame may take several slots.
    sg: bool,
    /// GSO packets ([`Netback::rx_gso`]).
    gso: bool,
}

impl Caps {
    fn of(conn: &super::Connection) -> Self {
        Self {
            sg: conn.can_sg,
            gso: conn.rx_gso,
        }
    }
}

/// What [`Netback::deliver`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Copied to the front end's buffers (published by the next [`Netback::flush_rx`]).
    Copied,
    /// Too few buffers posted (or frames already waiting): queued until the front end posts
    /// more ([`Netback::drain_rx`]).
    Queued,
}

/// Frames waiting for rx buffers, oldest first.
#[derive(Debug, Default)]
pub(super) struct RxQueue {
    /// Each frame, when it was queued, and its GSO segment size if it has one.
    frames: alloc::collections::VecDeque<(Vec<u8>, Instant, Option<u16>)>,
    bytes: usize,
}

impl RxQueue {
    /// Frames waiting.
    pub(super) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Drops every frame (the rings went away); how many.
    pub(super) fn clear(&mut self) -> usize {
        let n = self.frames.len();
        self.frames.clear();
        self.bytes = 0;
        n
    }
}

impl<M: GrantMapper, E: InterdomainEvents> Netback<M, E> {
    /// Copies one Ethernet frame into the buffers the front end posted on the rx ring of the
    /// frame's queue (rx-copy), or queues it behind the frames already waiting there when
    /// too few are posted (see the module docs). `Err(DeliverError::NoBuffers)` when it can
    /// wait no more (the queue is full: dropped and counted),
    /// `Err(DeliverError::NotConnected)` when not connected or disabled. Responses are
    /// produced but the front end is notified only by [`Netback::flush_rx`]. `now` times the
    /// frame's wait.
    pub fn deliver(&mut self, frame: &[u8], now: Instant) -> Result<Delivered, DeliverError> {
        self.deliver_gso(frame, None, now)
    }

    /// [`Netback::deliver`] of a TCP/IPv4 packet of segments of `gso_size` bytes (from
    /// [`crate::gro`], its TCP checksum field holding the pseudo-header sum) if `gso_size` is
    /// given: it goes with a GSO extra after its first slot, flagged `NETRXF_csum_blank |
    /// NETRXF_data_validated` as Linux's netback sends a `CHECKSUM_PARTIAL` packet. Refused
    /// (`BadLength`) unless the front end takes GSO ([`Netback::rx_gso`]).
    pub fn deliver_gso(
        &mut self,
        frame: &[u8],
        gso_size: Option<u16>,
        now: Instant,
    ) -> Result<Delivered, DeliverError> {
        let Some(mut conn) = self.connection.take() else {
            self.stats.rx_errors += 1;
            return Err(DeliverError::NotConnected);
        };
        let (caps, queues) = (Caps::of(&conn), conn.queues.len());
        let q = queue_for(frame, queues);
        let Some(queue) = conn.queues.get_mut(q) else {
            self.connection = Some(conn);
            self.stats.rx_errors += 1;
            return Err(DeliverError::NotConnected);
        };
        let mut result = self.drain_on(q, queue, caps, now).map(|_| ());
        if result.is_ok() {
            result = if queue.waiting.len() == 0 {
                self.deliver_on(q, queue, caps, frame, gso_size)
            } else {
                Err(DeliverError::NoBuffers)
            };
        }
        let result = match result {
            Ok(()) => Ok(Delivered::Copied),
            Err(DeliverError::NoBuffers) => self.enqueue(queue, queues, frame, gso_size, now),
            Err(e) => Err(e),
        };
        self.connection = Some(conn);
        result
    }

    /// Copies the waiting frames that the posted buffers now take, oldest first on each
    /// queue, after dropping (and counting) those that waited longer than
    /// [`RX_DRAIN_TIMEOUT_NS`]. Returns how many were copied (publish them with
    /// [`Netback::flush_rx`]).
    pub fn drain_rx(&mut self, now: Instant) -> usize {
        let Some(mut conn) = self.connection.take() else {
            return 0;
        };
        let caps = Caps::of(&conn);
        let mut copied = 0;
        for (q, queue) in conn.queues.iter_mut().enumerate() {
            copied += self.drain_on(q, queue, caps, now).unwrap_or(0);
        }
        self.connection = Some(conn);
        copied
    }

    /// Frames waiting for rx buffers, over every queue.
    pub fn rx_waiting(&self) -> usize {
        self.connection
            .as_ref()
            .map_or(0, |c| c.queues.iter().map(|q| q.waiting.len()).sum())
    }

    /// Queues `frame` on `queue` if its share of [`RX_QUEUE_BYTES`] has room, else drops it.
    fn enqueue(
        &mut self,
        queue: &mut Queue,
        queues: usize,
        frame: &[u8],
        gso_size: Option<u16>,
        now: Instant,
    ) -> Result<Delivered, DeliverError> {
        let q = &mut queue.waiting;
        if q.bytes.saturating_add(frame.len()) > RX_QUEUE_BYTES / queues.max(1) {
            self.stats.rx_dropped += 1;
            return Err(DeliverError::NoBuffers);
        }
        q.bytes += frame.len();
        q.frames.push_back((frame.to_vec(), now, gso_size));
        self.stats.rx_queued += 1;
        Ok(Delivered::Queued)
    }

    /// [`Netback::drain_rx`] on queue `q`: `Err` only when the vif was disabled (its
    /// waiting frames are dropped then).
    fn drain_on(
        &mut self,
        q: usize,
        queue: &mut Queue,
        caps: Caps,
        now: Instant,
    ) -> Result<usize, DeliverError> {
        let mut copied = 0;
        while let Some((frame, since, gso_size)) = queue.waiting.frames.pop_front() {
            queue.waiting.bytes -= frame.len();
            if now.as_nanos().saturating_sub(since.as_nanos()) > RX_DRAIN_TIMEOUT_NS {
                self.stats.rx_dropped += 1;
                self.stats.rx_expired += 1;
                continue;
            }
            match self.deliver_on(q, queue, caps, &frame, gso_size) {
                Ok(()) => copied += 1,
                // Still too few: it waits on, at the head.
                Err(DeliverError::NoBuffers) => {
                    queue.waiting.bytes += frame.len();
                    queue.waiting.frames.push_front((frame, since, gso_size));
                    break;
                }
                // A buffer that did not map (answered, counted): the next frame goes on.
                Err(DeliverError::BadBuffer | DeliverError::BadLength) => {}
                Err(DeliverError::NotConnected) => {
                    self.stats.rx_dropped += queue.waiting.clear() as u64;
                    return Err(DeliverError::NotConnected);
                }
            }
        }
        Ok(copied)
    }

    fn deliver_on(
        &mut self,
        q: usize,
        conn: &mut Queue,
        caps: Caps,
        frame: &[u8],
        gso_size: Option<u16>,
    ) -> Result<(), DeliverError> {
        if self.fatal.is_some() {
            self.stats.rx_errors += 1;
            return Err(DeliverError::NotConnected);
        }
        let max = if caps.sg {
            usize::from(XEN_NETIF_MAX_TX_SIZE)
        } else {
            MAX_FRAME_WITHOUT_SG
        };
        if frame.len() < ETH_HLEN || frame.len() > max || (gso_size.is_some() && !caps.gso) {
            self.stats.rx_errors += 1;
            return Err(DeliverError::BadLength);
        }
        // One slot per page, and the GSO extra's.
        let extra = u32::from(gso_size.is_some());
        let needed = u32::try_from(frame.len().div_ceil(PAGE))
            .unwrap_or(u32::MAX)
            .saturating_add(extra);
        let mut available = conn.rx.unconsumed_requests();
        if matches!(available, Ok(n) if n < needed) {
            // Ask to be told when buffers are posted, then look once more.
            available = conn
                .rx
                .final_check_for_requests()
                .and_then(|_| conn.rx.unconsumed_requests());
        }
        match available {
            Ok(n) if n >= needed => {}
            // The caller queues it (or drops and counts it).
            Ok(_) => return Err(DeliverError::NoBuffers),
            Err(e) => {
                self.disable(overrun("rx", e));
                self.stats.rx_errors += 1;
                return Err(DeliverError::NotConnected);
            }
        }
        let count = frame.chunks(PAGE).count();
        let mut failed = false;
        for (i, chunk) in frame.chunks(PAGE).enumerate() {
            let request = match conn.rx.take_request() {
                Ok(Some(request)) => request,
                // The producer index moved backwards or beyond the ring since it was read.
                Ok(None) | Err(_) => {
                    let e = conn.rx.unconsumed_requests().err();
                    self.disable(overrun("rx", e.unwrap_or(abi::ring::RingError::Null)));
                    self.stats.rx_errors += 1;
                    return Err(DeliverError::NotConnected);
                }
            };
            let mut flags = if i + 1 < count { NETRXF_MORE_DATA } else { 0 };
            if i == 0 && gso_size.is_some() {
                flags |= NETRXF_EXTRA_INFO | NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
            }
            // At most a page: it fits.
            let mut status = i16::try_from(chunk.len()).unwrap_or(NETIF_RSP_ERROR);
            if !self.copy_to(request.gref, chunk) {
                status = NETIF_RSP_ERROR;
                failed = true;
            }
            // A request was just taken, so its response slot is free.
            let _ = conn.rx.write_response(NetifRxResponse {
                id: request.id,
                offset: 0,
                flags,
                status,
            });
            self.stats.rx_slots += 1;
            if i == 0
                && let Some(size) = gso_size
            {
                // The extra goes in the next slot (`xenvif_rx_extra_slot`): its buffer is
                // taken and the front end posts it again.
                if !Self::gso_extra(conn, size) {
                    self.disable(overrun("rx", abi::ring::RingError::Null));
                    self.stats.rx_errors += 1;
                    return Err(DeliverError::NotConnected);
                }
                self.stats.rx_slots += 1;
            }
        }
        conn.rx_unpushed = true;
        if failed {
            self.stats.rx_errors += 1;
            return Err(DeliverError::BadBuffer);
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.len() as u64;
        count_queue(&mut self.stats.rx_frames_per_queue, q);
        if gso_size.is_some() {
            self.stats.rx_gso += 1;
        }
        Ok(())
    }

    /// Takes the next request for a GSO extra of segment size `size`; false if the ring has
    /// none (counted before, so only a producer index moving backwards gets here).
    fn gso_extra(conn: &mut Queue, size: u16) -> bool {
        if !matches!(conn.rx.take_request(), Ok(Some(_))) {
            return false;
        }
        let extra = NetifExtraInfo::gso_tcpv4(size);
        // A request was just taken, so its response slot is free.
        let _ = conn.rx.write_response(extra.to_rx_response());
        true
    }

    /// Copies `data` to the start of the front end's buffer `gref`, mapped writable for the
    /// copy only; false if the grant does not map.
    fn copy_to(&mut self, gref: u32, data: &[u8]) -> bool {
        let Ok(gref) = GrantRef::try_new(gref) else {
            return false;
        };
        let Ok(page) = self.grants.map(self.xen.frontend_id, gref, true) else {
            return false;
        };
        let written = page.write(0, data).is_ok();
        self.grants.unmap(page);
        written
    }

    /// Pushes the rx responses made since the last call on each queue and notifies its rx
    /// channel once if the ring rules ask (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn flush_rx(&mut self) {
        let Some(conn) = self.connection.as_mut() else {
            return;
        };
        for queue in &mut conn.queues {
            if !queue.rx_unpushed {
                continue;
            }
            queue.rx_unpushed = false;
            if queue.rx.push_responses_and_check_notify() {
                self.stats.rx_notifications += 1;
                // A refused notification leaves the responses for the front end's next look.
                let _ = self.events.notify(queue.rx_port);
            }
        }
    }
}
