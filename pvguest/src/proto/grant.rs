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

use abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING, GrantEntryV1};
use abi::xen::{DOMID_FIRST_RESERVED, Domid};
use core::sync::atomic::{Ordering, fence};

/// Grant-table v1 entries per 4 KiB frame.
pub const ENTRIES_PER_FRAME: u32 = (4096 / core::mem::size_of::<GrantEntryV1>()) as u32;
const _: () = assert!(ENTRIES_PER_FRAME == 512);

/// Compare-exchange attempts on `flags` before [`GrantTable::end_access`] gives up.
const END_ACCESS_ATTEMPTS: u32 = 64;

/// A grant reference handed out by [`GrantTable`] (an index into the grant table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(u32);

impl GrantRef {
    /// Wraps a raw reference (e.g. a reserved one); the table checks it on every use.
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// The raw reference, as written to rings and xenstore.
    pub const fn get(self) -> u32 {
        self.0
    }
}

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
    /// The domain id is a reserved one (`DOMID_FIRST_RESERVED` and above).
    InvalidDomain(Domid),
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
    pub fn grant_access(
        &mut self,
        domid: Domid,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        if domid >= DOMID_FIRST_RESERVED {
            return Err(GrantError::InvalidDomain(domid));
        }
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge(frame))?;
        let gref = self.allocate()?;
        self.entries.write_domid_frame(gref, domid, frame32);
        self.entries.write_barrier();
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.entries.write_flags(gref, flags);
        Ok(GrantRef(gref))
    }

    /// Ends a grant and frees its reference, unless the peer still uses it.
    pub fn end_access(&mut self, gref: GrantRef) -> Result<(), GrantError> {
        self.refs
            .check_allocated(gref.0)
            .map_err(|e| e.with_ref(gref))?;
        let mut flags = self.entries.read_flags(gref.0);
        for _ in 0..END_ACCESS_ATTEMPTS {
            if flags & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantError::StillInUse(gref));
            }
            match self.entries.compare_exchange_flags(gref.0, flags, 0) {
                Ok(_) => {
                    return self.refs.free(gref.0).map_err(|e| e.with_ref(gref));
                }
                Err(actual) => flags = actual,
            }
        }
        Err(GrantError::StillInUse(gref))
    }

    /// Whether the peer currently has `gref` mapped or is copying through it.
    pub fn is_in_use(&self, gref: GrantRef) -> Result<bool, GrantError> {
        self.refs
            .check_allocated(gref.0)
            .map_err(|e| e.with_ref(gref))?;
        Ok(self.entries.read_flags(gref.0) & (GTF_READING | GTF_WRITING) != 0)
    }

    fn allocate(&mut self) -> Result<u32, GrantError> {
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
