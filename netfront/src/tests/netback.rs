//! A fake netback on the real ring layout: `BackRing`s over the ring pages the front end
//! granted (mapped through the fake grant table with Xen's checks), grant-copy semantics for
//! data (map, copy, unmap), the ring rules for notifications, and faults on demand.

use abi::io::netif::{
    NETIF_RSP_OKAY, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_CSUM_BLANK, NETTXF_MORE_DATA,
    NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
};
use abi::page::AtomicPage;
use abi::ring::{BackRing, SharedRing};
use std::collections::VecDeque;
use std::vec::Vec;
use xenbus::DomId;
use xenbus::testing::{FakeGrantEntries, HostMemory};

/// Offset of `rsp_prod` in the ring header.
const RSP_PROD: usize = 8;

/// A misbehaviour for the next response on a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The response's id is off by this much.
    IdOffset(u16),
    /// Answer this request with the previous response's id (a duplicate).
    Duplicate,
    /// This status instead of the real one.
    Status(i16),
    /// (rx) This offset instead of 0, the size unchanged.
    Offset(u16),
    /// (rx) These flags added.
    Flags(u16),
    /// Publish a response producer index this far beyond the requests taken.
    Overrun(u32),
}

/// The fake backend.
pub struct FakeNetback {
    memory: HostMemory,
    tx_page: &'static AtomicPage,
    rx_page: &'static AtomicPage,
    tx: BackRing<NetifTxRequest, NetifTxResponse>,
    rx: BackRing<NetifRxRequest, NetifRxResponse>,
    /// Frames the front end sent, in order.
    pub from_guest: VecDeque<Vec<u8>>,
    /// Frames waiting to go to the front end.
    pub to_guest: VecDeque<Vec<u8>>,
    /// Faults for the next tx responses, in order.
    pub tx_faults: VecDeque<Fault>,
    /// Faults for the next rx data slots, in order.
    pub rx_faults: VecDeque<Fault>,
    /// Flags set on every rx data slot's first slot (e.g. `NETRXF_csum_blank`).
    pub rx_flags: u16,
    /// Largest piece of a frame per rx slot: smaller than a frame makes `more_data` chains.
    pub rx_slot_bytes: usize,
    /// Extra-info slots sent after the next frame's first slot.
    pub rx_extras: Vec<NetifExtraInfo>,
    /// Tx requests that broke the rules (page-crossing, unmappable, a chain whose slots do
    /// not add up to its first slot's size).
    pub tx_violations: u64,
    /// Frames that came in more than one slot.
    pub tx_multi_slot: u64,
    /// Frames that came flagged `NETTXF_csum_blank` (completed here, as netback does).
    pub tx_csum_blank: u64,
    /// GSO frames that came (their segment sizes).
    pub tx_gso: Vec<u16>,
    /// The slots of the chain being assembled.
    chain_slots: Vec<NetifTxRequest>,
    /// The next tx slot is an extra-info slot.
    tx_extra_next: bool,
    /// Notifications this backend sent the front end.
    pub notifications: u64,
    last_tx_id: u16,
    last_rx_id: u16,
}

impl FakeNetback {
    /// Maps the rings `tx_ref` and `rx_ref` as domain 0 would.
    pub fn attach(
        memory: &HostMemory,
        grants: &FakeGrantEntries,
        tx_ref: u32,
        rx_ref: u32,
    ) -> Self {
        let tx_page = grants.map(memory, tx_ref, DomId::ZERO, true).unwrap();
        let rx_page = grants.map(memory, rx_ref, DomId::ZERO, true).unwrap();
        Self {
            memory: memory.clone(),
            tx_page,
            rx_page,
            tx: BackRing::init(SharedRing::from_page(tx_page).unwrap()),
            rx: BackRing::init(SharedRing::from_page(rx_page).unwrap()),
            from_guest: VecDeque::new(),
            to_guest: VecDeque::new(),
            tx_faults: VecDeque::new(),
            rx_faults: VecDeque::new(),
            rx_flags: 0,
            rx_slot_bytes: 4096,
            rx_extras: Vec::new(),
            tx_violations: 0,
            tx_multi_slot: 0,
            tx_csum_blank: 0,
            tx_gso: Vec::new(),
            chain_slots: Vec::new(),
            tx_extra_next: false,
            notifications: 0,
            last_tx_id: 0,
            last_rx_id: 0,
        }
    }

