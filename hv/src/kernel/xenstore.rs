//! Domain 0's xenstored, kernel side: the domain's xenstore page in host memory as
//! [`crate::dom0::xenstored`]'s [`StorePage`], the store with the toolstack's keys, and the
//! domain's connection.

use super::host_frame::HostFrame;
use crate::dom0::toolstack;
use crate::dom0::xenstored::{MAX_QUEUED_BYTES, StorePage, XsConnection};
use xenstored::Store;

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

/// xenstored for one domain. C xenstored's quotas bound what the domain can make it hold
/// (see the `xenstored` crate); requests are refused with `ENOMEM` only as a last resort,
/// while less than `LAST_RESORT_FREE` (1 MiB) of hv's heap is free (see
/// [`XsConnection::service`]).
pub struct Xenstore {
    page: HostFrame,
    store: Store,
    conn: XsConnection,
}

impl Xenstore {
    /// The store with domain 0's home and the toolstack's keys of `info`'s domain, serving
    /// its page at host-physical `page` (a fresh page, set up here).
    ///
    /// # Safety
    /// As [`HostFrame::new`]: `page` is a page hv allocated for this store and keeps.
    pub unsafe fn new(
        page: u64,
        info: &toolstack::DomainInfo<'_>,
    ) -> Result<Self, xenstored::XsdError> {
        let mut store = Store::new();
        toolstack::write_dom0(&mut store)?;
        toolstack::write_domu(&mut store, info)?;
        // SAFETY: the caller's contract is `HostFrame::new`'s.
        let mut page = unsafe { HostFrame::new(page) };
        let conn = XsConnection::new(info.domid);
        conn.init_page(&mut page);
        Ok(Self { page, store, conn })
    }

    /// Serves the ring; whether to notify the domain.
    pub fn service(&mut self) -> bool {
        self.conn.service(&mut self.store, &mut self.page, &|| {
            let (size, used) = super::HEAP.stats();
            size.saturating_sub(used) < LAST_RESORT_FREE
        })
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.conn.stats.requests
    }
}
