//! The guest-physical layout of a domain, like the one Xen 4.17's toolstack gives a PVH domU:
//! RAM from 0 up to the configured memory size, and 8 special pages just below 0xFF000000
//! (`X86_HVM_END_SPECIAL_REGION`), reserved in the memory map, among them the xenstore and
//! console rings (`special_pfn(SPECIALPAGE_XENSTORE)` and `(SPECIALPAGE_CONSOLE)` in
//! libxenguest's `xg_dom_x86.c`).
//!
//! The ACPI tables' three regions from 0xFC000000 ([`super::acpi`]) are in the map as ACPI,
//! in libxl's order (`libxl__arch_domain_construct_memmap`: RAM, the ACPI modules RSDP, info
//! and tables, then the special pages).

use abi::memory::E820Entry;
use abi::start_info::{
    XEN_HVM_MEMMAP_TYPE_ACPI, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED,
};

use super::acpi;

use crate::guest::phys::PAGE_SIZE;

/// One past the last special page's frame (`X86_HVM_END_SPECIAL_REGION`).
pub const END_SPECIAL_REGION_GFN: u64 = 0xff000;
/// Number of special pages (`X86_HVM_NR_SPECIAL_PAGES`).
pub const NR_SPECIAL_PAGES: u64 = 8;
/// The first special page's frame.
pub const SPECIAL_PAGES_GFN: u64 = END_SPECIAL_REGION_GFN - NR_SPECIAL_PAGES;
/// The xenstore ring's frame (`SPECIALPAGE_XENSTORE` = 4).
pub const STORE_GFN: u64 = SPECIAL_PAGES_GFN + 4;
/// The console ring's frame (`SPECIALPAGE_CONSOLE` = 7).
pub const CONSOLE_GFN: u64 = SPECIAL_PAGES_GFN + 7;
/// RAM ends below this address (Xen's PVH domU keeps the 64 MiB below 4 GiB, from
/// 0xFC000000, for ACPI, the special pages and the LAPIC).
pub const LOW_RAM_LIMIT: u64 = 0xfc00_0000;
/// Least memory a domain can have.
pub const MIN_MEMORY_MIB: u64 = 4;

/// Entries of the memory map `hv` gives.
pub const MEMMAP_ENTRIES: usize = 5;

/// A domain's guest-physical layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// RAM is `[0, ram_end)`.
    pub ram_end: u64,
}

impl Layout {
    /// The layout of a domain with `memory_mib` MiB of RAM; `None` if that is less than
    /// [`MIN_MEMORY_MIB`] or reaches [`LOW_RAM_LIMIT`] (no RAM above 4 GiB yet).
    pub const fn new(memory_mib: u64) -> Option<Self> {
        if memory_mib < MIN_MEMORY_MIB || memory_mib > (LOW_RAM_LIMIT >> 20) {
            return None;
        }
        Some(Self {
            ram_end: memory_mib << 20,
        })
    }

    /// Whether `[gpa, gpa + len)` lies in RAM.
    pub const fn is_ram(&self, gpa: u64, len: u64) -> bool {
        match gpa.checked_add(len) {
            Some(end) => end <= self.ram_end,
            None => false,
        }
    }

    /// Whether frame `gfn` is one of the special pages.
    pub const fn is_special(gfn: u64) -> bool {
        gfn >= SPECIAL_PAGES_GFN && gfn < END_SPECIAL_REGION_GFN
    }

    /// The memory map: RAM, the ACPI regions, then the special pages as reserved (Xen's
    /// order). The one source of both the start info's table and `XENMEM_memory_map`'s
    /// answer.
    pub const fn memmap(&self) -> [E820Entry; MEMMAP_ENTRIES] {
        [
            E820Entry {
                addr: 0,
                size: self.ram_end,
                type_: XEN_HVM_MEMMAP_TYPE_RAM,
            },
            E820Entry {
                addr: acpi::RSDP_GPA,
                size: acpi::RSDP_REGION_LEN,
                type_: XEN_HVM_MEMMAP_TYPE_ACPI,
            },
            E820Entry {
                addr: acpi::ACPI_INFO_GPA,
                size: PAGE_SIZE,
                type_: XEN_HVM_MEMMAP_TYPE_ACPI,
            },
            E820Entry {
                addr: acpi::TABLES_GPA,
                size: PAGE_SIZE,
                type_: XEN_HVM_MEMMAP_TYPE_ACPI,
            },
            E820Entry {
                addr: SPECIAL_PAGES_GFN * PAGE_SIZE,
                size: NR_SPECIAL_PAGES * PAGE_SIZE,
                type_: XEN_HVM_MEMMAP_TYPE_RESERVED,
            },
        ]
    }
}
