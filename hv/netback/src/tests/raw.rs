//! A front end written by hand, free to put anything on the rings: it does the handshake
//! (two ring pages, an event channel, `request-rx-copy`, Connected) with raw xenstore writes
//! and builds requests field by field.

use super::rig::{Guest, Rig, far};
use abi::io::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};
use abi::ring::FrontRing;
use std::format;
use std::vec::Vec;
use xenbus::grant::{GrantAccess, GrantedPage};
use xenbus::xenstore::TxId;
use xenbus::{DomId, PageProvider};

pub struct RawFront {
    pub guest: Guest,
    pub tx: FrontRing<NetifTxRequest, NetifTxResponse>,
    pub rx: FrontRing<NetifRxRequest, NetifRxResponse>,
    pub tx_page: GrantedPage,
    pub rx_page: GrantedPage,
    pub pages: Vec<GrantedPage>,
}

/// The event-channel port the raw front end claims (the fake binds anything).
pub const RAW_PORT: u32 = 7;

impl RawFront {
    /// Publishes the rings for `guest` (with `feature-sg` if `sg`) and waits until netback
    /// is Connected.
    pub fn connect(rig: &Rig, mut guest: Guest, sg: bool) -> Self {
        let page = guest.memory.alloc_zeroed().unwrap();
        let tx = page.init_front_ring().unwrap();
        let tx_page = guest.grants.grant(page, DomId::ZERO, false).unwrap();
        let page = guest.memory.alloc_zeroed().unwrap();
        let rx = page.init_front_ring().unwrap();
        let rx_page = guest.grants.grant(page, DomId::ZERO, false).unwrap();
        let front = guest.front.clone();
        for (key, value) in [
            ("tx-ring-ref", format!("{}", tx_page.gref())),
            ("rx-ring-ref", format!("{}", rx_page.gref())),
            ("event-channel", format!("{RAW_PORT}")),
            ("request-rx-copy", "1".into()),
            ("feature-sg", if sg { "1" } else { "0" }.into()),
            ("state", "4".into()),
        ] {
            guest
                .xs
                .write(TxId::NONE, &format!("{front}/{key}"), &value, far())
                .unwrap();
        }
        rig.settle();
        assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("4"));
        Self {
            guest,
            tx,
            rx,
            tx_page,
            rx_page,
            pages: Vec::new(),
        }
    }

    /// A page holding `data` from offset 0 (the rest zero), granted to domain 0 (read-only
    /// if `readonly`); its gref.
    pub fn grant_data(&mut self, data: &[u8], readonly: bool) -> u32 {
        let page = self.guest.memory.alloc_zeroed().unwrap();
        page.write(0, data).unwrap();
        let granted = self
            .guest
            .grants
            .grant(page, DomId::ZERO, readonly)
            .unwrap();
        let gref = granted.gref().get();
        self.pages.push(granted);
        gref
    }

    /// The bytes of the granted page `gref`.
    pub fn page(&self, gref: u32) -> Vec<u8> {
        let mut out = std::vec![0u8; 4096];
        let page = self.pages.iter().find(|p| p.gref().get() == gref).unwrap();
        page.page().read(0, &mut out).unwrap();
        out
    }

    /// Puts `requests` on the tx ring and publishes them.
    pub fn submit(&mut self, requests: &[NetifTxRequest]) {
        for r in requests {
            self.tx.write_request(*r).unwrap();
        }
        self.tx.push_requests_and_check_notify();
    }

    /// Every tx response published so far.
    pub fn tx_responses(&mut self) -> Vec<NetifTxResponse> {
        let mut out = Vec::new();
        while let Ok(Some(r)) = self.tx.take_response() {
            out.push(r);
        }
        out
    }

    /// Posts `n` rx buffers (fresh writable pages, ids from 0 in posting order); their
    /// grefs.
    pub fn post_rx(&mut self, n: u16) -> Vec<u32> {
        let mut grefs = Vec::new();
        for _ in 0..n {
            let gref = self.grant_data(&[], false);
            let id = self.rx.req_prod_pvt() as u16;
            self.rx
                .write_request(NetifRxRequest { id, pad: 0, gref })
                .unwrap();
            grefs.push(gref);
        }
        self.rx.push_requests_and_check_notify();
        grefs
    }

    /// Every rx response published so far.
    pub fn rx_responses(&mut self) -> Vec<NetifRxResponse> {
        let mut out = Vec::new();
        while let Ok(Some(r)) = self.rx.take_response() {
            out.push(r);
        }
        out
    }

    /// Writes the tx ring's `req_prod` directly (offset 0), whatever the ring rules say.
    pub fn force_tx_req_prod(&self, value: u32) {
        self.tx_page.page().write(0, &value.to_le_bytes()).unwrap();
    }

    /// Writes the rx ring's `req_prod` directly.
    pub fn force_rx_req_prod(&self, value: u32) {
        self.rx_page.page().write(0, &value.to_le_bytes()).unwrap();
    }
}

/// A tx request.
pub fn txreq(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> NetifTxRequest {
    NetifTxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    }
}
