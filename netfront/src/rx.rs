//! The receive side: buffers granted writable once and kept posted, and the checks every
//! response passes before a byte of it is used.
//!
//! The ring is positional, as netback fills it: the response at ring index `i` answers the
//! request at index `i` (netback consumes requests and produces responses in lock step, one
//! each, extra-info slots included), so the buffer a response fills is the one posted at its
//! index, whatever the backend wrote, and its `id` must be the one posted there. A packet is
//! one data slot, or a chain flagged `NETRXF_more_data`, with extra-info slots after its first
//! slot when that is flagged `NETRXF_extra_info`. Data is copied out of the buffer page (the
//! copy is what reaches the stack; the grant stays, and the buffer is posted again at once).
#![allow(
    clippy::cast_possible_truncation,
    reason = "slots are below the ring size (at most 256) and offsets below a page: they fit u16/u32"
)]

use crate::config::PAGE;
use crate::error::BadResponse;
use abi::io::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED,
    NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NetifExtraInfo, NetifRxRequest, NetifRxResponse,
    XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_MAX,
    XEN_NETIF_EXTRA_TYPE_NONE, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_NR_SLOTS_MIN,
};
use abi::ring::{FrontRing, RingIdx};
use alloc::vec::Vec;
use xenbus::grant::GrantedPage;

/// Most slots one received packet may take: netback's data-slot limit plus one extra-info
/// slot of each type.
pub const MAX_RX_SLOTS: u32 = XEN_NETIF_NR_SLOTS_MIN + XEN_NETIF_EXTRA_TYPE_MAX as u32 - 1;

/// Flags a data slot may carry. `NETRXF_gso_prefix` is never valid: it is sent only to a
/// front end that asked for GSO prefixes, and this one does not.
const KNOWN_FLAGS: u16 =
    NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK | NETRXF_MORE_DATA | NETRXF_EXTRA_INFO;

/// A data slot that passed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxSlot {
    /// `size` bytes at `offset` of the buffer page (`offset + size <= 4096`).
    Data {
        /// Offset in the page.
        offset: u16,
        /// Bytes.
        size: u16,
        /// The `NETRXF_*` flags (only known ones).
        flags: u16,
    },
    /// The backend reports an error for this slot (`NETIF_RSP_ERROR`/`_DROPPED`); the packet
    /// is dropped.
    Error {
        /// The status.
        status: i16,
        /// The flags (only known ones).
        flags: u16,
    },
}

/// Checks a data slot: the id the request at this index carried, known flags only
/// (`extra_info` only on a packet's first slot), a status that is an error the protocol
/// defines or a size, and `offset + size` inside the page.
pub fn check_rx_response(
    response: &NetifRxResponse,
    expected_id: u16,
    first: bool,
) -> Result<RxSlot, BadResponse> {
    if response.id != expected_id {
        return Err(BadResponse::IdMismatch {
            expected: expected_id,
            got: response.id,
        });
    }
    let flags = response.flags;
    if flags & !KNOWN_FLAGS != 0 || (!first && flags & NETRXF_EXTRA_INFO != 0) {
        return Err(BadResponse::BadFlags(flags));
    }
    match response.status {
        s @ (NETIF_RSP_ERROR | NETIF_RSP_DROPPED) => Ok(RxSlot::Error { status: s, flags }),
        s if s < 0 => Err(BadResponse::UnknownStatus(s)),
        s => {
            let size = s.cast_unsigned();
            if usize::from(response.offset) + usize::from(size) > PAGE {
                return Err(BadResponse::OutsidePage {
                    offset: response.offset,
                    size,
                });
            }
            Ok(RxSlot::Data {
                offset: response.offset,
                size,
                flags,
            })
        }
    }
}

/// Why a received packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// One of its slots failed validation.
    Bad(BadResponse),
    /// The backend reported an error on one of its slots.
    Status(i16),
    /// It carried a GSO extra that was not negotiated, or one of an unknown GSO type or with
    /// a segment size of 0 or above the MTU.
    Gso,
    /// Shorter than an Ethernet header.
    Runt,
}

/// A packet taken off the ring.
#[derive(Debug, PartialEq, Eq)]
pub struct RxPacket {
    /// The frame (a copy).
    pub data: Vec<u8>,
    /// `NETRXF_csum_blank` was set: the transport checksum is still to be computed.
    pub csum_blank: bool,
    /// `NETRXF_data_validated` was set: dom0 checked (or made) the transport checksum.
    pub data_validated: bool,
    /// Slots the packet took.
    pub slots: u32,
    /// Data slots among them.
    pub data_slots: u32,
    /// It came with a valid GSO extra (`feature-gso-tcpv4`): a TCP segment larger than
    /// the MTU.
    pub gso: bool,
}

