//! The transmit side: a pool of buffers in pages granted read-only once and kept granted,
//! requests built from it, and responses checked before a buffer is reused.
//!
//! A buffer is a power-of-two part of a page at least as large as the largest frame, or a
//! whole page ([`crate::config::VifConfig::tx_buffer_size`]), so every request's
//! `offset + size` stays inside its page. Without `feature-sg` every frame is one slot; with it
//! a frame larger than a buffer takes several, flagged `NETTXF_more_data` on all but the last,
//! the first carrying the frame's whole size (netif.h), never more than [`MAX_TX_SLOTS`]
//! (Linux's netback disables the vif beyond its limit). A request's id is its buffer's number;
//! netback answers every slot, in any order, so responses are matched by id.
#![allow(
    clippy::cast_possible_truncation,
    reason = "slots are below the ring size (at most 256) and offsets below a page: they fit u16"
)]

use crate::error::BadResponse;
use abi::io::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_OKAY, NETTXF_MORE_DATA, NetifTxRequest,
    NetifTxResponse, XEN_NETIF_NR_SLOTS_MIN,
};
use alloc::vec::Vec;
use xenbus::grant::GrantedPage;

/// Most slots one frame takes: netback's `XEN_NETIF_NR_SLOTS_MIN` (18), the limit every
/// netback accepts (Linux's disables a vif whose frame needs more than its `fatal_skb_slots`).
pub const MAX_TX_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN as usize;

/// How the backend answered a valid tx response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Sent.
    Okay,
    /// `NETIF_RSP_ERROR` or `NETIF_RSP_DROPPED`: not sent (the buffer is free again).
    Failed(i16),
}

/// Checks a tx response against the buffers in flight (`in_flight[id]`): the id names a
/// buffer with a request outstanding, and the status is one netback sends for a request.
/// `NETIF_RSP_NULL` answers an extra-info slot, and this front end sends none.
pub fn check_tx_response(
    response: &NetifTxResponse,
    in_flight: &[bool],
) -> Result<(u16, TxStatus), BadResponse> {
    let id = response.id;
    match in_flight.get(usize::from(id)) {
        None => {
            return Err(BadResponse::IdMismatch {
                expected: u16::try_from(in_flight.len()).unwrap_or(u16::MAX),
                got: id,
            });
        }
        Some(false) => return Err(BadResponse::NotOutstanding(id)),
        Some(true) => {}
    }
    match response.status {
        NETIF_RSP_OKAY => Ok((id, TxStatus::Okay)),
        s @ (NETIF_RSP_ERROR | NETIF_RSP_DROPPED) => Ok((id, TxStatus::Failed(s))),
        s => Err(BadResponse::UnknownStatus(s)),
    }
}

/// The pool of tx buffers.
#[derive(Debug)]
pub(crate) struct TxPool {
    pages: Vec<GrantedPage>,
    buffer_size: usize,
    per_page: usize,
    free: Vec<u16>,
    in_flight: Vec<bool>,
}

impl TxPool {
    /// A pool of `buffers` buffers of `buffer_size` bytes over `pages` (granted read-only),
    /// which must hold them all.
    pub(crate) fn new(pages: Vec<GrantedPage>, buffer_size: usize, buffers: u16) -> Self {
        let per_page = crate::config::PAGE / buffer_size;
        debug_assert!(pages.len() * per_page >= usize::from(buffers));
        Self {
            pages,
            buffer_size,
            per_page,
            // Popped from the end: buffer 0 first.
            free: (0..buffers).rev().collect(),
            in_flight: alloc::vec![false; usize::from(buffers)],
        }
    }

    /// Pages the pool owns (all granted).
    pub(crate) fn pages(&self) -> usize {
        self.pages.len()
    }

