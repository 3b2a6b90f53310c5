//! What a backend needs of the platform to reach a front end: mapping its grants (with the
//! checks Xen's `GNTTABOP_map_grant_ref` makes) and binding to its event channel.

use crate::platform::{Notify, NotifyError};
use crate::types::{DomId, GrantRef, Port};
use abi::page::{AtomicPage, OutOfPage};
use core::fmt;

/// Why a grant could not be mapped: Xen's `GNTST_*` answers a backend gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantMapError {
    /// The reference is beyond the granting domain's table (`GNTST_bad_gntref`).
    BadRef,
    /// The entry does not grant this domain access, or not for writing
    /// (`GNTST_permission_denied`).
    PermissionDenied,
    /// The granted frame is not memory of the granting domain (`GNTST_bad_page`).
    BadPage,
    /// The granting domain does not exist (`GNTST_bad_domain`).
    BadDomain,
    /// The backend holds as many mappings as it may (`GNTST_no_device_space`).
    NoSpace,
    /// Any other `GNTST_*` status.
    Other(i16),
}

impl fmt::Display for GrantMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRef => f.write_str("bad grant reference"),
            Self::PermissionDenied => f.write_str("grant does not permit this access"),
            Self::BadPage => f.write_str("granted frame is not the granter's memory"),
            Self::BadDomain => f.write_str("no such granting domain"),
            Self::NoSpace => f.write_str("no room for another mapping"),
            Self::Other(status) => write!(f, "grant map failed with status {status}"),
        }
    }
}

/// A front end's page mapped by the backend. Reached only through [`AtomicPage`]'s atomic
/// accesses (the front end may write it at any time); writes are refused on a read-only
/// mapping. Not `Clone`: it goes back through [`GrantMapper::unmap`] exactly once.
#[derive(Debug)]
pub struct MappedPage {
    memory: &'static AtomicPage,
    handle: u32,
    domid: DomId,
    gref: GrantRef,
    writable: bool,
}

/// A write through a read-only mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappedPageError {
    /// The mapping is read-only.
    ReadOnly,
    /// The access leaves the page.
    OutOfPage(OutOfPage),
}

impl MappedPage {
    /// For [`GrantMapper`] implementations: the mapping of `gref` of `domid` as `memory`, with
    /// the platform's `handle` for the unmap. `memory` must be the granted frame, and stay
    /// valid memory for the rest of the program (the platform's promise, as for
    /// [`crate::PageProvider`]'s pages).
    pub fn new(
        memory: &'static AtomicPage,
        handle: u32,
        domid: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Self {
        Self {
            memory,
            handle,
            domid,
            gref,
            writable,
        }
    }

    /// The platform's handle (for the unmap).
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// The granting domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The grant reference.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// Whether the mapping may be written.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Copies bytes out of the page.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MappedPageError> {
        self.memory
            .read(offset, buf)
            .map_err(MappedPageError::OutOfPage)
    }

    /// Copies bytes into the page (a writable mapping only).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), MappedPageError> {
        if !self.writable {
            return Err(MappedPageError::ReadOnly);
        }
        self.memory
            .write(offset, data)
            .map_err(MappedPageError::OutOfPage)
    }

    /// The page's memory, to lay a shared ring on (a writable mapping only).
    pub fn ring_memory(&self) -> Option<&'static AtomicPage> {
        self.writable.then_some(self.memory)
    }
}

/// Mapping grants of other domains (`GNTTABOP_map_grant_ref` / `unmap_grant_ref`). The
/// platform makes Xen's checks: the entry must permit access to this domain, not be
/// read-only for a writable mapping, and name the granter's memory; while mapped, the entry
/// carries `GTF_reading` (and `GTF_writing` if writable), so the granter cannot end the grant.
pub trait GrantMapper {
    /// Maps grant `gref` of domain `domid`, writable if `writable`.
    fn map(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<MappedPage, GrantMapError>;
    /// Ends a mapping (the grant's in-use bits are cleared).
    fn unmap(&mut self, page: MappedPage);
}

/// A backend's event channels: bind to a front end's unbound port
/// (`EVTCHNOP_bind_interdomain`), notify through the local port, close it.
pub trait InterdomainEvents: Notify {
    /// Binds a local port to `remote_port` of domain `remote`.
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port, NotifyError>;
    /// Closes local port `port`.
    fn unbind(&mut self, port: Port);
}
