//! The kernel's grant table (v1): frames mapped with `XENMEM_add_to_physmap`
//! (`XENMAPSPACE_grant_table`) over free frames from the frame allocator, entries written with
//! volatile stores and an atomic compare-exchange on `flags`, and the
//! [`xenbus::grant::GrantTable`] logic on top.

use alloc::vec::Vec;
use core::mem::offset_of;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU16, Ordering};

use abi::grant_table::GrantEntryV1;
use abi::xen::Domid;
use spin::Mutex;

use super::hypercall::{self, HypercallError};
use crate::kernel;
use crate::memory::frames::FRAME_SIZE;
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

/// Grant-table frames mapped into this domain: `frames[i]` is the physical address of frame
/// `i`. Entries are never Rust references: Xen and the peer change `flags` at any time.
#[derive(Debug, Default)]
pub struct KernelGrantFrames {
    frames: Vec<u64>,
}

impl KernelGrantFrames {
    /// Address of entry `gref`, if its frame is mapped.
    fn entry(&self, gref: u32) -> Option<*mut u8> {
        let frame = self.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
        let offset = u64::from(gref % ENTRIES_PER_FRAME) * size_of::<GrantEntryV1>() as u64;
        Some((frame + offset) as *mut u8)
    }

    fn flags_atomic(&self, gref: u32) -> Option<&AtomicU16> {
        let entry = self.entry(gref)?;
        // SAFETY: `entry` is an 8-byte aligned entry inside a mapped grant frame, which stays
        // mapped for the kernel's life; `flags` (offset 0, u16) is only accessed atomically by
        // us and by Xen's cmpxchg.
        Some(unsafe { AtomicU16::from_ptr(entry.add(offset_of!(GrantEntryV1, flags)).cast()) })
    }

    /// Copies entry `gref` out: `(flags, domid, frame)`.
    pub fn read_entry(&self, gref: u32) -> Option<(u16, Domid, u32)> {
        let entry = self.entry(gref)?;
        let flags = self.flags_atomic(gref)?.load(Ordering::SeqCst);
        // SAFETY: fields of a mapped entry (see `entry`), naturally aligned; volatile reads.
        let (domid, frame) = unsafe {
            (
                read_volatile(entry.add(offset_of!(GrantEntryV1, domid)).cast::<u16>()),
                read_volatile(entry.add(offset_of!(GrantEntryV1, frame)).cast::<u32>()),
            )
        };
        Some((flags, domid, frame))
    }
}

impl GrantEntries for KernelGrantFrames {
    fn write_domid_frame(&self, gref: u32, domid: Domid, frame: u32) {
        // The table calls this only for grefs below its capacity, whose frames are mapped.
        if let Some(entry) = self.entry(gref) {
            // SAFETY: fields of a mapped entry, naturally aligned; the entry is not granted yet
            // (flags 0), so Xen does not read these fields concurrently.
            unsafe {
                write_volatile(
                    entry.add(offset_of!(GrantEntryV1, domid)).cast::<u16>(),
                    domid,
                );
                write_volatile(
                    entry.add(offset_of!(GrantEntryV1, frame)).cast::<u32>(),
                    frame,
                );
            }
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
        let paddr = kernel::allocate_frames(1).map_err(|_| FrameAddFailed)?;
        // SAFETY: the frame was just taken from the allocator: free RAM the kernel uses for
        // nothing else; from now on it is reached only through this accessor.
        unsafe { hypercall::map_grant_frame(index, paddr / FRAME_SIZE) }.map_err(|e| {
            log::warn!("grant table: mapping frame {index} at {paddr:#x}: {e}");
            FrameAddFailed
        })?;
        self.frames.push(paddr);
        Ok(())
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
