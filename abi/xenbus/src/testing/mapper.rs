//! The backend's side of grants on the host: a grant table shared by a front end (as its
//! [`GrantAccess`]) and a [`FakeGrantMapper`] that maps its entries with Xen's checks.

use super::grant::{FakeGrantEntries, HostMemory, MapError};
use crate::backend::{GrantMapError, GrantMapper, MappedPage};
use crate::grant::{GrantAccess, GrantError, GrantTable, GrantedPage};
use crate::page::Page;
use crate::types::{DomId, GrantRef};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// One domain's grant table, shared between its front ends (which grant through it) and the
/// backend's [`FakeGrantMapper`]. Clones share the table.
#[derive(Clone, Debug)]
pub struct SharedGrantTable(pub Rc<RefCell<GrantTable<FakeGrantEntries>>>);

impl SharedGrantTable {
    /// A table with `frames` frames, growable to `max_frames`.
    pub fn new(frames: u32, max_frames: u32) -> Self {
        Self(Rc::new(RefCell::new(GrantTable::new(
            FakeGrantEntries::with_frames(frames),
            frames,
            max_frames,
        ))))
    }

    /// What a misbehaving front end can do to its own entry at any time: clear its flags,
    /// withdrawing the grant without asking whether it is in use.
    pub fn revoke(&self, gref: u32) {
        use crate::grant::GrantEntries;
        self.0.borrow().entries().write_flags(gref, 0);
    }

    /// The raw flags of `gref`.
    pub fn flags(&self, gref: u32) -> u16 {
        GrantRef::try_new(gref).map_or(0, |r| self.0.borrow().entries().flags(r))
    }
}

impl GrantAccess for SharedGrantTable {
    fn grant(
        &mut self,
        page: Page,
        domid: DomId,
        readonly: bool,
    ) -> Result<GrantedPage, (Page, GrantError)> {
        self.0.borrow_mut().grant(page, domid, readonly)
    }
    fn end(&mut self, granted: GrantedPage) -> Result<Page, (GrantedPage, GrantError)> {
        self.0.borrow_mut().end(granted)
    }
    fn grants_in_use(&self) -> u32 {
        self.0.borrow().grants_in_use()
    }
}

/// A backend domain's grant mapping on the host: the front-end domains it knows (their memory
/// and tables), Xen's checks through [`crate::testing::FakeGrantEntries::map`], live mappings
/// counted, and a limit on them (`GNTST_no_device_space`).
#[derive(Debug)]
pub struct FakeGrantMapper {
    /// The backend's own domain (grants must name it).
    pub backend: DomId,
    domains: BTreeMap<DomId, (HostMemory, SharedGrantTable)>,
    next_handle: u32,
    /// Live mappings by handle: the granting domain and reference.
    pub mapped: BTreeMap<u32, (DomId, GrantRef)>,
    /// Most live mappings at once.
    pub max_maps: usize,
    /// Successful maps so far.
    pub maps: u64,
    /// Refused maps so far.
    pub refused: u64,
}

impl FakeGrantMapper {
    /// A mapper for backend domain `backend` that knows no front end yet.
    pub fn new(backend: DomId) -> Self {
        Self {
            backend,
            domains: BTreeMap::new(),
            next_handle: 0,
            mapped: BTreeMap::new(),
            max_maps: 1024,
            maps: 0,
            refused: 0,
        }
    }

    /// Makes domain `domid`'s memory and grant table reachable.
    pub fn add_domain(&mut self, domid: DomId, memory: HostMemory, table: SharedGrantTable) {
        self.domains.insert(domid, (memory, table));
    }
}

impl GrantMapper for FakeGrantMapper {
    fn map(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<MappedPage, GrantMapError> {
        let result = (|| {
            let (memory, table) = self.domains.get(&domid).ok_or(GrantMapError::BadDomain)?;
            if self.mapped.len() >= self.max_maps {
                return Err(GrantMapError::NoSpace);
            }
            let table = table.0.borrow();
            table
                .entries()
                .map(memory, gref.get(), self.backend, writable)
                .map_err(|e| match e {
                    MapError::BadRef => GrantMapError::BadRef,
                    MapError::PermissionDenied => GrantMapError::PermissionDenied,
                    MapError::BadPage => GrantMapError::BadPage,
                })
        })();
        match result {
            Ok(memory) => {
                let handle = self.next_handle;
                self.next_handle = self.next_handle.wrapping_add(1);
                self.mapped.insert(handle, (domid, gref));
                self.maps += 1;
                Ok(MappedPage::new(memory, handle, domid, gref, writable))
            }
            Err(e) => {
                self.refused += 1;
                Err(e)
            }
        }
    }

    fn unmap(&mut self, page: MappedPage) {
        let Some((domid, gref)) = self.mapped.remove(&page.handle()) else {
            panic!(
                "fake grant mapper: unmap of handle {} never mapped",
                page.handle()
            );
        };
        // Xen clears the in-use bits when the last mapping of the entry goes.
        let still = self.mapped.values().any(|&(d, r)| d == domid && r == gref);
        if !still && let Some((_, table)) = self.domains.get(&domid) {
            table.0.borrow().entries().unmap(gref.get());
        }
    }
}