/// What taking one response produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    /// The slot failed validation (counted once per slot).
    pub bad: Option<BadResponse>,
    /// The packet it finished, if it finished one.
    pub done: Option<Result<RxPacket, RxDrop>>,
}

#[derive(Debug)]
struct Partial {
    data: Vec<u8>,
    slots: u32,
    data_slots: u32,
    drop: Option<RxDrop>,
    csum_blank: bool,
    data_validated: bool,
    gso: bool,
    more_data: bool,
}

/// The rx buffers and the packet being assembled.
#[derive(Debug)]
pub(crate) struct RxQueue {
    buffers: Vec<GrantedPage>,
    idle: Vec<usize>,
    posted: Vec<Option<usize>>,
    partial: Option<Partial>,
    extras_pending: bool,
    /// The largest frame without a GSO extra.
    max_frame: usize,
    /// The largest frame at all (a GSO frame's when GSO is negotiated).
    max_bytes: usize,
    gso_mtu: Option<u16>,
}

/// The largest GSO frame: an IPv4 packet of 65535 bytes in an Ethernet frame.
pub const MAX_GSO_FRAME: usize = 65535 + crate::config::ETHERNET_HEADER;

impl RxQueue {
    /// A queue over `buffers` (granted writable) for a ring of `ring_size` slots, accepting
    /// frames of at most `max_frame` bytes, and GSO frames (TCP over IPv4, segments of at
    /// most the MTU) if `gso_mtu` gives the MTU.
    pub(crate) fn new(
        buffers: Vec<GrantedPage>,
        ring_size: u32,
        max_frame: usize,
        gso_mtu: Option<u16>,
    ) -> Self {
        Self {
            idle: (0..buffers.len()).rev().collect(),
            buffers,
            posted: alloc::vec![None; ring_size as usize],
            partial: None,
            extras_pending: false,
            max_frame,
            max_bytes: if gso_mtu.is_some() {
                MAX_GSO_FRAME.max(max_frame)
            } else {
                max_frame
            },
            gso_mtu,
        }
    }

    /// Buffers owned (all granted).
    pub(crate) fn buffers(&self) -> usize {
        self.buffers.len()
    }

    /// Buffers posted to the backend now.
    pub(crate) fn posted(&self) -> usize {
        self.buffers.len() - self.idle.len()
    }

    /// Posts every idle buffer the ring has room for; returns how many.
    pub(crate) fn refill(&mut self, ring: &mut FrontRing<NetifRxRequest, NetifRxResponse>) -> u32 {
        let mask = ring.size() - 1;
        let mut posted = 0;
        while !ring.is_full() {
            let Some(&buffer) = self.idle.last() else {
                break;
            };
            let slot = (ring.req_prod_pvt() & mask) as usize;
            let (Some(place), Some(granted)) =
                (self.posted.get_mut(slot), self.buffers.get(buffer))
            else {
                break;
            };
            if place.is_some() {
                // Unreachable with an honest ring (a free slot's previous request was
                // answered); never overwrite a posted buffer.
                break;
            }
            let request = NetifRxRequest {
                id: slot as u16,
                pad: 0,
                gref: granted.gref().get(),
            };
            if ring.write_request(request).is_err() {
                break;
            }
            *place = Some(buffer);
            self.idle.pop();
            posted += 1;
        }
        posted
    }

    /// Takes the response at ring index `index`: its buffer is idle again whatever it holds.
    pub(crate) fn take(&mut self, index: RingIdx, response: &NetifRxResponse) -> Taken {
        let mask = (self.posted.len() - 1) as u32;
        let slot = (index & mask) as usize;
        let buffer = self.posted.get_mut(slot).and_then(Option::take);
        let mut taken = Taken::default();
        if self.extras_pending {
            self.take_extra(response, &mut taken);
        } else {
            self.take_data(slot as u16, buffer, response, &mut taken);
        }
        if self
            .partial
            .as_ref()
            .is_some_and(|p| p.slots > MAX_RX_SLOTS)
        {
            // The chain was cut (`too_many`): no extras are awaited either.
            self.extras_pending = false;
        }
        if let Some(buffer) = buffer {
            self.idle.push(buffer);
        }
        let finished = self
            .partial
            .as_ref()
            .is_some_and(|p| !p.more_data && !self.extras_pending);
        if finished && let Some(p) = self.partial.take() {
            taken.done = Some(match p.drop {
                Some(drop) => Err(drop),
                None if p.data.len() < crate::config::ETHERNET_HEADER => Err(RxDrop::Runt),
                None if !p.gso && p.data.len() > self.max_frame => {
                    Err(RxDrop::Bad(BadResponse::TooLong))
                }
                None => Ok(RxPacket {
                    data: p.data,
                    csum_blank: p.csum_blank,
                    data_validated: p.data_validated,
                    slots: p.slots,
                    data_slots: p.data_slots,
                    gso: p.gso,
                }),
            });
        }
        taken
    }

