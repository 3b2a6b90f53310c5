//! What domain 0's back ends inside hv may do to a domU, and nothing more: map and unmap
//! its grants to domain 0 (with the grant table's checks: the entry must grant domain 0
//! access, writable only if not read-only), bind domain 0's end of a port the domU left
//! unbound for domain 0, and send on it.

use crate::dom0::ports::Service;
use crate::guest::phys::PAGE_SIZE;

use super::Domain;
use super::env::GrantView;

/// Where domain 0's back-end ports start in each domain's domain-0 port table (below:
/// xenstored's and the console's).
pub const DOM0_BACKEND_PORT_BASE: u32 = 16;

impl Domain {
    /// Domain 0 maps the domain's grant `gref` (writable if `writable`): the host address of
    /// the granted page and the handle for [`Self::backend_unmap`], or Xen's `GNTST_*`.
    pub fn backend_map(&mut self, gref: u32, writable: bool) -> Result<(u64, u32), i16> {
        let Self {
            grant_frames,
            mem,
            xen,
            ..
        } = self;
        let mut view = GrantView { grant_frames, mem };
        let m = xen.grants.map(&mut view, gref, !writable)?;
        let host = m
            .gfn
            .checked_mul(PAGE_SIZE)
            .and_then(|gpa| mem.npt.translate(&super::super::memory::TableReader, gpa))
            .filter(|t| t.writable || !writable)
            .map(|t| t.hpa & !(PAGE_SIZE - 1))
            .filter(|hpa| hpa.saturating_add(PAGE_SIZE) <= pvh::boot::IDENTITY_MAP_BYTES);
        match host {
            Some(hpa) => Ok((hpa, m.handle)),
            None => {
                let mut view = GrantView { grant_frames, mem };
                let _ = xen.grants.unmap(&mut view, m.handle);
                Err(abi::grant_table::GNTST_BAD_PAGE)
            }
        }
    }

    /// Ends domain 0's mapping `handle`.
    pub fn backend_unmap(&mut self, handle: u32) -> Result<(), i16> {
        let Self {
            grant_frames,
            mem,
            xen,
            ..
        } = self;
        let mut view = GrantView { grant_frames, mem };
        xen.grants.unmap(&mut view, handle)
    }

    /// Domain 0 binds its port `dom0_port` (owned by `service`) to the domain's `port`,
    /// which must be unbound for domain 0 (`-EINVAL` otherwise, as Xen answers).
    pub fn backend_bind(&mut self, port: u32, dom0_port: u32, service: Service) -> Result<(), i32> {
        if self.dom0_ports.register(dom0_port, service).is_err() {
            return Err(-abi::errno::XEN_EBUSY);
        }
        if let Err(e) = self.xen.evtchn.dom0_bind(port, dom0_port) {
            self.dom0_ports.unregister(dom0_port);
            return Err(i32::try_from(e).unwrap_or(-abi::errno::XEN_EINVAL));
        }
        Ok(())
    }

    /// Domain 0 lets go of its port `dom0_port` (the domain's end stays as it is: its front
    /// end closes it when it reconnects).
    pub fn backend_unbind(&mut self, dom0_port: u32) {
        self.dom0_ports.unregister(dom0_port);
    }

    /// Domain 0 sends on the domain's `port` (bound to domain 0); whether the upcall was
    /// raised.
    pub fn backend_notify(&mut self, port: u32) -> bool {
        let mut w = self.words();
        self.xen.evtchn.notify_from_dom0(&mut w, port)
    }
}
