//! Other domains' grants mapped into this domain: `GNTTABOP_map_grant_ref` with
//! `GNTMAP_host_map` at a frame of the window [`crate::proto::grant_map`] keeps outside RAM
//! (as Linux maps grants for a PVH domU), the page reached only through [`GrantMapping`]'s
//! volatile copies, and `GNTTABOP_unmap_grant_ref`.

use abi::grant_table::{
    GNTMAP_HOST_MAP, GNTMAP_READONLY, GNTST_OKAY, GnttabMapGrantRef, GnttabUnmapGrantRef,
};
use spin::Mutex;

use super::hypercall::{self, HypercallError};
use super::shared_page::SharedPage;
use crate::proto::grant_map::{Slot, Slots};
use xenbus::{DomId, GrantRef};

/// Why a grant could not be mapped or unmapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Every window frame holds a mapping.
    WindowFull,
    /// The hypercall itself failed (Xen's errno).
    Hypercall(HypercallError),
    /// Xen refused the request: its `GNTST_*` status.
    Status(i16),
    /// Writing through a read-only mapping (refused here: Xen would inject #GP).
    ReadOnly,
    /// An access outside the page.
    OutOfPage,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WindowFull => f.write_str("no free frame in the grant-map window"),
            Self::Hypercall(e) => write!(f, "hypercall: {e}"),
            Self::Status(s) => write!(f, "GNTST {s}"),
            Self::ReadOnly => f.write_str("write through a read-only mapping"),
            Self::OutOfPage => f.write_str("access outside the page"),
        }
    }
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots::new());

/// A grant of another domain mapped at a window frame, until [`unmap`].
#[derive(Debug)]
pub struct GrantMapping {
    page: SharedPage,
    slot: Slot,
    handle: u32,
    readonly: bool,
}

impl GrantMapping {
    /// The guest-physical address the page is mapped at.
    pub fn addr(&self) -> u64 {
        self.slot.addr()
    }

    /// Copies bytes at `offset` out of the mapped page.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), MapError> {
        self.page.read_bytes(offset, buf).ok_or(MapError::OutOfPage)
    }

    /// Copies `data` into the mapped page at `offset` (refused for a read-only mapping).
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), MapError> {
        if self.readonly {
            return Err(MapError::ReadOnly);
        }
        self.page
            .write_bytes(offset, data)
            .ok_or(MapError::OutOfPage)
    }
}

/// Maps grant `gref` of domain `dom` at a free window frame (read-only with `readonly`).
pub fn map(dom: DomId, gref: GrantRef, readonly: bool) -> Result<GrantMapping, MapError> {
    let slot = SLOTS.lock().take().map_err(|_| MapError::WindowFull)?;
    let mut flags = GNTMAP_HOST_MAP;
    if readonly {
        flags |= GNTMAP_READONLY;
    }
    let mut op = GnttabMapGrantRef {
        host_addr: slot.addr(),
        flags,
        ref_: gref.get(),
        dom: dom.get(),
        ..Default::default()
    };
    // SAFETY: the slot's frame lies in the window outside this domain's RAM and special
    // pages (proto::grant_map); the frame allocator never hands it out and nothing else
    // refers to it; it is reached only through the returned mapping's volatile copies.
    let called = unsafe { hypercall::gnttab_map_grant_ref(&mut op) };
    let refused = match called {
        Err(e) => Some(MapError::Hypercall(e)),
        Ok(()) if op.status != GNTST_OKAY => Some(MapError::Status(op.status)),
        Ok(()) => None,
    };
    if let Some(e) = refused {
        // Nothing was mapped: the slot is free again (it was taken just above).
        let _ = SLOTS.lock().give(slot);
        return Err(e);
    }
    // SAFETY: the window frame is page aligned and inside the identity map; it now holds the
    // granted page, which the kernel reaches only through this mapping (not Copy, consumed by
    // `unmap`, which hands out nothing of it), with volatile accesses.
    let page = unsafe { SharedPage::new(slot.addr() as *mut u8) };
    Ok(GrantMapping {
        page,
        slot,
        handle: op.handle,
        readonly,
    })
}

/// Unmaps `mapping`; on a refusal the mapping is handed back (still mapped).
pub fn unmap(mapping: GrantMapping) -> Result<(), (GrantMapping, MapError)> {
    let mut op = GnttabUnmapGrantRef {
        host_addr: mapping.slot.addr(),
        dev_bus_addr: 0,
        handle: mapping.handle,
        status: 0,
    };
    // SAFETY: `mapping` is consumed here (or handed back on failure): no access to the frame
    // is in flight and none remains after a successful unmap.
    match unsafe { hypercall::gnttab_unmap_grant_ref(&mut op) } {
        Err(e) => return Err((mapping, MapError::Hypercall(e))),
        Ok(()) if op.status != GNTST_OKAY => return Err((mapping, MapError::Status(op.status))),
        Ok(()) => {}
    }
    // The slot was taken by `map`: giving it back cannot fail.
    let _ = SLOTS.lock().give(mapping.slot);
    Ok(())
}