    fn take_extra(&mut self, response: &NetifRxResponse, taken: &mut Taken) {
        let extra = NetifExtraInfo::from_rx_response(response);
        self.extras_pending = extra.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0;
        let Some(partial) = self.partial.as_mut() else {
            // Extras follow a first slot, so a packet is always being assembled here.
            return;
        };
        partial.slots += 1;
        if extra.type_ == XEN_NETIF_EXTRA_TYPE_NONE || extra.type_ >= XEN_NETIF_EXTRA_TYPE_MAX {
            let bad = BadResponse::BadExtra(extra.type_);
            taken.bad = Some(bad);
            partial.drop.get_or_insert(RxDrop::Bad(bad));
        } else if extra.type_ == XEN_NETIF_EXTRA_TYPE_GSO {
            // Linux's netfront refuses a zero size and an unknown type; a segment larger
            // than the MTU cannot come from a peer on this link either.
            let gso = extra.u.gso();
            let good = self.gso_mtu.is_some_and(|mtu| {
                gso.type_ == XEN_NETIF_GSO_TYPE_TCPV4 && gso.size != 0 && gso.size <= mtu
            });
            if good && !partial.gso {
                partial.gso = true;
            } else {
                partial.drop.get_or_insert(RxDrop::Gso);
            }
        }
        // Hash and multicast extras carry nothing this device uses.
        if partial.slots > MAX_RX_SLOTS {
            Self::too_many(partial, taken);
        }
    }

    fn take_data(
        &mut self,
        expected_id: u16,
        buffer: Option<usize>,
        response: &NetifRxResponse,
        taken: &mut Taken,
    ) {
        let first = self.partial.is_none();
        let partial = self.partial.get_or_insert_with(|| Partial {
            data: Vec::new(),
            slots: 0,
            data_slots: 0,
            drop: None,
            csum_blank: false,
            data_validated: false,
            gso: false,
            more_data: false,
        });
        partial.slots += 1;
        partial.data_slots += 1;
        // The chain goes on as the backend says (bounded by MAX_RX_SLOTS), even for a slot
        // that failed its checks, so that its continuation is not taken for a new packet.
        partial.more_data = response.flags & NETRXF_MORE_DATA != 0;
        match check_rx_response(response, expected_id, first) {
            Err(bad) => {
                taken.bad = Some(bad);
                partial.drop.get_or_insert(RxDrop::Bad(bad));
            }
            Ok(RxSlot::Error { status, flags }) => {
                partial.drop.get_or_insert(RxDrop::Status(status));
                self.extras_pending = flags & NETRXF_EXTRA_INFO != 0;
            }
            Ok(RxSlot::Data {
                offset,
                size,
                flags,
            }) => {
                self.extras_pending = flags & NETRXF_EXTRA_INFO != 0;
                // The checksum flags are the first slot's (netif.h: on later slots they mean
                // nothing).
                if first {
                    partial.csum_blank = flags & NETRXF_CSUM_BLANK != 0;
                    partial.data_validated = flags & NETRXF_DATA_VALIDATED != 0;
                }
                let start = partial.data.len();
                let end = start + usize::from(size);
                if end > self.max_bytes {
                    let bad = BadResponse::TooLong;
                    taken.bad = Some(bad);
                    partial.drop.get_or_insert(RxDrop::Bad(bad));
                } else if partial.drop.is_none() {
                    let page = buffer.and_then(|b| self.buffers.get(b));
                    partial.data.resize(end, 0);
                    let copied = page.map(|granted| {
                        granted
                            .page()
                            .read(usize::from(offset), &mut partial.data[start..end])
                    });
                    if !matches!(copied, Some(Ok(()))) {
                        // No buffer at this index (impossible with a checked ring) or a read
                        // outside the page (excluded by the check): drop, never guess.
                        let bad = BadResponse::NotOutstanding(expected_id);
                        taken.bad = Some(bad);
                        partial.drop = Some(RxDrop::Bad(bad));
                    }
                }
            }
        }
        if partial.slots > MAX_RX_SLOTS {
            Self::too_many(partial, taken);
        }
    }

    /// A chain longer than any backend may send: the packet is dropped, and the chain is cut
    /// here (what follows is taken as new packets, which their own checks judge).
    fn too_many(partial: &mut Partial, taken: &mut Taken) {
        let bad = BadResponse::TooManySlots;
        taken.bad = Some(bad);
        partial.drop.get_or_insert(RxDrop::Bad(bad));
        partial.more_data = false;
    }

    /// Every buffer page, for ending their grants when the device ends.
    pub(crate) fn into_buffers(self) -> Vec<GrantedPage> {
        self.buffers
    }
}
