//! Domain 0's xenstored, kernel side: the domain's xenstore page in host memory as
//! [`crate::dom0::xenstored`]'s [`StorePage`], the store with the toolstack's keys, and the
//! domain's connection.

use super::host_frame::HostFrame;
use crate::dom0::toolstack;
use crate::dom0::xenstored::{StorePage, XsConnection};
use xenstored::Store;

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

/// xenstored for one domain. Requests are refused with `ENOMEM` while more than half of
/// hv's heap is in use (see [`XsConnection::service`]).
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
            used > size / 2
        })
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.conn.stats.requests
    }
}