    /// Runs the backend once over both rings, as netback's threads would after an event;
    /// returns whether it notified the front end.
    pub fn run(&mut self, grants: &FakeGrantEntries) -> bool {
        let tx = self.run_tx(grants);
        let rx = self.run_rx(grants);
        if tx || rx {
            self.notifications += 1;
        }
        tx || rx
    }

    /// Unmaps the rings (netback disconnecting).
    pub fn detach(&self, grants: &FakeGrantEntries, tx_ref: u32, rx_ref: u32) {
        grants.unmap(tx_ref);
        grants.unmap(rx_ref);
    }

    fn run_tx(&mut self, grants: &FakeGrantEntries) -> bool {
        let mut answered = false;
        loop {
            let request = match self.tx.take_request() {
                Ok(Some(r)) => r,
                Ok(None) => match self.tx.final_check_for_requests() {
                    Ok(true) => continue,
                    _ => break,
                },
                Err(e) => panic!("fake netback: tx ring: {e}"),
            };
            if self.tx_extra_next {
                // Answered NETIF_RSP_NULL, its id whatever the slot held (as Linux does).
                self.tx_extra_next = false;
                let extra = NetifExtraInfo::from_tx_request(&request);
                assert_eq!(extra.type_, abi::io::netif::XEN_NETIF_EXTRA_TYPE_GSO);
                self.tx_gso.push(extra.u.gso().size);
                self.tx
                    .write_response(NetifTxResponse {
                        id: 0xffff,
                        status: abi::io::netif::NETIF_RSP_NULL,
                    })
                    .unwrap();
                continue;
            }
            if self.chain_slots.is_empty() && request.flags & abi::io::netif::NETTXF_EXTRA_INFO != 0
            {
                self.tx_extra_next = true;
            }
            self.chain_slots.push(request);
            if request.flags & NETTXF_MORE_DATA != 0 {
                continue;
            }
            // The whole chain is here: the first slot's own bytes are its size less the
            // others' (netif.h).
            let slots = core::mem::take(&mut self.chain_slots);
            let total = usize::from(slots[0].size);
            let rest: usize = slots[1..].iter().map(|r| usize::from(r.size)).sum();
            let mut status = NETIF_RSP_OKAY;
            let mut frame = Vec::new();
            if rest > total {
                self.tx_violations += 1;
                status = abi::io::netif::NETIF_RSP_ERROR;
            }
            for (i, r) in slots.iter().enumerate() {
                let own = if i == 0 {
                    total.saturating_sub(rest)
                } else {
                    usize::from(r.size)
                };
                if usize::from(r.offset) + own > 4096 {
                    self.tx_violations += 1;
                    status = abi::io::netif::NETIF_RSP_ERROR;
                    continue;
                }
                match grants.map(&self.memory, r.gref, DomId::ZERO, false) {
                    Ok(page) => {
                        let start = frame.len();
                        frame.resize(start + own, 0);
                        page.read(usize::from(r.offset), &mut frame[start..])
                            .unwrap();
                        grants.unmap(r.gref);
                    }
                    Err(_) => {
                        self.tx_violations += 1;
                        status = abi::io::netif::NETIF_RSP_ERROR;
                    }
                }
            }
            if status == NETIF_RSP_OKAY {
                if slots.len() > 1 {
                    self.tx_multi_slot += 1;
                }
                if slots[0].flags & NETTXF_CSUM_BLANK != 0 {
                    self.tx_csum_blank += 1;
                    linux_complete(&mut frame);
                }
                self.from_guest.push_back(frame);
            }
            for r in &slots {
                let mut response = NetifTxResponse { id: r.id, status };
                match self.tx_faults.pop_front() {
                    None => {}
                    Some(Fault::IdOffset(d)) => response.id = response.id.wrapping_add(d),
                    Some(Fault::Duplicate) => response.id = self.last_tx_id,
                    Some(Fault::Status(s)) => response.status = s,
                    Some(Fault::Overrun(n)) => {
                        self.tx.write_response(response).unwrap();
                        let prod = self.tx.rsp_prod_pvt().wrapping_add(n);
                        self.tx_page.write(RSP_PROD, &prod.to_le_bytes()).unwrap();
                        return true;
                    }
                    Some(f) => panic!("fake netback: {f:?} is an rx fault"),
                }
                self.last_tx_id = r.id;
                self.tx.write_response(response).unwrap();
            }
            answered = true;
        }
        answered && self.tx.push_responses_and_check_notify()
    }

