//! The one accessor of memory the kernel shares with Xen or another domain, and the only
//! place that builds one: the shared-info page, the console and xenstore rings named by HVM
//! parameters, and grant-table frames.
//!
//! A [`SharedPage`] is never a Rust reference to data: every access is a bounds- and
//! alignment-checked volatile load or store, or an atomic, at a byte offset. The other side
//! may change any byte at any time; what is read is copied out and validated by the caller.
//! `shared_info`, `console`, `xenstore` and `grant_table` reach their pages only through this
//! type and hold no `unsafe` of their own.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU64};

use super::hypercall::{self, HypercallError};
use crate::arch::boot::IDENTITY_MAP_BYTES;
use crate::memory::addr::{fits_in_page, page_address};
use crate::memory::frames::FRAME_SIZE;
use crate::memory::global;

/// Bytes in a shared page.
pub const PAGE_SIZE: usize = 4096;

/// A 4 KiB page shared with Xen or another domain, mapped for the kernel's whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedPage {
    base: *mut u8,
}

// SAFETY: a SharedPage is an address; every access through it is volatile or atomic (no
// references to the bytes), so using it from any context cannot create a data race on Rust
// data. Callers serialise what needs serialising (ring indexes) with their own locks.
unsafe impl Send for SharedPage {}
// SAFETY: as for Send.
unsafe impl Sync for SharedPage {}

/// Plain integer types a shared page may be read and written as (every bit pattern valid).
pub trait Plain: Copy + sealed::Sealed {}
mod sealed {
    /// Seals [`super::Plain`].
    pub trait Sealed {}
}
macro_rules! plain {
    ($($t:ty),*) => { $(impl sealed::Sealed for $t {} impl Plain for $t {})* };
}
plain!(u8, u16, u32, u64, i8, i16, i32, i64);

impl SharedPage {
    /// The page at `addr`.
    ///
    /// # Safety
    /// `addr` is 4096-byte aligned; the 4 KiB page there stays mapped and writable for the
    /// rest of the kernel's life; and the kernel reaches it only through `SharedPage` (no
    /// Rust reference to its bytes, no allocator handing it out), whoever else writes it.
    pub const unsafe fn new(addr: *mut u8) -> Self {
        Self { base: addr }
    }

    /// The page's physical (identity-mapped) address.
    pub fn addr(&self) -> u64 {
        self.base as u64
    }

    /// A pointer to a `T` at `offset`, if it lies inside the page and is aligned.
    fn at<T>(&self, offset: usize) -> Option<*mut T> {
        if !fits_in_page(offset, size_of::<T>(), align_of::<T>(), PAGE_SIZE) {
            return None;
        }
        // SAFETY: offset + size_of::<T>() <= PAGE_SIZE: the result stays inside the page.
        Some(unsafe { self.base.add(offset) }.cast::<T>())
    }

    /// Reads the `T` at `offset` with a volatile load (`None` if outside or misaligned).
    pub fn read<T: Plain>(&self, offset: usize) -> Option<T> {
        let p = self.at::<T>(offset)?;
        // SAFETY: inside the mapped page and aligned (checked); any bit pattern is a valid T;
        // a volatile load, as the other side may write it concurrently.
        Some(unsafe { read_volatile(p) })
    }

