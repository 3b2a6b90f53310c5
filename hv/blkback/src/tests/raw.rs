//! A front end written by hand, free to put anything on the ring: it does the handshake
//! (ring page, event channel, protocol, Initialised) with raw xenstore writes and builds
//! requests field by field.

use super::rig::{Guest, Rig};
use abi::io::blkif::{BlkifRequest, BlkifResponse};
use abi::ring::FrontRing;
use std::format;
use std::vec::Vec;
use xenbus::grant::{GrantAccess, GrantedPage};
use xenbus::{DomId, PageProvider};

pub struct RawFront {
    pub guest: Guest,
    pub ring: FrontRing<BlkifRequest, BlkifResponse>,
    pub ring_page: GrantedPage,
    pub pages: Vec<GrantedPage>,
}

/// The event-channel port the raw front end claims (nobody checks it binds: the fake binds
/// anything).
pub const RAW_PORT: u32 = 7;

impl RawFront {
    /// Publishes a ring for `guest` and waits until blkback is Connected.
    pub fn connect(rig: &Rig, guest: Guest) -> Self {
        Self::connect_with(rig, guest, &[])
    }

    /// [`RawFront::connect`] writing `extra` keys too (before Initialised).
    pub fn connect_with(rig: &Rig, mut guest: Guest, extra: &[(&str, &str)]) -> Self {
        let page = guest.memory.alloc_zeroed().unwrap();
        let ring = page.init_front_ring().unwrap();
        let ring_page = guest.grants.grant(page, DomId::ZERO, false).unwrap();
        let front = guest.front.clone();
        let mut keys: Vec<(&str, std::string::String)> =
            extra.iter().map(|&(k, v)| (k, v.into())).collect();
        keys.extend([
            ("ring-ref", format!("{}", ring_page.gref())),
            ("event-channel", format!("{RAW_PORT}")),
            ("protocol", "x86_64-abi".into()),
            ("state", "3".into()),
        ]);
        for (key, value) in keys {
            guest
                .xs
                .write(
                    xenbus::xenstore::TxId::NONE,
                    &format!("{front}/{key}"),
                    &value,
                    super::rig::far(),
                )
                .unwrap();
        }
        rig.settle();
        assert_eq!(rig.back_key(&guest, "state").as_deref(), Some("4"));
        Self {
            guest,
            ring,
            ring_page,
            pages: Vec::new(),
        }
    }

    /// Says Closing, then Closed, letting domain 0 follow each.
    pub fn close(&mut self, rig: &Rig) {
        for state in ["5", "6"] {
            let front = self.guest.front.clone();
            self.guest
                .xs
                .write(
                    xenbus::xenstore::TxId::NONE,
                    &format!("{front}/state"),
                    state,
                    super::rig::far(),
                )
                .unwrap();
            rig.settle();
        }
    }

    /// A page filled with `fill`, granted to domain 0 (read-only if `readonly`); its gref.
    pub fn grant(&mut self, fill: u8, readonly: bool) -> u32 {
        let page = self.guest.memory.alloc_zeroed().unwrap();
        page.write(0, &[fill; 4096]).unwrap();
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

    /// Puts `requests` on the ring and publishes them.
    pub fn submit(&mut self, requests: &[BlkifRequest]) {
        for r in requests {
            self.ring.write_request(*r).unwrap();
        }
        self.ring.push_requests_and_check_notify();
    }

    /// Every response published so far.
    pub fn responses(&mut self) -> Vec<BlkifResponse> {
        let mut out = Vec::new();
        while let Ok(Some(r)) = self.ring.take_response() {
            out.push(r);
        }
        out
    }

    /// Writes `req_prod` in the shared page directly (offset 0), whatever the ring rules say.
    pub fn force_req_prod(&self, value: u32) {
        self.ring_page
            .page()
            .write(0, &value.to_le_bytes())
            .unwrap();
    }

    /// The shared `rsp_prod` (offset 8).
    pub fn rsp_prod(&self) -> u32 {
        let mut raw = [0u8; 4];
        self.ring_page.page().read(8, &mut raw).unwrap();
        u32::from_le_bytes(raw)
    }
}