    fn run_rx(&mut self, grants: &FakeGrantEntries) -> bool {
        let mut answered = false;
        while let Some(frame) = self.to_guest.front() {
            let pieces: Vec<Vec<u8>> = frame
                .chunks(self.rx_slot_bytes.max(1))
                .map(<[u8]>::to_vec)
                .collect();
            let pieces = if pieces.is_empty() {
                vec![Vec::new()]
            } else {
                pieces
            };
            let needed = pieces.len() + self.rx_extras.len();
            let available = self.rx.unconsumed_requests().unwrap_or(0) as usize;
            if available < needed {
                // As netback does: ask to be told when enough buffers are posted.
                if matches!(self.rx.final_check_for_requests(), Ok(true))
                    && self.rx.unconsumed_requests().unwrap_or(0) as usize >= needed
                {
                    continue;
                }
                break;
            }
            self.to_guest.pop_front();
            let extras = core::mem::take(&mut self.rx_extras);
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                let mut flags = if i == 0 { self.rx_flags } else { 0 };
                if i + 1 < count {
                    flags |= NETRXF_MORE_DATA;
                }
                if i == 0 && !extras.is_empty() {
                    flags |= NETRXF_EXTRA_INFO;
                }
                if self.rx_data_slot(grants, &piece, flags) {
                    return true;
                }
                if i == 0 {
                    for extra in &extras {
                        self.rx.take_request().unwrap().unwrap();
                        self.rx.write_response(extra.to_rx_response()).unwrap();
                    }
                }
            }
            answered = true;
        }
        answered && self.rx.push_responses_and_check_notify()
    }

    /// Fills one posted buffer with `data`; returns true if an overrun fault ended the run.
    fn rx_data_slot(&mut self, grants: &FakeGrantEntries, data: &[u8], flags: u16) -> bool {
        let request = self.rx.take_request().unwrap().unwrap();
        let fault = self.rx_faults.pop_front();
        let offset = match fault {
            Some(Fault::Offset(o)) => o,
            _ => 0,
        };
        if usize::from(offset) + data.len() <= 4096 {
            let page = grants
                .map(&self.memory, request.gref, DomId::ZERO, true)
                .expect("rx buffer grant");
            page.write(usize::from(offset), data).unwrap();
            grants.unmap(request.gref);
        }
        let mut response = NetifRxResponse {
            id: request.id,
            offset,
            flags,
            status: data.len() as i16,
        };
        match fault {
            None | Some(Fault::Offset(_)) => {}
            Some(Fault::IdOffset(d)) => response.id = response.id.wrapping_add(d),
            Some(Fault::Duplicate) => response.id = self.last_rx_id,
            Some(Fault::Status(s)) => response.status = s,
            Some(Fault::Flags(f)) => response.flags |= f,
            Some(Fault::Overrun(n)) => {
                self.rx.write_response(response).unwrap();
                let prod = self.rx.rsp_prod_pvt().wrapping_add(n);
                self.rx_page.write(RSP_PROD, &prod.to_le_bytes()).unwrap();
                return true;
            }
        }
        self.last_rx_id = request.id;
        self.rx.write_response(response).unwrap();
        false
    }

    /// Rx requests posted and not yet taken.
    pub fn rx_available(&self) -> u32 {
        self.rx.unconsumed_requests().unwrap_or(0)
    }
}

/// Completes a `csum_blank` IPv4 TCP frame as Linux does (`checksum_setup` without
/// recalculation, then `skb_checksum_help`): the one's-complement sum from the TCP header to
/// the packet's end, the checksum field as the front end left it included, inverted into the
/// field. Right only if the front end left the pseudo-header's sum there.
fn linux_complete(frame: &mut [u8]) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let end = 14 + usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let tcp = 14 + ihl;
    assert_eq!(
        frame[23], 6,
        "fake netback: csum_blank on a frame that is not TCP"
    );
    let mut sum = 0u32;
    for pair in frame[tcp..end].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[tcp + 16..tcp + 18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}