    /// Writes `value` at `offset` with a volatile store (`None` if outside or misaligned).
    pub fn write<T: Plain>(&self, offset: usize, value: T) -> Option<()> {
        let p = self.at::<T>(offset)?;
        // SAFETY: inside the mapped, writable page and aligned (checked); no reference to
        // these bytes exists (the contract of `new`).
        unsafe { write_volatile(p, value) };
        Some(())
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` (`None`, copying nothing, if the range
    /// leaves the page).
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        if !fits_in_page(offset, buf.len(), 1, PAGE_SIZE) {
            return None;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.read::<u8>(offset + i)?;
        }
        Some(())
    }

    /// Copies `data` into the page at `offset` (`None`, writing nothing, if the range leaves
    /// the page).
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Option<()> {
        if !fits_in_page(offset, data.len(), 1, PAGE_SIZE) {
            return None;
        }
        for (i, &b) in data.iter().enumerate() {
            self.write::<u8>(offset + i, b)?;
        }
        Some(())
    }

    /// The byte at `offset` as an atomic.
    pub fn atomic_u8(&self, offset: usize) -> Option<&'static AtomicU8> {
        let p = self.at::<u8>(offset)?;
        // SAFETY: inside the page (checked), which lives for the kernel's life; the kernel
        // accesses these bytes only atomically or volatilely, never through references.
        Some(unsafe { AtomicU8::from_ptr(p) })
    }

    /// The aligned `u16` at `offset` as an atomic.
    pub fn atomic_u16(&self, offset: usize) -> Option<&'static AtomicU16> {
        let p = self.at::<u16>(offset)?;
        // SAFETY: as in `atomic_u8`; alignment checked.
        Some(unsafe { AtomicU16::from_ptr(p) })
    }

    /// The aligned `u64` at `offset` as an atomic.
    pub fn atomic_u64(&self, offset: usize) -> Option<&'static AtomicU64> {
        let p = self.at::<u64>(offset)?;
        // SAFETY: as in `atomic_u8`; alignment checked.
        Some(unsafe { AtomicU64::from_ptr(p) })
    }
}

// ---- the pages ------------------------------------------------------------------------------

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);

/// The frame Xen replaces with the shared-info page; never accessed as Rust data.
static mut SHARED_INFO_FRAME: Page = Page([0; PAGE_SIZE]);

/// The shared-info page (the kernel frame it is mapped over; zeros until [`map_shared_info`]).
pub fn shared_info() -> SharedPage {
    // SAFETY: a page-aligned static page, used for nothing else and never referenced (only
    // its address is taken), alive for the kernel's life.
    unsafe { SharedPage::new((&raw mut SHARED_INFO_FRAME).cast()) }
}

/// Maps the shared-info page over its kernel frame (`XENMEM_add_to_physmap`).
pub fn map_shared_info() -> Result<SharedPage, HypercallError> {
    let page = shared_info();
    // SAFETY: SHARED_INFO_FRAME is a page-aligned kernel page used for nothing else; it is
    // only ever accessed through SharedPage.
    unsafe { hypercall::map_shared_info(page.addr() / FRAME_SIZE) }?;
    Ok(page)
}

/// A page named by an HVM parameter (the console or xenstore ring): the frame must lie inside
/// the identity map; `None` otherwise.
pub fn hvm_param_page(pfn: u64) -> Option<SharedPage> {
    let addr = page_address(pfn, IDENTITY_MAP_BYTES)?;
    // SAFETY: inside the identity map (checked), hence mapped and writable; the toolstack's
    // special pages (console, xenstore) lie outside the RAM the frame allocator hands out, and
    // the kernel reaches them only through this accessor.
    Some(unsafe { SharedPage::new(addr as *mut u8) })
}

/// Why a grant-table frame could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantFrameError {
    /// No free frame to map it over.
    NoMemory,
    /// `XENMEM_add_to_physmap` failed.
    Map(HypercallError),
}

/// Maps grant-table frame `index` over a fresh frame from the allocator.
pub fn map_grant_frame(index: u32) -> Result<SharedPage, GrantFrameError> {
    let paddr = global::allocate_frames(1).map_err(|_| GrantFrameError::NoMemory)?;
    // SAFETY: the frame was just taken from the allocator: free RAM below 4 GiB the kernel
    // uses for nothing else; Xen replaces it and from now on it is reached only through the
    // returned SharedPage.
    unsafe { hypercall::map_grant_frame(index, paddr / FRAME_SIZE) }
        .map_err(GrantFrameError::Map)?;
    // SAFETY: as above; the frame is page aligned and inside the identity map.
    Ok(unsafe { SharedPage::new(paddr as *mut u8) })
}

/// Maps grant-table frame `index` again over `page`, the frame [`map_grant_frame`] put it at
/// before the domain was saved (a new domain's table starts empty, and the frame came back as
/// plain memory holding a copy of the old entries).
pub fn remap_grant_frame(index: u32, page: SharedPage) -> Result<(), HypercallError> {
    // SAFETY: `page` is a grant frame this module mapped (a frame taken from the allocator
    // for it alone, reached only through SharedPage); Xen replaces it with the new table's
    // frame, which is what every user of the page expects it to be.
    unsafe { hypercall::map_grant_frame(index, page.addr() / FRAME_SIZE) }
}
