//! How domain 0's back ends inside hv reach a domU: through a lease. The machine hands the
//! domain (out of its table) to a back end's grant mapper and event channels for one round,
//! and takes it back afterwards; between rounds the lease is empty and every operation
//! fails as it would on a domain that is gone. Shared by the block (`super::blk`) and
//! network (`super::net`) back ends.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use abi::page::AtomicPage;
use xenbus::backend::{GrantMapError, GrantMapper, InterdomainEvents, MappedPage};
use xenbus::{DomId, GrantRef, Notify, NotifyError, Port};

use crate::dom0::ports::Service;
use crate::hvlog;

use super::domain::Domain;

/// The domain a back end may reach this round, if the machine lent it.
pub type Lease = Rc<RefCell<Option<Box<Domain>>>>;

/// An empty lease.
pub fn lease() -> Lease {
    Rc::new(RefCell::new(None))
}

/// Lends the domain in `slot` to `lease` for `f`, then puts it back.
pub fn lend<R>(lease: &Lease, slot: &mut Option<Box<Domain>>, f: impl FnOnce() -> R) -> R {
    *lease.borrow_mut() = slot.take();
    let r = f();
    *slot = lease.borrow_mut().take();
    r
}

/// Domain 0's mappings of the leased domain's grants.
pub struct DomGrants {
    lease: Lease,
    domid: u16,
}

impl DomGrants {
    /// The grants of domain `domid`, reached through `lease`.
    pub fn new(lease: Lease, domid: u16) -> Self {
        Self { lease, domid }
    }
}

fn map_error(status: i16) -> GrantMapError {
    use abi::grant_table as g;
    match status {
        g::GNTST_BAD_GNTREF => GrantMapError::BadRef,
        g::GNTST_PERMISSION_DENIED => GrantMapError::PermissionDenied,
        g::GNTST_BAD_PAGE => GrantMapError::BadPage,
        g::GNTST_BAD_DOMAIN => GrantMapError::BadDomain,
        g::GNTST_NO_DEVICE_SPACE => GrantMapError::NoSpace,
        other => GrantMapError::Other(other),
    }
}

impl GrantMapper for DomGrants {
    fn map(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<MappedPage, GrantMapError> {
        if domid.get() != self.domid {
            return Err(GrantMapError::BadDomain);
        }
        let mut lease = self.lease.borrow_mut();
        let dom = lease.as_mut().ok_or(GrantMapError::BadDomain)?;
        let (hpa, handle) = dom.backend_map(gref.get(), writable).map_err(map_error)?;
        // SAFETY: `hpa` is a page-aligned page of the domain's RAM inside hv's identity map
        // (backend_map checked both), valid memory for the rest of hv's run (a torn-down
        // domain's frames go back to the allocator but stay RAM). `AtomicPage` is 4096
        // atomic bytes with alignment 1, so any byte the domain writes meanwhile is a valid
        // value, and hv's accesses are atomic: no data race with the guest's.
        let page: &'static AtomicPage = unsafe { &*(hpa as *const AtomicPage) };
        Ok(MappedPage::new(page, handle, domid, gref, writable))
    }

    fn unmap(&mut self, page: MappedPage) {
        if let Some(dom) = self.lease.borrow_mut().as_mut()
            && let Err(status) = dom.backend_unmap(page.handle())
        {
            hvlog!(
                "d{}: unmapping grant {}: status {status}",
                self.domid,
                page.gref()
            );
        }
    }
}

/// Domain 0's end of the leased domain's event channels for one back end.
pub struct DomEvents {
    lease: Lease,
    domid: u16,
    service: Service,
    /// The first dom0 port this back end binds.
    dom0_port: u32,
    /// How many it may bind (a vif: two per queue with split channels).
    ports: u32,
    /// `(dom0 port, the domain's port)` of each bound one.
    bound: Vec<(u32, u32)>,
    /// Notifications sent.
    sent: u64,
}

impl DomEvents {
    /// The events of domain `domid` for `service`, which binds domain 0's `dom0_port`.
    pub fn new(lease: Lease, domid: u16, service: Service, dom0_port: u32) -> Self {
        Self::with_ports(lease, domid, service, dom0_port, 1)
    }

    /// As [`Self::new`], binding up to `ports` of domain 0's ports from `dom0_port` on.
    pub fn with_ports(
        lease: Lease,
        domid: u16,
        service: Service,
        dom0_port: u32,
        ports: u32,
    ) -> Self {
        Self {
            lease,
            domid,
            service,
            dom0_port,
            ports: ports.max(1),
            bound: Vec::new(),
            sent: 0,
        }
    }

    /// Notifications sent to the domain.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

impl Notify for DomEvents {
    fn notify(&mut self, port: Port) -> Result<(), NotifyError> {
        let einval = NotifyError {
            port,
            errno: -abi::errno::XEN_EINVAL,
        };
        let &(_, remote) = self
            .bound
            .iter()
            .find(|(p, _)| *p == port.get())
            .ok_or(einval)?;
        let mut lease = self.lease.borrow_mut();
        let dom = lease.as_mut().ok_or(einval)?;
        dom.backend_notify(remote);
        self.sent += 1;
        Ok(())
    }
}

impl InterdomainEvents for DomEvents {
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port, NotifyError> {
        let fail = |errno| NotifyError {
            port: remote_port,
            errno,
        };
        if remote.get() != self.domid {
            return Err(fail(-abi::errno::XEN_ESRCH));
        }
        // The first of our ports not bound; with all bound, the first is bound again (one
        // port: a back end reconnecting).
        let end = self.dom0_port.saturating_add(self.ports);
        let free = (self.dom0_port..end).find(|p| self.bound.iter().all(|(b, _)| b != p));
        let dom0_port = match free {
            Some(p) => p,
            None => {
                let (p, _) = self.bound.remove(0);
                if let Some(dom) = self.lease.borrow_mut().as_mut() {
                    dom.backend_unbind(p);
                }
                p
            }
        };
        let local = Port::try_new(dom0_port).map_err(|_| fail(-abi::errno::XEN_EINVAL))?;
        let mut lease = self.lease.borrow_mut();
        let dom = lease.as_mut().ok_or(fail(-abi::errno::XEN_ESRCH))?;
        dom.backend_bind(remote_port.get(), dom0_port, self.service)
            .map_err(fail)?;
        self.bound.push((dom0_port, remote_port.get()));
        Ok(local)
    }

    fn unbind(&mut self, port: Port) {
        if let Some(i) = self.bound.iter().position(|(p, _)| *p == port.get()) {
            self.bound.remove(i);
            if let Some(dom) = self.lease.borrow_mut().as_mut() {
                dom.backend_unbind(port.get());
            }
        }
    }
}
