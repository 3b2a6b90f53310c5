//! The kernel's grant table (v1): frames mapped with `XENMEM_add_to_physmap`
//! (`XENMAPSPACE_grant_table`) over free frames from the frame allocator, entries written with
//! volatile stores and an atomic compare-exchange on `flags`, and the
//! [`xenbus::grant::GrantTable`] logic on top.

use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU16, Ordering};

use abi::grant_table::GrantEntryV1;
use abi::xen::Domid;
use spin::Mutex;

use super::hypercall::{self, HypercallError};
use super::shared_page::{self, SharedPage};
use xenbus::grant::{ENTRIES_PER_FRAME, FrameAddFailed, GrantEntries, GrantError};
use xenbus::{DomId, GrantRef};

/// Errors setting up the grant table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantSetupError {
    /// `GNTTABOP_query_size` failed.
    QuerySize(HypercallError),
    /// Xen allows no grant-table frames at all.
    NoFrames,
    /// Mapping frame 0 failed.
    FirstFrame,
    /// [`init`] has not run (or failed).
    NotReady,
}

/// Grant-table frames mapped into this domain: `frames[i]` is grant-table frame `i`. Entries
/// are reached only through [`SharedPage`]: Xen and the peer change `flags` at any time.
#[derive(Debug, Default)]
pub struct KernelGrantFrames {
    frames: Vec<SharedPage>,
}

impl KernelGrantFrames {
    /// The frame holding entry `gref` and the entry's offset in it, if the frame is mapped.
    fn entry(&self, gref: u32) -> Option<(SharedPage, usize)> {
        let frame = self.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
        let offset = (gref % ENTRIES_PER_FRAME) as usize * size_of::<GrantEntryV1>();
        Some((*frame, offset))
    }

    /// `flags` of entry `gref`: only accessed atomically, by us and by Xen's cmpxchg.
    fn flags_atomic(&self, gref: u32) -> Option<&'static AtomicU16> {
        let (page, at) = self.entry(gref)?;
        page.atomic_u16(at + offset_of!(GrantEntryV1, flags))
    }

    /// Copies entry `gref` out: `(flags, domid, frame)`.
    pub fn read_entry(&self, gref: u32) -> Option<(u16, Domid, u32)> {
        let (page, at) = self.entry(gref)?;
        let flags = self.flags_atomic(gref)?.load(Ordering::SeqCst);
        let domid = page.read::<u16>(at + offset_of!(GrantEntryV1, domid))?;
        let frame = page.read::<u32>(at + offset_of!(GrantEntryV1, frame))?;
        Some((flags, domid, frame))
    }
}

impl GrantEntries for KernelGrantFrames {
    fn write_domid_frame(&self, gref: u32, domid: Domid, frame: u32) {
        // The table calls this only for grefs below its capacity, whose frames are mapped; the
        // entry is not granted yet (flags 0), so Xen does not read these fields concurrently.
        if let Some((page, at)) = self.entry(gref) {
            let _ = page.write(at + offset_of!(GrantEntryV1, domid), domid);
            let _ = page.write(at + offset_of!(GrantEntryV1, frame), frame);
        }
    }

    fn write_flags(&self, gref: u32, flags: u16) {
        if let Some(f) = self.flags_atomic(gref) {
            f.store(flags, Ordering::SeqCst);
        }
    }

    fn read_flags(&self, gref: u32) -> u16 {
        self.flags_atomic(gref)
            .map_or(0, |f| f.load(Ordering::SeqCst))
    }

    fn compare_exchange_flags(&self, gref: u32, current: u16, new: u16) -> Result<u16, u16> {
        match self.flags_atomic(gref) {
            Some(f) => f.compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst),
            None => Err(0),
        }
    }

    fn add_frame(&mut self, index: u32) -> Result<(), FrameAddFailed> {
        if index as usize != self.frames.len() {
            return Err(FrameAddFailed);
        }
        let page = shared_page::map_grant_frame(index).map_err(|e| {
            log::warn!("grant table: mapping frame {index}: {e:?}");
            FrameAddFailed
        })?;
        self.frames.push(page);
        Ok(())
    }
}

