//! Domain 0's xenstored, kernel side: the domain's xenstore page in host memory as
//! [`crate::dom0::xenstored`]'s [`StorePage`], the store with the toolstack's keys, and the
//! domain's connection.

use crate::dom0::toolstack;
use crate::dom0::xenstored::{StorePage, XsConnection};
use xenstored::Store;

/// hv's xenstore page for a domain (identity mapped, never freed).
struct HostPage(u64);

impl HostPage {
    fn at(&self, off: usize) -> *mut u8 {
        // `off & 0xfff` stays inside the 4 KiB page.
        (self.0 as *mut u8).wrapping_add(off & 0xfff)
    }
}

impl StorePage for HostPage {
    fn load_u32(&self, off: usize) -> u32 {
        // SAFETY: `off` is a field offset of xenstore_domain_interface (aligned, below 2076)
        // inside the 4 KiB page hv allocated for the domain's store; the guest may write it
        // concurrently, so a volatile read yields some value, which the layer checks.
        unsafe { core::ptr::read_volatile(self.at(off & 0xffc).cast::<u32>()) }
    }

    fn store_u32(&mut self, off: usize, value: u32) {
        // SAFETY: as in load_u32.
        unsafe { core::ptr::write_volatile(self.at(off & 0xffc).cast::<u32>(), value) };
    }

    fn load_u8(&self, off: usize) -> u8 {
        // SAFETY: as in load_u32; any byte offset inside the page.
        unsafe { core::ptr::read_volatile(self.at(off)) }
    }

    fn store_u8(&mut self, off: usize, value: u8) {
        // SAFETY: as in load_u8.
        unsafe { core::ptr::write_volatile(self.at(off), value) };
    }
}

/// xenstored for one domain. Requests are refused with `ENOMEM` while more than half of
/// hv's heap is in use (see [`XsConnection::service`]).
pub struct Xenstore {
    page: HostPage,
    store: Store,
    conn: XsConnection,
}

impl Xenstore {
    /// The store with domain 0's home and the toolstack's keys of `info`'s domain, serving
    /// its page at host-physical `page` (a fresh page, set up here).
    pub fn new(page: u64, info: &toolstack::DomainInfo<'_>) -> Result<Self, xenstored::XsdError> {
        let mut store = Store::new();
        toolstack::write_dom0(&mut store)?;
        toolstack::write_domu(&mut store, info)?;
        let mut page = HostPage(page);
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
