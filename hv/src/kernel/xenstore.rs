//! Domain 0's xenstored, kernel side: one store for every domain (domain 0's home and each
//! domU's keys as the toolstack writes them), and each domain's connection over its
//! xenstore page in host memory ([`crate::dom0::xenstored`]'s [`StorePage`]).

use super::host_frame::HostFrame;
use crate::dom0::toolstack;
use crate::dom0::xenstored::{MAX_QUEUED_BYTES, StorePage, XsConnection};
use xenstored::quota::Quotas;
use xenstored::{Domid, Store, XsdError};

/// hv's heap set aside for each domain's xenstore: the most the store can hold for one
/// domain at its quotas ([`xenstored::quota::HEAP_PER_DOMAIN`], twice the worst measured),
/// plus the connection's queue ([`MAX_QUEUED_BYTES`] and a partial request), rounded up to a
/// MiB. The heap is this much per domain on top of [`super::start::HEAP_BASE`].
pub const HEAP_PER_DOMAIN: u64 = ((xenstored::quota::HEAP_PER_DOMAIN + MAX_QUEUED_BYTES + 8192)
    as u64)
    .next_multiple_of(1 << 20);

/// The last resort: while less of hv's heap than this is free, requests are answered
/// `ENOMEM` without touching the store. It never happens to domains within their quotas in a
/// heap sized by [`HEAP_PER_DOMAIN`]: it stands between a mistake in that sizing and the
/// allocator's failure, which would stop hv.
const LAST_RESORT_FREE: usize = 1 << 20;

impl StorePage for HostFrame {
    fn load_u32(&self, off: usize) -> u32 {
        HostFrame::load_u32(self, off)
    }

    fn store_u32(&mut self, off: usize, value: u32) {
        HostFrame::store_u32(self, off, value);
    }

    fn load_u8(&self, off: usize) -> u8 {
        HostFrame::load_u8(self, off)
    }

    fn store_u8(&mut self, off: usize, value: u8) {
        HostFrame::store_u8(self, off, value);
    }
}

/// The store every domain shares, with domain 0's home written, under `quotas` (hv's
/// `xenstored-*` options; C's defaults without them).
pub fn new_store(quotas: Quotas) -> Result<Store, XsdError> {
    let mut store = Store::with_quotas(quotas);
    toolstack::write_dom0(&mut store)?;
    Ok(store)
}

fn memory_low() -> bool {
    let (size, used) = super::HEAP.stats();
    size.saturating_sub(used) < LAST_RESORT_FREE
}

/// One domain's connection to xenstored. C xenstored's quotas bound what the domain can make
/// the store hold (see the `xenstored` crate); requests are refused with `ENOMEM` only as a
/// last resort, while less than `LAST_RESORT_FREE` (1 MiB) of hv's heap is free (see
/// [`XsConnection::service`]).
pub struct Xenstore {
    page: HostFrame,
    conn: XsConnection,
    domid: Domid,
}

impl Xenstore {
    /// Writes `info`'s domain into `store` as the toolstack does and connects it through its
    /// page at host-physical `page` (a fresh page, set up here).
    ///
    /// # Safety
    /// As [`HostFrame::new`]: `page` is a page hv allocated for this domain's store and keeps.
    pub unsafe fn new(
        store: &mut Store,
        page: u64,
        info: &toolstack::DomainInfo<'_>,
    ) -> Result<Self, XsdError> {
        toolstack::write_domu(store, info)?;
        // SAFETY: the caller's contract is `HostFrame::new`'s.
        let mut page = unsafe { HostFrame::new(page) };
        let conn = XsConnection::new(info.domid);
        conn.init_page(&mut page);
        Ok(Self {
            page,
            conn,
            domid: info.domid,
        })
    }

    /// Serves the ring; whether to notify the domain.
    pub fn service(&mut self, store: &mut Store) -> bool {
        self.conn.service(store, &mut self.page, &memory_low)
    }

    /// Whether watch events wait in the store for this domain (another domain's request or
    /// the toolstack caused them): then [`Self::deliver_events`] delivers them.
    pub fn events_waiting(&self, store: &Store) -> bool {
        store.queued_event_bytes(self.domid) > 0
    }

    /// Writes the watch events queued for this domain into its ring, reading no request;
    /// whether to notify the domain.
    pub fn deliver_events(&mut self, store: &mut Store) -> bool {
        self.conn.deliver_events(store, &mut self.page)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.conn.stats.requests
    }
}

/// Removes a domain from the store as `xl destroy` does ([`toolstack::destroy_domu`]); a
/// step that fails is logged, the others still done.
pub fn destroy(store: &mut Store, domid: Domid, uuid: &str) {
    if let Err(e) = toolstack::destroy_domu(store, domid, uuid) {
        crate::hvlog!("d{domid}: xenstore destroy: {e}");
    }
}