impl KernelGrantFrames {
    /// Maps every frame again at its place (after a resume in a new domain); the frames that
    /// failed, by index.
    fn remap(&self) -> Vec<(u32, HypercallError)> {
        let mut failed = Vec::new();
        for (index, page) in (0u32..).zip(&self.frames) {
            if let Err(e) = shared_page::remap_grant_frame(index, *page) {
                failed.push((index, e));
            }
        }
        failed
    }
}

type Table = xenbus::grant::GrantTable<KernelGrantFrames>;

static GRANTS: Mutex<Option<Table>> = Mutex::new(None);

/// Queries the table size and maps frame 0. Returns `(frames, max_frames)` as Xen reported
/// them before the mapping.
pub fn init() -> Result<(u32, u32), GrantSetupError> {
    let (nr, max) = hypercall::gnttab_query_size().map_err(GrantSetupError::QuerySize)?;
    if max == 0 {
        return Err(GrantSetupError::NoFrames);
    }
    let mut frames = KernelGrantFrames::default();
    frames
        .add_frame(0)
        .map_err(|FrameAddFailed| GrantSetupError::FirstFrame)?;
    *GRANTS.lock() = Some(Table::new(frames, 1, max));
    Ok((nr, max))
}

/// After a resume in a new domain: its grant table starts empty (the entries are not in the
/// save image), so every frame is mapped again at its place; every entry now reads 0, which
/// ends any grant at once. The references the front ends still hold stay allocated until they
/// end them and grant their pages again (as Linux's `gnttab_resume` and `blkif_recover`).
/// Returns the frames mapped.
pub fn resume() -> Result<u32, GrantSetupError> {
    with(|t| {
        let failed = t.entries().remap();
        for (index, e) in &failed {
            log::error!("grant table: mapping frame {index} again: {e}");
        }
        if failed.is_empty() {
            Ok(t.frames())
        } else {
            Err(GrantSetupError::FirstFrame)
        }
    })?
}

/// Runs `f` on the grant table.
pub fn with<R>(f: impl FnOnce(&mut Table) -> R) -> Result<R, GrantSetupError> {
    GRANTS
        .lock()
        .as_mut()
        .map(f)
        .ok_or(GrantSetupError::NotReady)
}

/// Runs `f` on the grant table with `value`, or gives `value` back if the table is not set
/// up (so that a page handed in is never lost).
pub fn with_value<T, R>(value: T, f: impl FnOnce(&mut Table, T) -> R) -> Result<R, T> {
    match GRANTS.lock().as_mut() {
        Some(table) => Ok(f(table, value)),
        None => Err(value),
    }
}

/// Errors of the grant operations in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantOpError {
    /// [`init`] has not run (or failed).
    NotReady,
    /// The grant-table logic refused.
    Table(GrantError),
}

/// Grants `domid` access to physical frame `frame`.
pub fn grant_access(domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantOpError> {
    with(|t| t.grant_access(domid, frame, readonly))
        .map_err(|_| GrantOpError::NotReady)?
        .map_err(GrantOpError::Table)
}

/// Ends a grant (refused with `StillInUse` while the peer maps or copies it).
pub fn end_access(gref: GrantRef) -> Result<(), GrantOpError> {
    with(|t| t.end_access(gref))
        .map_err(|_| GrantOpError::NotReady)?
        .map_err(GrantOpError::Table)
}

/// Entry `gref` as the shared frame holds it now: `(flags, domid, frame)`.
pub fn read_entry(gref: GrantRef) -> Option<(u16, Domid, u32)> {
    with(|t| t.entries().read_entry(gref.get())).ok().flatten()
}