    /// Buffers not in flight.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Buffers in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len() - self.free.len()
    }

    /// Slots (buffers) a frame of `len` bytes takes.
    pub(crate) fn slots_for(&self, len: usize) -> usize {
        len.div_ceil(self.buffer_size).max(1)
    }

    /// Copies `frame` into as many free buffers as it needs and puts the requests that send
    /// it in `requests` (cleared first), first slot first: the first carries `flags` and the
    /// frame's size, every slot but the last `NETTXF_more_data`. Returns `false` (nothing
    /// staged) if the frame is empty, larger than a request can say or than
    /// [`MAX_TX_SLOTS`] slots hold, or if too few buffers are free.
    pub(crate) fn stage(
        &mut self,
        frame: &[u8],
        flags: u16,
        requests: &mut Vec<NetifTxRequest>,
    ) -> bool {
        requests.clear();
        let slots = self.slots_for(frame.len());
        let Ok(total) = u16::try_from(frame.len()) else {
            return false;
        };
        if frame.is_empty() || slots > MAX_TX_SLOTS || slots > self.free.len() {
            return false;
        }
        for (i, chunk) in frame.chunks(self.buffer_size).enumerate() {
            let Some(&id) = self.free.last() else { break };
            let (page, offset) = self.place(id);
            let Some(granted) = self.pages.get(page) else {
                break;
            };
            if granted.page().write(offset, chunk).is_err() {
                break;
            }
            self.free.pop();
            self.in_flight[usize::from(id)] = true;
            let more = if i + 1 < slots { NETTXF_MORE_DATA } else { 0 };
            requests.push(NetifTxRequest {
                gref: granted.gref().get(),
                offset: offset as u16,
                flags: if i == 0 { flags | more } else { more },
                id,
                size: if i == 0 { total } else { chunk.len() as u16 },
            });
        }
        if requests.len() != slots {
            // Unreachable (the buffers were counted and lie inside their pages): give back
            // what was taken.
            for request in requests.drain(..) {
                self.unstage(request.id);
            }
            return false;
        }
        true
    }

    /// Gives back the buffer of a request that could not be put on the ring.
    pub(crate) fn unstage(&mut self, id: u16) {
        if let Some(flag) = self.in_flight.get_mut(usize::from(id))
            && *flag
        {
            *flag = false;
            self.free.push(id);
        }
    }

    /// Takes a response: checks it, and frees its buffer if it is valid.
    pub(crate) fn complete(&mut self, response: &NetifTxResponse) -> Result<TxStatus, BadResponse> {
        let (id, status) = check_tx_response(response, &self.in_flight)?;
        self.unstage(id);
        Ok(status)
    }

    /// Every page, for ending their grants when the device ends.
    pub(crate) fn into_pages(self) -> Vec<GrantedPage> {
        self.pages
    }

    fn place(&self, id: u16) -> (usize, usize) {
        let id = usize::from(id);
        (id / self.per_page, (id % self.per_page) * self.buffer_size)
    }
}

/// A plain IPv4 TCP data segment as smoltcp emits it: where its parts lie, for coalescing
/// consecutive segments into one GSO frame (`feature-gso-tcpv4` on tx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the TCP header.
    pub tcp: usize,
    /// Offset of the payload.
    pub payload: usize,
    /// The sequence number.
    pub seq: u32,
}

const ETH: usize = 14;
/// TCP flags that end a run of segments: FIN, SYN, RST, URG.
const TCP_CONTROL: u8 = 0x01 | 0x02 | 0x04 | 0x20;
/// TCP's PSH flag (only the run's last segment may carry it).
const TCP_PSH: u8 = 0x08;

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

fn be32(frame: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(frame.get(at..at + 4)?.try_into().ok()?))
}

/// The TCP header's offset, the payload's offset and the flags of a plain Ethernet/IPv4/TCP
/// frame: not a fragment, the IPv4 length matching the frame, a TCP header inside it.
fn tcp_parts(frame: &[u8]) -> Option<(usize, usize, u8)> {
    if be16(frame, 12)? != 0x0800 {
        return None;
    }
    let vihl = *frame.get(ETH)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(be16(frame, ETH + 2)?);
    if vihl >> 4 != 4
        || ihl < 20
        || ETH + total != frame.len()
        || be16(frame, ETH + 6)? & 0x3fff != 0
        || *frame.get(ETH + 9)? != 6
    {
        return None;
    }
    let tcp = ETH + ihl;
    let offset = usize::from(*frame.get(tcp + 12)? >> 4) * 4;
    let flags = *frame.get(tcp + 13)?;
    let payload = tcp + offset;
    (offset >= 20 && payload <= frame.len()).then_some((tcp, payload, flags))
}

/// The window field (unscaled) of a pure acknowledgement: a plain IPv4 TCP frame without
/// payload whose only flag is ACK.
pub fn pure_ack_window(frame: &[u8]) -> Option<u16> {
    let (tcp, payload, flags) = tcp_parts(frame)?;
    if payload != frame.len() || flags != TCP_ACK {
        return None;
    }
    be16(frame, tcp + 14)
}

/// TCP's ACK flag.
const TCP_ACK: u8 = 0x10;

