//! ELF note types of a Xen guest image: `xen/elfnote.h` (notes named "Xen").

/// The name field of every Xen ELF note ("Xen" plus its terminating NUL; Rust-only name).
pub const XEN_ELFNOTE_NAME: &[u8; 4] = b"Xen\0";

// ---------------------------------------------------------------------------------------------
// Guest image notes
// ---------------------------------------------------------------------------------------------

/// NAME=VALUE pair (string).
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// Virtual address of the PV entry point (numeric).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// Virtual address of the hypercall transfer page (numeric).
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// Virtual address where the kernel image should be mapped (numeric).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// Offset between virtual and physical addresses of the image (numeric).
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// Version of Xen the image was built for (string).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// Name of the guest operating system (string).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// Version of the guest operating system (string).
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// Loader type (string, "generic").
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// PAE mode support of an x86_32 image (string).
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// Features the kernel supports or requires, `|`-separated (string).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// Load the symbol table after the image, BSD style (string, presence is the flag).
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// Lowest address of the hypervisor hole (x86_32 PV, numeric).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// Mask/value pairs recognising L1 entries with valid MFNs (numeric).
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// The guest supports cancelling a suspend (numeric, default 0).
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// Virtual address of the initial P2M table (x86_64 PV, numeric).
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// The guest accepts an initrd not mapped by its initial page tables (numeric).
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// Bitmap of `XENFEAT_*` the kernel supports (numeric, 32 bits).
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// Physical address of the PVH entry point, entered in 32-bit protected mode with paging off
/// and `ebx` pointing at `hvm_start_info` (numeric).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The highest guest image note type.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_ENTRY;

// ---------------------------------------------------------------------------------------------
// Crash and core-dump notes
// ---------------------------------------------------------------------------------------------

/// Crash dump: system information.
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x0100_0001;
/// Crash dump: architecture-specific registers.
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x0100_0002;
/// Domain core dump: a note carrying no information.
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x0200_0000;
/// Domain core dump: the dump header.
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x0200_0001;
/// Domain core dump: the Xen version (`XENVER_*` results).
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x0200_0002;
/// Domain core dump: the format version.
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x0200_0003;
