//! The tx ring: frames from the front end, as netback's `xenvif_tx_build_gops`,
//! `xenvif_get_extras` and `xenvif_count_requests` take them.
//!
//! A packet is a first request (whose `size` is the whole packet's), extra-info slots after it
//! when it is flagged `NETTXF_extra_info`, then the slots of a `NETTXF_more_data` chain. The
//! rules, in Linux's order:
//! - the producer index may not be more than a ring ahead (fatal);
//! - every extra-info slot announced must be published (fatal), and be of a known type
//!   (fatal);
//! - a chain must be published whole (fatal), and have at most `FATAL_SKB_SLOTS` (20) slots
//!   after the first (fatal); from `XEN_NETBK_LEGACY_SLOTS_MAX` (18) on, or when a slot is
//!   larger than what remains of the packet's size, the packet is refused
//!   (`NETIF_RSP_ERROR` on each of its slots, the vif goes on);
//! - no slot may cross the end of its page (fatal);
//! - the first slot must hold at least an Ethernet header (refused);
//! - a GSO extra must have a non-zero size and a TCPv4/TCPv6 type (fatal); a valid one's
//!   packet is cut into segments of that size ([`crate::gso`]), each handed out on its own;
//! - a grant that does not map refuses the packet (a failed grant copy in Linux).
//!
//! Each slot is answered in ring order (`NETIF_RSP_NULL` for extra-info slots). The data is
//! reached through a read-only mapping held only for the copy. A packet flagged
//! `NETTXF_csum_blank` gets its checksum completed ([`crate::checksum`]) before it is handed
//! out; one that cannot be completed is answered OKAY and dropped, as Linux does (so is a GSO
//! packet that cannot be segmented).
#![allow(
    clippy::cast_possible_truncation,
    reason = "ring indices and slot counts are below the ring size (256)"
)]

use super::{FatalError, Netback, Queue};
use crate::checksum::{ETH_HLEN, complete_checksum};
use abi::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_CSUM_BLANK, NETTXF_EXTRA_INFO,
    NETTXF_MORE_DATA, NetifExtraInfo, NetifTxRequest, NetifTxResponse, XEN_NETIF_EXTRA_FLAG_MORE,
    XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_MAX, XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
    XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};
use abi::ring::RingError;
use alloc::vec;
use alloc::vec::Vec;
use xenbus::GrantRef;
use xenbus::backend::{GrantMapper, InterdomainEvents};

/// `FATAL_SKB_SLOTS_DEFAULT`: more slots than this after the first is malicious.
pub const FATAL_SKB_SLOTS: u32 = 20;
/// `XEN_NETBK_LEGACY_SLOTS_MAX`: from this many slots after the first on, a packet is refused.
pub const LEGACY_SLOTS_MAX: u32 = 18;
/// Bytes of a page.
const PAGE: usize = 4096;

/// How a packet ended, short of a fatal error.
enum Packet {
    /// Answered (OKAY or ERROR); nothing to hand out.
    Answered,
    /// Answered OKAY; this frame goes out.
    Frame(Vec<u8>),
    /// Answered OKAY; this packet goes out cut into segments of this many payload bytes.
    Gso(Vec<u8>, u16),
}

impl<M: GrantMapper, E: InterdomainEvents> Netback<M, E> {
    /// Consumes at most a ring's worth of tx requests (whole packets) from each queue,
    /// handing frames to `out`; returns whether more may be waiting.
    pub(super) fn serve_tx(&mut self, out: &mut dyn FnMut(&[u8])) -> bool {
        let Some(mut conn) = self.connection.take() else {
            return false;
        };
        let mut more = false;
        for (q, queue) in conn.queues.iter_mut().enumerate() {
            if self.fatal.is_some() {
                break;
            }
            more |= self.serve_queue(q, queue, out);
        }
        self.connection = Some(conn);
        more
    }