impl Segment {
    /// Parses an Ethernet/IPv4/TCP frame that carries data and only ACK (and perhaps PSH)
    /// flags, not a fragment, with the IPv4 length matching the frame.
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let (tcp, payload, flags) = tcp_parts(frame)?;
        if payload >= frame.len() || flags & TCP_CONTROL != 0 || flags & TCP_ACK == 0 {
            return None;
        }
        Some(Self {
            tcp,
            payload,
            seq: be32(frame, tcp + 4)?,
        })
    }

    /// Payload bytes of `frame` (the frame this segment was parsed from).
    pub fn len(&self, frame: &[u8]) -> usize {
        frame.len() - self.payload
    }

    /// Whether `next` (parsed as `n`) continues the run in `run` (which starts with this
    /// segment's headers): the same Ethernet, IPv4 and TCP headers but for the IPv4 length,
    /// id and checksum, the TCP sequence number, checksum and options' contents (timestamps),
    /// and the PSH flag; its sequence number follows the run's bytes; the run's last segment
    /// carried no PSH.
    pub fn continues(&self, run: &[u8], n: &Self, next: &[u8]) -> bool {
        let same = |a: core::ops::Range<usize>| run.get(a.clone()) == next.get(a);
        let ip = ETH;
        let run_bytes = (run.len() - self.payload) as u32;
        self.tcp == n.tcp
            && self.payload == n.payload
            && same(0..ETH)
            && same(ip..ip + 2)
            && same(ip + 6..ip + 10)
            && same(ip + 12..self.tcp)
            && same(self.tcp..self.tcp + 4)
            && same(self.tcp + 8..self.tcp + 13)
            && same(self.tcp + 14..self.tcp + 16)
            && run.get(self.tcp + 13).is_some_and(|f| f & TCP_PSH == 0)
            && run.get(self.tcp + 13).map(|f| f & !TCP_PSH)
                == next.get(self.tcp + 13).map(|f| f & !TCP_PSH)
            && self.seq.wrapping_add(run_bytes) == n.seq
    }
}

/// Makes `run` (this segment's headers and the payloads of the segments coalesced into it)
/// one IPv4 packet: its total length and header checksum set, the TCP checksum left zero
/// for netback (`NETTXF_csum_blank`), the PSH flag of the last segment if `psh`.
pub fn finish_run(segment: &Segment, run: &mut [u8], psh: bool) {
    let total = (run.len() - ETH) as u16;
    run[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
    run[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
    let mut sum = 0u32;
    for pair in run[ETH..segment.tcp].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    run[ETH + 10..ETH + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    if psh {
        run[segment.tcp + 13] |= TCP_PSH;
    }
    run[segment.tcp + 16..segment.tcp + 18].copy_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/TCP frame with `flags`, `window` and `payload` bytes of payload.
    fn tcp(flags: u8, window: u16, payload: usize) -> alloc::vec::Vec<u8> {
        let mut f = alloc::vec![0u8; ETH + 40 + payload];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ETH] = 0x45;
        let total = u16::try_from(40 + payload).unwrap();
        f[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
        f[ETH + 9] = 6;
        f[ETH + 20 + 12] = 5 << 4;
        f[ETH + 20 + 13] = flags;
        f[ETH + 20 + 14..ETH + 20 + 16].copy_from_slice(&window.to_be_bytes());
        f
    }

    #[test]
    fn a_pure_ack_gives_its_window_and_nothing_else_does() {
        assert_eq!(pure_ack_window(&tcp(TCP_ACK, 21_504, 0)), Some(21_504));
        assert_eq!(pure_ack_window(&tcp(TCP_ACK, 0, 0)), Some(0));
        // Data, PSH, SYN, FIN, RST: not a pure acknowledgement.
        assert_eq!(pure_ack_window(&tcp(TCP_ACK, 100, 1)), None);
        for flag in [TCP_PSH, 0x01, 0x02, 0x04] {
            assert_eq!(pure_ack_window(&tcp(TCP_ACK | flag, 100, 0)), None);
        }
        // A data segment is one for coalescing; a pure ACK is not.
        assert!(Segment::parse(&tcp(TCP_ACK, 100, 1)).is_some());
        assert!(Segment::parse(&tcp(TCP_ACK, 100, 0)).is_none());
        // A truncated frame or another ethertype.
        let short = tcp(TCP_ACK, 100, 0);
        assert_eq!(pure_ack_window(&short[..short.len() - 1]), None);
        let mut arp = tcp(TCP_ACK, 100, 0);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(pure_ack_window(&arp), None);
    }
}
