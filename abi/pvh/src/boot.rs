//! What the PVH entry ([`pvh_entry!`](crate::pvh_entry)) built, seen from Rust: the identity
//! map's size, the boot stack and its guard page, and the changes made to the boot page
//! tables afterwards: the guard page unmapped, so a stack overflow faults (a double fault on
//! its own IST stack, see [`crate::gdt`]) instead of corrupting memory; and, for pvguest's
//! CPL-3 probes only, a user window of two pages above the identity map
//! ([`install_user_window`]).

use core::ptr::addr_of_mut;

use abi::elfnote::{XEN_ELFNOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY};

/// Bytes identity mapped by the boot page tables (2 MiB pages): the first 4 GiB.
pub const IDENTITY_MAP_BYTES: u64 = 4 << 30;

/// The note type the entry stub emits (for [`pvh_entry!`](crate::pvh_entry)).
#[doc(hidden)]
pub const PHYS32_ENTRY_NOTE: u32 = XEN_ELFNOTE_PHYS32_ENTRY;

const _: () = assert!(
    XEN_ELFNOTE_NAME.len() == 4,
    "the stub's note name is \"Xen\\0\""
);

unsafe extern "C" {
    /// The guard page below the boot stack.
    static boot_stack_guard: u8;
    /// The lowest byte of the boot stack.
    static boot_stack_bottom: u8;
    /// One past the top of the boot stack.
    static boot_stack_top: u8;
    /// The four boot page directories (2048 entries).
    static mut boot_pd: [u64; 2048];
    /// The boot PML4.
    static mut boot_pml4: [u64; 512];
    /// The boot page-directory-pointer table (entries 0..4: the identity map).
    static mut boot_pdpt: [u64; 512];
}

/// Physical (= virtual) address of the stack guard page.
pub fn stack_guard_address() -> u64 {
    // Taking the address of an extern static reads nothing.
    (&raw const boot_stack_guard) as u64
}

/// The boot stack as `[bottom, top)`.
pub fn stack_range() -> (u64, u64) {
    (
        (&raw const boot_stack_bottom) as u64,
        (&raw const boot_stack_top) as u64,
    )
}

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

/// Errors of the guard installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// The guard page lies outside the boot identity map.
    GuardOutsideMap(u64),
    /// The PD entry is not the 2 MiB page the boot stub made (installed twice?).
    UnexpectedEntry(u64),
}

/// Splits the 2 MiB page holding the stack guard into 4 KiB pages and unmaps the guard.
///
/// Called once, early, on the boot CPU.
pub fn install_stack_guard() -> Result<(), GuardError> {
    let guard = stack_guard_address();
    if guard >= IDENTITY_MAP_BYTES {
        return Err(GuardError::GuardOutsideMap(guard));
    }
    let index = (guard >> 21) as usize; // < 2048: below 4 GiB
    let base = guard & !((1 << 21) - 1);
    // SAFETY: single-threaded early boot; GUARD_TABLE is only touched here, and boot_pd is the
    // live page directory the boot stub built (2048 entries, index < 2048 checked above).
    // The new table maps the same 2 MiB with the same attributes except the guard page, so
    // no live data (the stack is above the guard) loses its mapping.
    unsafe {
        let pd = addr_of_mut!(boot_pd);
        let old = (*pd)[index];
        if old & !ACCESSED_DIRTY != base | PRESENT_WRITABLE | HUGE {
            return Err(GuardError::UnexpectedEntry(old));
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

/// Where [`install_user_window`] maps its two pages: right above the identity map (PDPT
/// entry 4, which the boot stub leaves empty).
pub const USER_WINDOW: u64 = IDENTITY_MAP_BYTES;

/// User-accessible (U/S).
const USER: u64 = 0x4;

/// The page directory and page table of the user window.
static mut USER_PD: Table = Table([0; 512]);
static mut USER_PT: Table = Table([0; 512]);

/// Errors of the user window's installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserWindowError {
    /// A page is not 4 KiB aligned or lies outside the identity map.
    BadPage(u64),
    /// PDPT entry 4 is already in use (installed twice?).
    InUse(u64),
}

/// Maps the page at `code` (read-only) and the page at `stack` (writable) as the only
/// user-accessible pages, at [`USER_WINDOW`] and the page after, and returns
/// [`USER_WINDOW`]. The identity map stays supervisor-only: its PDPT entries lack U/S, so
/// setting U/S on PML4 entry 0 (which must carry it for the window) opens nothing else.
///
/// Call once, with both pages the caller's (identity mapped, holding nothing else: user code
/// can read the code page and write the stack page).
pub fn install_user_window(code: u64, stack: u64) -> Result<u64, UserWindowError> {
    for page in [code, stack] {
        if page % 4096 != 0 || page >= IDENTITY_MAP_BYTES {
            return Err(UserWindowError::BadPage(page));
        }
    }
    // SAFETY: boot_pml4 and boot_pdpt are the live tables the boot stub built (512 entries
    // each); USER_PD and USER_PT are only touched here, once (entry 4 empty is checked
    // first). The new entries map only the two pages given, above everything mapped so far;
    // PML4 entry 0 keeps its address and gains only U/S, which grants nothing below a PDPT
    // entry without it.
    unsafe {
        let pdpt = addr_of_mut!(boot_pdpt);
        if (*pdpt)[4] != 0 {
            return Err(UserWindowError::InUse((*pdpt)[4]));
        }
        let pt = addr_of_mut!(USER_PT);
        (*pt).0[0] = code | 0x1 | USER;
        (*pt).0[1] = stack | PRESENT_WRITABLE | USER;
        let pd = addr_of_mut!(USER_PD);
        (*pd).0[0] = (pt as u64) | PRESENT_WRITABLE | USER;
        (*pdpt)[4] = (pd as u64) | PRESENT_WRITABLE | USER;
        let pml4 = addr_of_mut!(boot_pml4);
        (*pml4)[0] |= USER;
    }
    x86_64::instructions::tlb::flush_all();
    Ok(USER_WINDOW)
}