    /// [`Self::serve_tx`] for queue `q`.
    fn serve_queue(&mut self, q: usize, conn: &mut Queue, out: &mut dyn FnMut(&[u8])) -> bool {
        let budget = conn.tx.size();
        let mut consumed = 0u32;
        let mut answered = false;
        let mut more = false;
        loop {
            if consumed >= budget {
                more = conn.tx.unconsumed_requests().is_ok_and(|n| n > 0);
                break;
            }
            let available = match conn.tx.unconsumed_requests() {
                Ok(0) => match conn.tx.final_check_for_requests() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        self.disable(overrun("tx", e));
                        break;
                    }
                },
                Ok(n) => n,
                Err(e) => {
                    self.disable(overrun("tx", e));
                    break;
                }
            };
            let start = conn.tx.req_cons();
            let packet = self.packet(conn, available);
            let taken = conn.tx.req_cons().wrapping_sub(start);
            consumed = consumed.saturating_add(taken);
            self.stats.tx_slots += u64::from(taken);
            match packet {
                Ok(Packet::Answered) => answered = true,
                Ok(Packet::Frame(frame)) => {
                    answered = true;
                    self.stats.tx_frames += 1;
                    count_queue(&mut self.stats.tx_frames_per_queue, q);
                    self.stats.tx_bytes += frame.len() as u64;
                    out(&frame);
                }
                Ok(Packet::Gso(packet, mss)) => {
                    answered = true;
                    let stats = &mut self.stats;
                    let mut each = |segment: &[u8]| {
                        stats.tx_frames += 1;
                        count_queue(&mut stats.tx_frames_per_queue, q);
                        stats.tx_bytes += segment.len() as u64;
                        out(segment);
                    };
                    match crate::gso::segment_tcp(&packet, mss, &mut each) {
                        Ok(_) => self.stats.tx_gso += 1,
                        Err(_) => self.stats.tx_dropped += 1,
                    }
                }
                Err(fatal) => {
                    // Linux's `xenvif_fatal_tx_err`: no answer for this packet, the vif
                    // goes quiet; what was answered before is still pushed.
                    self.disable(fatal);
                    break;
                }
            }
        }
        if answered && conn.tx.push_responses_and_check_notify() {
            self.stats.tx_notifications += 1;
            // A refused notification leaves the responses on the ring for the front end's
            // next look.
            let _ = self.events.notify(conn.tx_port);
        }
        more
    }

    /// Takes one packet (its first request is published: `available` requests are) and
    /// answers it.
    fn packet(&mut self, conn: &mut Queue, available: u32) -> Result<Packet, FatalError> {
        let mut first = take(conn)?;
        let mut left = available.saturating_sub(1);
        // `xenvif_get_extras`.
        let mut extras: [Option<NetifExtraInfo>; (XEN_NETIF_EXTRA_TYPE_MAX - 1) as usize] =
            [None; (XEN_NETIF_EXTRA_TYPE_MAX - 1) as usize];
        let mut extra_count = 0u32;
        if first.flags & NETTXF_EXTRA_INFO != 0 {
            loop {
                if left == 0 {
                    return Err(FatalError::MissingExtra);
                }
                let extra = NetifExtraInfo::from_tx_request(&take(conn)?);
                left -= 1;
                extra_count += 1;
                let index = usize::from(extra.type_.wrapping_sub(1));
                match extras.get_mut(index) {
                    Some(place) if extra.type_ != 0 => *place = Some(extra),
                    _ => return Err(FatalError::BadExtraType(extra.type_)),
                }
                if extra.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                    break;
                }
            }
        }
        let extra = |t: u8| extras.get(usize::from(t - 1)).copied().flatten();
        if extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD).is_some()
            || extra(XEN_NETIF_EXTRA_TYPE_MCAST_DEL).is_some()
        {
            // Multicast control is not offered; every multicast frame reaches the vif anyway,
            // so an add or delete is answered as done (Linux answers it and goes on).
            respond(conn, &first, extra_count, NETIF_RSP_OKAY);
            return Ok(Packet::Answered);
        }
        // `xenvif_count_requests`.
        let mut frags: Vec<NetifTxRequest> = Vec::new();
        let mut refuse = false;
        if first.flags & NETTXF_MORE_DATA != 0 {
            let mut slots = 0u32;
            loop {
                if slots >= left {
                    return Err(FatalError::ChainBeyondProducer { published: left });
                }
                if slots >= FATAL_SKB_SLOTS {
                    return Err(FatalError::TooManySlots { slots });
                }
                if slots >= LEGACY_SLOTS_MAX {
                    refuse = true;
                }
                let slot = take(conn)?;
                // A packet of 64 KiB or more wrapped the first slot's size, so a later slot
                // looks larger than what remains.
                if slot.size > first.size {
                    refuse = true;
                }
                first.size = first.size.wrapping_sub(slot.size);
                slots += 1;
                if usize::from(slot.offset) + usize::from(slot.size) > PAGE {
                    return Err(FatalError::CrossPage {
                        offset: slot.offset,
                        size: slot.size,
                    });
                }
                frags.push(slot);
                if slot.flags & NETTXF_MORE_DATA == 0 {
                    break;
                }
            }
        }
        if refuse || usize::from(first.size) < ETH_HLEN {
            return Ok(self.refuse(conn, &first, extra_count, &frags));
        }
        if usize::from(first.offset) + usize::from(first.size) > PAGE {
            return Err(FatalError::CrossPage {
                offset: first.offset,
                size: first.size,
            });
        }
        let mut mss = None;
        if let Some(gso) = extra(XEN_NETIF_EXTRA_TYPE_GSO) {
            // `xenvif_set_skb_gso`'s checks are fatal.
            let gso = gso.u.gso();
            if gso.size == 0 {
                return Err(FatalError::GsoSizeZero);
            }
            if gso.type_ != XEN_NETIF_GSO_TYPE_TCPV4 && gso.type_ != XEN_NETIF_GSO_TYPE_TCPV6 {
                return Err(FatalError::BadGsoType(gso.type_));
            }
            mss = Some(gso.size);
        }
        let Some(mut frame) = self.copy_packet(&first, &frags) else {
            return Ok(self.refuse(conn, &first, extra_count, &frags));
        };
        respond(conn, &first, extra_count, NETIF_RSP_OKAY);
        for slot in &frags {
            respond(conn, slot, 0, NETIF_RSP_OKAY);
        }
        if let Some(mss) = mss {
            // Each segment's checksums are computed whole, whatever the flags say.
            return Ok(Packet::Gso(frame, mss));
        }
        if first.flags & NETTXF_CSUM_BLANK != 0 {
            if complete_checksum(&mut frame).is_err() {
                self.stats.tx_dropped += 1;
                return Ok(Packet::Answered);
            }
            self.stats.tx_csum_completed += 1;
        }
        Ok(Packet::Frame(frame))
    }

    /// `xenvif_tx_err`: every slot of the packet answered `NETIF_RSP_ERROR`.
    fn refuse(
        &mut self,
        conn: &mut Queue,
        first: &NetifTxRequest,
        extra_count: u32,
        frags: &[NetifTxRequest],
    ) -> Packet {
        self.stats.tx_errors += 1;
        respond(conn, first, extra_count, NETIF_RSP_ERROR);
        for slot in frags {
            respond(conn, slot, 0, NETIF_RSP_ERROR);
        }
        Packet::Answered
    }

    /// Copies the packet's slots (all checked inside their pages) out of the front end's
    /// pages, each mapped read-only for the copy only; `None` if a grant does not map.
    fn copy_packet(&mut self, first: &NetifTxRequest, frags: &[NetifTxRequest]) -> Option<Vec<u8>> {
        let total = core::iter::once(first)
            .chain(frags)
            .map(|s| usize::from(s.size))
            .sum();
        let mut frame = vec![0u8; total];
        let mut at = 0usize;
        for slot in core::iter::once(first).chain(frags) {
            let size = usize::from(slot.size);
            let gref = GrantRef::try_new(slot.gref).ok()?;
            let page = self.grants.map(self.xen.frontend_id, gref, false).ok()?;
            let copied = frame
                .get_mut(at..at + size)
                .map(|dst| page.read(usize::from(slot.offset), dst));
            self.grants.unmap(page);
            if !matches!(copied, Some(Ok(()))) {
                return None;
            }
            at += size;
        }
        Some(frame)
    }
}

