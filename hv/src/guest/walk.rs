//! The guest page walk: guest-virtual to guest-physical through the guest's own page tables,
//! as Xen's `copy_from_guest` / `copy_to_guest` do for an HVM or PVH domain
//! (`hvm_copy_{from,to}_guest_linear` over `guest_walk_tables`).
//!
//! Supported: paging off (`CR0.PG` clear: the address is guest-physical) and 4-level long
//! mode with 4 KiB, 2 MiB and 1 GiB pages. Every level must be present; a write needs `RW`
//! at every level (supervisor writes ignore `RW` when `CR0.WP` is clear, as on hardware); a
//! `CPL` 3 access needs `U/S` at every level. Reserved bits that Xen's walk checks
//! (`PS` in a PML4 entry, the low bits of a large-page address, `NX` without `EFER.NXE`) fail
//! the walk. Every failure answers `-EFAULT`, as Xen's copy functions do.
//!
//! Not done (each answers [`Fault::Unsupported`], i.e. `-EFAULT`): 32-bit and PAE paging,
//! 5-level paging (`CR4.LA57`). Unlike Xen's walk, this one does not set the Accessed and
//! Dirty bits in the guest's entries (a guest cannot tell except by reading them).

use abi::errno::XEN_EFAULT;

use super::phys::{GuestPhys, PAGE_SIZE, PhysError, for_each_page};

/// The guest's paging registers, copied from its VMCB save area.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingState {
    /// CR0 (PG bit 31, WP bit 16).
    pub cr0: u64,
    /// CR3: the top-level table (bits 51:12).
    pub cr3: u64,
    /// CR4 (PAE bit 5, LA57 bit 12).
    pub cr4: u64,
    /// EFER as the guest sees it (LMA bit 10, NXE bit 11).
    pub efer: u64,
    /// The current privilege level (0..=3).
    pub cpl: u8,
}

/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;
/// CR0.WP.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PE.
pub const CR0_PE: u64 = 1;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57.
pub const CR4_LA57: u64 = 1 << 12;
/// EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE.
pub const EFER_NXE: u64 = 1 << 11;

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;
const PTE_NX: u64 = 1 << 63;
/// Bits 51:12 of an entry or of CR3: the next table's or the page's address.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// What the walk is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Xen reads the guest's buffer.
    Read,
    /// Xen writes the guest's buffer.
    Write,
}

/// Why a guest-virtual access failed; every kind answers `-EFAULT` ([`Fault::errno`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The entry at `level` (4 = PML4 .. 1 = PTE) is not present.
    NotPresent {
        /// The faulting guest-virtual address.
        va: u64,
        /// The page-table level.
        level: u8,
    },
    /// A write to a page that is read-only at some level.
    ReadOnly {
        /// The faulting guest-virtual address.
        va: u64,
    },
    /// A `CPL` 3 access to a supervisor page.
    User {
        /// The faulting guest-virtual address.
        va: u64,
    },
    /// A reserved bit is set in the entry at `level`.
    Reserved {
        /// The faulting guest-virtual address.
        va: u64,
        /// The page-table level.
        level: u8,
    },
    /// The address is not canonical, or the buffer runs past the end of the address space.
    NonCanonical {
        /// The faulting guest-virtual address.
        va: u64,
    },
    /// A paging mode the walk does not implement (see the module docs).
    Unsupported {
        /// Which mode.
        mode: &'static str,
    },
    /// A table or the data lies in guest-physical memory the domain does not own.
    Phys {
        /// The guest-virtual address being translated.
        va: u64,
        /// The unreachable guest-physical address.
        gpa: u64,
    },
}

impl Fault {
    /// The errno Xen's `copy_from_guest` / `copy_to_guest` failure turns into: `-EFAULT`.
    pub const fn errno(&self) -> i64 {
        -(XEN_EFAULT as i64)
    }
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::NotPresent { va, level } => write!(f, "{va:#x}: level-{level} entry not present"),
            Self::ReadOnly { va } => write!(f, "{va:#x}: write to a read-only page"),
            Self::User { va } => write!(f, "{va:#x}: user access to a supervisor page"),
            Self::Reserved { va, level } => {
                write!(f, "{va:#x}: reserved bit in level-{level} entry")
            }
            Self::NonCanonical { va } => write!(f, "{va:#x}: not canonical"),
            Self::Unsupported { mode } => write!(f, "guest paging mode not supported: {mode}"),
            Self::Phys { va, gpa } => write!(f, "{va:#x}: guest-physical {gpa:#x} not owned"),
        }
    }
}

/// Whether `va` is canonical for 48-bit virtual addresses.
pub const fn is_canonical(va: u64) -> bool {
    let top = va.cast_signed() >> 47;
    top == 0 || top == -1
}

