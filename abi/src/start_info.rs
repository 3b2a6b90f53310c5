//! The PVH boot ABI: `xen/arch-x86/hvm/start_info.h` (`ebx` points at [`HvmStartInfo`] on entry
//! through `XEN_ELFNOTE_PHYS32_ENTRY`).

use core::mem::{align_of, offset_of, size_of};

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// `hvm_start_info.magic`: "xEn3" with the 0x80 bit of the "E" set.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// Memory-map entry type: usable RAM (same numbering as E820).
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// Memory-map entry type: reserved.
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// Memory-map entry type: ACPI tables, reclaimable after they are read.
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// Memory-map entry type: ACPI non-volatile storage.
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// Memory-map entry type: unusable (bad) memory.
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// Memory-map entry type: disabled memory.
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// Memory-map entry type: persistent memory.
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

// ---------------------------------------------------------------------------------------------
// Structures
// ---------------------------------------------------------------------------------------------

/// `struct hvm_start_info`: what a PVH kernel receives in `ebx` at its 32-bit entry point.
///
/// Version 0 ends at `rsdp_paddr` (40 bytes); `memmap_*` and `reserved` exist from version 1 on
/// (56 bytes), so a reader must check `version` before touching them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Version of this structure (0 or 1; newer versions are backwards-compatible).
    pub version: u32,
    /// `SIF_*` flags (see [`crate::xen`]).
    pub flags: u32,
    /// Number of entries in the module list.
    pub nr_modules: u32,
    /// Physical address of an array of [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// Physical address of the zero-terminated command line (0 = none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP (0 = none).
    pub rsdp_paddr: u64,
    /// Version 1+: physical address of an array of [`HvmMemmapTableEntry`].
    pub memmap_paddr: u64,
    /// Version 1+: number of memory-map entries (0 = no map provided).
    pub memmap_entries: u32,
    /// Version 1+: must be zero.
    pub reserved: u32,
}
const _: () = {
    assert!(size_of::<HvmStartInfo>() == 56 && align_of::<HvmStartInfo>() == 8);
    assert!(offset_of!(HvmStartInfo, magic) == 0);
    assert!(offset_of!(HvmStartInfo, version) == 4);
    assert!(offset_of!(HvmStartInfo, flags) == 8);
    assert!(offset_of!(HvmStartInfo, nr_modules) == 12);
    assert!(offset_of!(HvmStartInfo, modlist_paddr) == 16);
    assert!(offset_of!(HvmStartInfo, cmdline_paddr) == 24);
    assert!(offset_of!(HvmStartInfo, rsdp_paddr) == 32);
    assert!(offset_of!(HvmStartInfo, memmap_paddr) == 40);
    assert!(offset_of!(HvmStartInfo, memmap_entries) == 48);
    assert!(offset_of!(HvmStartInfo, reserved) == 52);
};

/// Size of a version-0 [`HvmStartInfo`] (up to and including `rsdp_paddr`; Rust-only name).
pub const HVM_START_INFO_V0_SIZE: usize = offset_of!(HvmStartInfo, memmap_paddr);

/// `struct hvm_modlist_entry`: one boot module.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size of the module in bytes.
    pub size: u64,
    /// Physical address of the module's zero-terminated command line (0 = none).
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}
const _: () = {
    assert!(size_of::<HvmModlistEntry>() == 32 && align_of::<HvmModlistEntry>() == 8);
    assert!(offset_of!(HvmModlistEntry, paddr) == 0);
    assert!(offset_of!(HvmModlistEntry, size) == 8);
    assert!(offset_of!(HvmModlistEntry, cmdline_paddr) == 16);
    assert!(offset_of!(HvmModlistEntry, reserved) == 24);
};

/// `struct hvm_memmap_table_entry`: one region of the version-1 memory map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    /// Base physical address of the region.
    pub addr: u64,
    /// Size of the region in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*`.
    pub type_: u32,
    /// Must be zero (version 1).
    pub reserved: u32,
}
const _: () = {
    assert!(size_of::<HvmMemmapTableEntry>() == 24 && align_of::<HvmMemmapTableEntry>() == 8);
    assert!(offset_of!(HvmMemmapTableEntry, addr) == 0);
    assert!(offset_of!(HvmMemmapTableEntry, size) == 8);
    assert!(offset_of!(HvmMemmapTableEntry, type_) == 16);
    assert!(offset_of!(HvmMemmapTableEntry, reserved) == 20);
};
