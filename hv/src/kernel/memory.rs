//! Host memory seen through hv's identity map: frames for the domain, its nested tables in
//! pages of its paging pool ([`TablePool`]), and the domain's guest-physical memory as
//! [`GuestPhys`] over the nested page tables.

use crate::frames::{FRAME_SIZE, FrameAllocator, FrameError};
use crate::guest::phys::{GuestPhys, PAGE_SIZE, PhysError};
use crate::npt::{Npt, NptError, TableMemory, TablePool};

use core::sync::atomic::{AtomicU64, Ordering};

use pvh::boot::IDENTITY_MAP_BYTES;
use pvh::boot_info::{MemoryRegion, RegionKind};

/// Xen's `max_page`: one more than the host's highest RAM frame (set once at boot).
static MAX_RAM_PAGE: AtomicU64 = AtomicU64::new(0);

/// Records the host's `max_page` from its memory map.
pub fn set_max_ram_page(memmap: &[MemoryRegion]) {
    let end = memmap
        .iter()
        .filter(|r| r.kind == RegionKind::Ram)
        .map(MemoryRegion::end)
        .max()
        .unwrap_or(0);
    MAX_RAM_PAGE.store(end.div_ceil(FRAME_SIZE), Ordering::Relaxed);
}

/// The host's `max_page` ([`set_max_ram_page`]).
pub fn max_ram_page() -> u64 {
    MAX_RAM_PAGE.load(Ordering::Relaxed)
}

/// Slots of the allocator's range table ballooning leaves unused, for the runs domains give
/// back when they end.
const RANGES_KEPT_FOR_TEARDOWN: usize = 16;

/// Gives the frame at `hpa`, which the domain gave up, back to hv's allocator if it merges
/// with free memory or the allocator's range table has room to spare
/// (it leaves half the table unused, for teardowns); `false` if the caller keeps it.
pub fn free_frame(frames: &mut FrameAllocator, hpa: u64) -> bool {
    frames
        .free_if_room(hpa, FRAME_SIZE, RANGES_KEPT_FOR_TEARDOWN)
        .is_ok()
}

/// Zeroes `bytes` at host-physical `pa`.
///
/// # Safety
/// `[pa, pa + bytes)` must be identity-mapped memory owned by the caller and not referenced
/// elsewhere.
pub unsafe fn zero(pa: u64, bytes: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, bytes as usize) };
}

/// Takes zeroed frames from `frames`.
pub fn alloc_zeroed(
    frames: &mut FrameAllocator,
    bytes: u64,
    align: u64,
) -> Result<u64, FrameError> {
    let pa = frames.allocate_top(bytes, align)?;
    if pa.saturating_add(bytes) > IDENTITY_MAP_BYTES {
        return Err(FrameError::OutOfMemory {
            frames: bytes.div_ceil(FRAME_SIZE),
        });
    }
    // SAFETY: the frames were just taken from free RAM below the identity-map limit and
    // are handed out again only after the domain owning them is torn down.
    unsafe { zero(pa, bytes) };
    Ok(pa)
}

/// Nested page tables in host frames of the domain's paging pool.
pub struct HostTables<'a> {
    /// Where new tables come from and go back to.
    pub pool: &'a mut TablePool,
}

impl TableMemory for HostTables<'_> {
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a table this type allocated (identity mapped, page aligned) and
        // index < 512 (callers mask with 511): an aligned u64 inside that page.
        unsafe { core::ptr::read_volatile((table as *const u64).add(index & 511)) }
    }

    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as in read_entry; hv owns the tables; the CPU reads them only during VMRUN,
        // which never runs concurrently with this (one CPU) and flushes its TLB at entry.
        unsafe { core::ptr::write_volatile((table as *mut u64).add(index & 511), value) }
    }

    fn alloc_table(&mut self) -> Result<u64, NptError> {
        let page = self.pool.take().ok_or(NptError::OutOfMemory)?;
        // SAFETY: the pool's pages were taken from free RAM below the identity-map limit for
        // this pool alone (`take_pool`), and a page handed out is referenced by no entry.
        unsafe { zero(page, FRAME_SIZE) };
        Ok(page)
    }

    fn free_table(&mut self, table: u64) {
        self.pool.give_back(table);
    }
}

/// The domain's paging pool: `pages` zeroed frames taken from `frames` in one block.
pub fn take_pool(frames: &mut FrameAllocator, pages: u64) -> Result<TablePool, FrameError> {
    let bytes = pages
        .checked_mul(FRAME_SIZE)
        .ok_or(FrameError::OutOfMemory { frames: pages })?;
    let base = alloc_zeroed(frames, bytes, FRAME_SIZE)?;
    Ok(TablePool::new(base, pages))
}

/// A read-only view of tables for translation.
pub struct TableReader;

impl TableMemory for TableReader {
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        // SAFETY: as in HostTables::read_entry: `table` comes from an entry hv wrote.
        unsafe { core::ptr::read_volatile((table as *const u64).add(index & 511)) }
    }

    fn write_entry(&mut self, _table: u64, _index: usize, _value: u64) {}

    fn alloc_table(&mut self) -> Result<u64, NptError> {
        Err(NptError::OutOfMemory)
    }

    fn free_table(&mut self, _table: u64) {}
}

/// A domain's guest-physical memory: whatever its nested tables map, nothing else.
pub struct DomainMemory {
    /// The domain's nested tables.
    pub npt: Npt,
    /// The pages its tables may use (Xen's paging pool); they live as long as the domain.
    pub pool: TablePool,
}

impl DomainMemory {
    /// The tables and their pool, for a change of the tables.
    pub fn tables(&mut self) -> (Npt, HostTables<'_>) {
        (
            self.npt,
            HostTables {
                pool: &mut self.pool,
            },
        )
    }
}

impl DomainMemory {
    /// The host-physical address of `[gpa, gpa + len)`, which must not cross a page.
    fn host(&self, gpa: u64, len: usize, write: bool) -> Result<u64, PhysError> {
        if gpa % PAGE_SIZE + len as u64 > PAGE_SIZE {
            return Err(PhysError {
                gpa: (gpa | (PAGE_SIZE - 1)) + 1,
            });
        }
        let t = self
            .npt
            .translate(&TableReader, gpa)
            .ok_or(PhysError { gpa })?;
        if write && !t.writable {
            return Err(PhysError { gpa });
        }
        if t.hpa.saturating_add(len as u64) > IDENTITY_MAP_BYTES {
            return Err(PhysError { gpa });
        }
        Ok(t.hpa)
    }
}

impl GuestPhys for DomainMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        let hpa = self.host(gpa, buf.len(), false)?;
        // SAFETY: the range lies inside one page the domain's nested tables map, hence hv
        // allocated it for the domain (identity mapped); the guest may change it meanwhile,
        // which makes the copied bytes arbitrary but never unsound (plain bytes).
        unsafe { core::ptr::copy_nonoverlapping(hpa as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
        let hpa = self.host(gpa, data.len(), true)?;
        // SAFETY: as in read; the page is the domain's and writable to it, so writing it on
        // the domain's behalf affects only the domain.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), hpa as *mut u8, data.len()) };
        Ok(())
    }
}