/// Translates one guest-virtual address for `access`.
pub fn translate(
    mem: &impl GuestPhys,
    st: &PagingState,
    va: u64,
    access: Access,
) -> Result<u64, Fault> {
    if st.cr0 & CR0_PG == 0 {
        return Ok(va);
    }
    if st.efer & EFER_LMA == 0 {
        return Err(Fault::Unsupported {
            mode: if st.cr4 & CR4_PAE != 0 {
                "PAE paging"
            } else {
                "32-bit paging"
            },
        });
    }
    if st.cr4 & CR4_LA57 != 0 {
        return Err(Fault::Unsupported {
            mode: "5-level paging",
        });
    }
    if !is_canonical(va) {
        return Err(Fault::NonCanonical { va });
    }
    let user = st.cpl == 3;
    let write = access == Access::Write;
    let wp = st.cr0 & CR0_WP != 0;
    let nx_reserved = st.efer & EFER_NXE == 0;
    let mut table = st.cr3 & ADDR_MASK;
    for level in (1..=4u8).rev() {
        let shift = 12 + 9 * u32::from(level - 1);
        let index = (va >> shift) & 0x1ff;
        let entry_gpa = table + index * 8;
        let mut raw = [0u8; 8];
        mem.read(entry_gpa, &mut raw)
            .map_err(|PhysError { gpa }| Fault::Phys { va, gpa })?;
        let entry = u64::from_le_bytes(raw);
        if entry & PTE_P == 0 {
            return Err(Fault::NotPresent { va, level });
        }
        if nx_reserved && entry & PTE_NX != 0 {
            return Err(Fault::Reserved { va, level });
        }
        if write && entry & PTE_RW == 0 && (user || wp) {
            return Err(Fault::ReadOnly { va });
        }
        if user && entry & PTE_US == 0 {
            return Err(Fault::User { va });
        }
        let large = entry & PTE_PS != 0;
        if large && level == 4 {
            return Err(Fault::Reserved { va, level });
        }
        if level == 1 || large {
            let page_mask = (1u64 << shift) - 1;
            let base = entry & ADDR_MASK;
            // Bits 12 (PAT) and up to the page size must leave the low address bits clear.
            if large && base & page_mask & !(1 << 12) != 0 {
                return Err(Fault::Reserved { va, level });
            }
            return Ok((base & !page_mask) | (va & page_mask));
        }
        table = entry & ADDR_MASK;
    }
    // The loop returns at level 1 at the latest.
    Err(Fault::NotPresent { va, level: 1 })
}

/// Calls `f(gpa, offset, len)` for each page of the guest-virtual buffer `[va, va + len)`,
/// translated for `access`.
fn for_each_guest_page(
    mem: &impl GuestPhys,
    st: &PagingState,
    va: u64,
    len: usize,
    access: Access,
    mut f: impl FnMut(u64, usize, usize) -> Result<(), Fault>,
) -> Result<(), Fault> {
    for_each_page(
        va,
        len,
        |at, off, n| {
            let gpa = translate(mem, st, at, access)?;
            // A large-page or paging-off translation keeps the page offset, so [gpa, gpa+n)
            // stays inside one 4 KiB guest-physical page.
            debug_assert!(gpa % PAGE_SIZE + n as u64 <= PAGE_SIZE);
            f(gpa, off, n)
        },
        |va| Fault::NonCanonical { va },
    )
}

/// Xen's `copy_from_guest`: reads the guest-virtual buffer `[va, va + buf.len())`.
pub fn copy_from_guest(
    mem: &impl GuestPhys,
    st: &PagingState,
    va: u64,
    buf: &mut [u8],
) -> Result<(), Fault> {
    let len = buf.len();
    for_each_guest_page(mem, st, va, len, Access::Read, |gpa, off, n| {
        mem.read(gpa, &mut buf[off..off + n])
            .map_err(|PhysError { gpa }| Fault::Phys {
                va: va + off as u64,
                gpa,
            })
    })
}

/// Xen's `copy_to_guest`: writes `data` to the guest-virtual buffer at `va`. Every page is
/// translated (and checked writable) first, so a fault leaves the guest's memory untouched.
pub fn copy_to_guest(
    mem: &mut impl GuestPhys,
    st: &PagingState,
    va: u64,
    data: &[u8],
) -> Result<(), Fault> {
    for_each_guest_page(&*mem, st, va, data.len(), Access::Write, |gpa, off, _| {
        // Reading one byte is side-effect free and tells whether the page is the domain's.
        mem.read(gpa, &mut [0u8; 1])
            .map_err(|PhysError { gpa }| Fault::Phys {
                va: va + off as u64,
                gpa,
            })
    })?;
    for_each_page(
        va,
        data.len(),
        |at, off, n| {
            let gpa = translate(&*mem, st, at, Access::Write)?;
            mem.write(gpa, &data[off..off + n])
                .map_err(|PhysError { gpa }| Fault::Phys { va: at, gpa })
        },
        |va| Fault::NonCanonical { va },
    )
}
