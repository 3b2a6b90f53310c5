//! Grant tables, version 1: granting a frame to another domain, ending the grant with Xen's
//! in-use rules, and allocating grant references (growing the table by frames).
//!
//! Entries live in the shared grant-table frames and are reached only through
//! [`GrantEntries`], which the kernel implements with volatile writes and an atomic
//! compare-exchange on `flags`. Granting writes `domid` and `frame`, then a write barrier, then
//! `flags` (Linux's `gnttab_update_entry_v1`). Ending a grant clears `flags` with a
//! compare-exchange only while Xen has neither `GTF_reading` nor `GTF_writing` set
//! (`gnttab_end_foreign_access_ref_v1`); otherwise it fails with [`GrantError::StillInUse`].

mod refs;
#[cfg(test)]
mod tests;

pub use refs::RefAllocator;

use crate::page::Page;
use crate::types::{DomId, GrantRef};
use abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING, GrantEntryV1};
use abi::xen::Domid;
use core::fmt;
use core::sync::atomic::{Ordering, fence};

/// Grant-table v1 entries per 4 KiB frame.
#[allow(clippy::cast_possible_truncation)] // 4096 / 8 = 512, asserted below
pub const ENTRIES_PER_FRAME: u32 = (4096 / core::mem::size_of::<GrantEntryV1>()) as u32;
const _: () = assert!(ENTRIES_PER_FRAME == 512);

/// Compare-exchange attempts on `flags` before [`GrantTable::end_access`] gives up.
const END_ACCESS_ATTEMPTS: u32 = 64;

/// Errors of the grant-table logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The peer still has the grant mapped or is copying (`GTF_reading`/`GTF_writing`): the
    /// page must not be reused yet. The grant stays in place; try again later.
    StillInUse(GrantRef),
    /// Every reference is in use and the table is at its maximum number of frames.
    Exhausted,
    /// The platform could not add another grant-table frame.
    FrameAddFailed,
    /// The reference is not currently allocated.
    NotAllocated(GrantRef),
    /// The reference is one of the reserved entries (below `GNTTAB_NR_RESERVED_ENTRIES`).
    Reserved(GrantRef),
    /// The reference is beyond the table's current capacity.
    OutOfRange(GrantRef),
    /// The frame number does not fit the 32-bit `frame` field of a v1 entry.
    FrameTooLarge(u64),
    /// The platform's grant table is not set up (yet).
    NotReady,
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StillInUse(r) => write!(f, "grant {r} is still mapped or copied by the peer"),
            Self::Exhausted => {
                f.write_str("no free grant reference and the table is at its maximum")
            }
            Self::FrameAddFailed => f.write_str("the platform could not add a grant-table frame"),
            Self::NotAllocated(r) => write!(f, "grant {r} is not allocated"),
            Self::Reserved(r) => write!(f, "grant {r} is a reserved entry"),
            Self::OutOfRange(r) => write!(f, "grant {r} is beyond the table"),
            Self::FrameTooLarge(frame) => {
                write!(f, "frame {frame:#x} does not fit a v1 grant entry")
            }
            Self::NotReady => f.write_str("the grant table is not set up"),
        }
    }
}

/// The platform could not map another grant-table frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameAddFailed;

/// Access to the grant-table entries (volatile/atomic in the kernel) and its growth.
///
/// `gref` is always below the current capacity (frames × 512) when these are called.
pub trait GrantEntries {
    /// Writes `domid` and `frame` of entry `gref` (not yet visible as a grant).
    fn write_domid_frame(&self, gref: u32, domid: Domid, frame: u32);
    /// Writes `flags` of entry `gref`.
    fn write_flags(&self, gref: u32, flags: u16);
    /// Reads `flags` of entry `gref`.
    fn read_flags(&self, gref: u32) -> u16;
    /// Atomically replaces `flags` of `gref` with `new` if it equals `current`; returns the
    /// value found (`Ok` on success, `Err` with the actual value otherwise).
    fn compare_exchange_flags(&self, gref: u32, current: u16, new: u16) -> Result<u16, u16>;
    /// Maps grant-table frame number `index` (`XENMEM_add_to_physmap` with
    /// `XENMAPSPACE_grant_table`), making entries `index * 512 ..` usable.
    fn add_frame(&mut self, index: u32) -> Result<(), FrameAddFailed>;
    /// Orders the entry writes before the `flags` write (Linux's `wmb`).
    fn write_barrier(&self) {
        fence(Ordering::Release);
    }
}

/// A v1 grant table: the entries and the reference allocator.
#[derive(Debug)]
pub struct GrantTable<E> {
    entries: E,
    refs: RefAllocator,
    frames: u32,
    max_frames: u32,
}

impl<E: GrantEntries> GrantTable<E> {
    /// A table whose first `frames` frames are already mapped, growable to `max_frames`
    /// (Xen's `max_grant_frames`, from `GNTTABOP_query_size`).
    pub fn new(entries: E, frames: u32, max_frames: u32) -> Self {
        Self {
            entries,
            refs: RefAllocator::new(frames.saturating_mul(ENTRIES_PER_FRAME)),
            frames,
            max_frames,
        }
    }