/// The next request, which the caller knows is published; a producer index that moved
/// backwards or beyond the ring shows here.
fn take(conn: &mut Queue) -> Result<NetifTxRequest, FatalError> {
    match conn.tx.take_request() {
        Ok(Some(request)) => Ok(request),
        Ok(None) => Err(FatalError::ChainBeyondProducer { published: 0 }),
        Err(e) => Err(overrun("tx", e)),
    }
}

/// The fatal error for a ring error (a producer index beyond the ring).
/// Counts a frame on queue `q` (below the queue count, itself at most `MAX_QUEUES`).
pub(super) fn count_queue(per_queue: &mut [u64], q: usize) {
    if let Some(n) = per_queue.get_mut(q) {
        *n += 1;
    }
}

pub(super) fn overrun(ring: &'static str, e: RingError) -> FatalError {
    match e {
        RingError::ProducerOverrun { prod, cons, .. } => {
            FatalError::ImpossibleProducer { ring, prod, cons }
        }
        _ => FatalError::ImpossibleProducer {
            ring,
            prod: 0,
            cons: 0,
        },
    }
}

/// `make_tx_response`: `status` for `request`, then `NETIF_RSP_NULL` for each of its
/// extra-info slots. Each answers a request already taken, so a slot is always free.
fn respond(conn: &mut Queue, request: &NetifTxRequest, extra_count: u32, status: i16) {
    let _ = conn.tx.write_response(NetifTxResponse {
        id: request.id,
        status,
    });
    for _ in 0..extra_count {
        let _ = conn.tx.write_response(NetifTxResponse {
            id: 0,
            status: NETIF_RSP_NULL,
        });
    }
}
