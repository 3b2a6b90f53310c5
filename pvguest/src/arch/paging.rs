//! Changes to the boot page tables: 4 KiB mappings around the stack guard page, which is
//! left unmapped so a stack overflow faults instead of corrupting memory.

use core::ptr::addr_of_mut;

use super::boot;

/// A page table page.
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Present | writable.
const PRESENT_WRITABLE: u64 = 0x3;
/// Page size bit of a page-directory entry.
const HUGE: u64 = 0x80;
/// Accessed and dirty bits (set by the CPU).
const ACCESSED_DIRTY: u64 = 0x60;

/// The 4 KiB table that replaces the 2 MiB page holding the guard page.
static mut GUARD_TABLE: Table = Table([0; 512]);

unsafe extern "C" {
    /// The four boot page directories (2048 entries), built by `boot`.
    static mut boot_pd: [u64; 2048];
}

/// Errors of the guard installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The guard page lies outside the boot identity map.
    GuardOutsideMap(u64),
    /// The PD entry is not the 2 MiB page the boot stub made (installed twice?).
    UnexpectedEntry(u64),
}

/// Splits the 2 MiB page holding the stack guard into 4 KiB pages and unmaps the guard.
///
/// Called once, early, on the boot CPU.
pub fn install_stack_guard() -> Result<(), PagingError> {
    let guard = boot::stack_guard_address();
    let index = (guard >> 21) as usize;
    if guard >= boot::IDENTITY_MAP_BYTES {
        return Err(PagingError::GuardOutsideMap(guard));
    }
    let base = (index as u64) << 21;
    // SAFETY: single-threaded early boot; GUARD_TABLE is only touched here, and boot_pd is the
    // live page directory the boot stub built (2048 entries, index < 2048 checked above).
    // The new table maps the same 2 MiB with the same attributes except the guard page, so
    // no live data (the stack is above the guard) loses its mapping.
    unsafe {
        let pd = addr_of_mut!(boot_pd);
        let old = (*pd)[index];
        if old & !ACCESSED_DIRTY != base | PRESENT_WRITABLE | HUGE {
            return Err(PagingError::UnexpectedEntry(old));
        }
        let table = addr_of_mut!(GUARD_TABLE);
        for (i, e) in (*table).0.iter_mut().enumerate() {
            *e = (base + (i as u64) * 4096) | PRESENT_WRITABLE;
        }
        (*table).0[((guard >> 12) & 511) as usize] = 0;
        (*pd)[index] = (table as u64) | PRESENT_WRITABLE;
    }
    x86_64::instructions::tlb::flush_all();
    Ok(())
}