    /// The entry accessor.
    pub fn entries(&self) -> &E {
        &self.entries
    }

    /// The entry accessor, mutably.
    pub fn entries_mut(&mut self) -> &mut E {
        &mut self.entries
    }

    /// Mapped frames.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// The reference allocator.
    pub fn refs(&self) -> &RefAllocator {
        &self.refs
    }

    /// Grants `domid` access to `frame` (read-only if `readonly`), growing the table by a
    /// frame when all references are in use.
    ///
    /// Drivers grant [`Page`]s through [`GrantAccess`] instead, which keeps the page out of
    /// their hands until the grant has ended; this is for the platform's own frames.
    pub fn grant_access(
        &mut self,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge(frame))?;
        let gref = self.allocate()?;
        self.entries
            .write_domid_frame(gref.get(), domid.get(), frame32);
        self.entries.write_barrier();
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.entries.write_flags(gref.get(), flags);
        Ok(gref)
    }

    /// Ends a grant and frees its reference, unless the peer still uses it.
    pub fn end_access(&mut self, gref: GrantRef) -> Result<(), GrantError> {
        self.refs
            .check_allocated(gref.get())
            .map_err(|e| e.with_ref(gref))?;
        let mut flags = self.entries.read_flags(gref.get());
        for _ in 0..END_ACCESS_ATTEMPTS {
            if flags & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantError::StillInUse(gref));
            }
            match self.entries.compare_exchange_flags(gref.get(), flags, 0) {
                Ok(_) => {
                    return self.refs.free(gref.get()).map_err(|e| e.with_ref(gref));
                }
                Err(actual) => flags = actual,
            }
        }
        Err(GrantError::StillInUse(gref))
    }

    /// Whether the peer currently has `gref` mapped or is copying through it.
    pub fn is_in_use(&self, gref: GrantRef) -> Result<bool, GrantError> {
        self.refs
            .check_allocated(gref.get())
            .map_err(|e| e.with_ref(gref))?;
        Ok(self.entries.read_flags(gref.get()) & (GTF_READING | GTF_WRITING) != 0)
    }

    fn allocate(&mut self) -> Result<GrantRef, GrantError> {
        if let Some(gref) = self.refs.alloc() {
            return Ok(gref);
        }
        if self.frames >= self.max_frames {
            return Err(GrantError::Exhausted);
        }
        self.entries
            .add_frame(self.frames)
            .map_err(|FrameAddFailed| GrantError::FrameAddFailed)?;
        self.frames += 1;
        self.refs.grow(ENTRIES_PER_FRAME);
        self.refs.alloc().ok_or(GrantError::Exhausted)
    }
}

/// A page granted to another domain. The page comes back only through
/// [`GrantAccess::end`], once the grant has ended and the peer can no longer touch it.
#[derive(Debug)]
pub struct GrantedPage {
    page: Page,
    gref: GrantRef,
    domid: DomId,
    readonly: bool,
}

impl GrantedPage {
    /// The grant reference to tell the peer.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// The domain the page is granted to.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Whether the grant is read-only for the peer.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The page, for atomic reads and writes while it is shared (it cannot be taken out).
    pub fn page(&self) -> &Page {
        &self.page
    }
}

/// Granting pages to other domains and ending those grants: what a driver sees of the grant
/// table.
pub trait GrantAccess {
    /// Grants `domid` access to `page` (read-only if `readonly`). On failure the page comes
    /// back with the error.
    fn grant(
        &mut self,
        page: Page,
        domid: DomId,
        readonly: bool,
    ) -> Result<GrantedPage, (Page, GrantError)>;

    /// Ends the grant and hands the page back, unless the peer still has it mapped or is
    /// copying ([`GrantError::StillInUse`]): then the grant stays and comes back with the
    /// error, to be ended later.
    fn end(&mut self, granted: GrantedPage) -> Result<Page, (GrantedPage, GrantError)>;

    /// Grants currently in place (for leak counters).
    fn grants_in_use(&self) -> u32;
}

impl<E: GrantEntries> GrantAccess for GrantTable<E> {
    fn grant(
        &mut self,
        page: Page,
        domid: DomId,
        readonly: bool,
    ) -> Result<GrantedPage, (Page, GrantError)> {
        match self.grant_access(domid, page.gfn().get(), readonly) {
            Ok(gref) => Ok(GrantedPage {
                page,
                gref,
                domid,
                readonly,
            }),
            Err(e) => Err((page, e)),
        }
    }

    fn end(&mut self, granted: GrantedPage) -> Result<Page, (GrantedPage, GrantError)> {
        match self.end_access(granted.gref) {
            Ok(()) => Ok(granted.page),
            Err(e) => Err((granted, e)),
        }
    }

    fn grants_in_use(&self) -> u32 {
        self.refs.live()
    }
}
